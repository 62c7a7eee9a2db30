// The policy a gateway enforces now: the loaded policy with the rules onUnknownHost approved,
// compiled, and the secrets its credential rules inject. A reload or an approval swaps all of it
// at once, so a request never sees the rules of one policy with the secrets of another.
import { compilePolicy, type CompiledPolicy } from '../policies/match.js';
import type { Policy, Rule } from '../policies/types.js';
import type { GatewayEvents } from './audit/events.js';
import { loadRuleCredentials, type RuleCredentials } from './credentials/credential-secrets.js';
import { approvedRuleId } from './unknown-host.js';

export interface PolicyStateOptions {
  /** Where `inject: { env: NAME }` secrets are read, at start and at each reload. */
  secretEnv?: NodeJS.ProcessEnv;
}

export class PolicyState {
  /** Called with each newly compiled policy (after a reload or an approval), e.g. to relabel metrics. */
  onChange: ((policy: CompiledPolicy) => void) | null = null;
  /** Rules onUnknownHost approved: kept across reloads, for the gateway's life. */
  private readonly approvedRules: Rule[] = [];
  private compiledValue: CompiledPolicy;

  private constructor(
    private base: Policy,
    private credentialsValue: RuleCredentials,
    private readonly events: GatewayEvents,
    private readonly options: PolicyStateOptions,
  ) {
    this.compiledValue = compilePolicy(base);
  }

  /** Reads the policy and its secrets; a secret that cannot be read fails the start. */
  static async load(source: Policy | string, events: GatewayEvents, options: PolicyStateOptions): Promise<PolicyState> {
    const policy = await policyFrom(source);
    return new PolicyState(policy, await loadRuleCredentials(policy, { env: options.secretEnv }), events, options);
  }

  /** The compiled policy in force; read once per request or connection. */
  get current(): CompiledPolicy {
    return this.compiledValue;
  }

  /** The resolved credential rules of the policy in force. */
  get credentials(): RuleCredentials {
    return this.credentialsValue;
  }

  /**
   * Swaps the policy (an object, or a file read again) once its secrets are read again; rejects,
   * keeping the old policy and its secrets, when the file or a secret cannot be read. Approvals
   * carry over, including one that came while the secrets were read.
   */
  async reload(source: Policy | string): Promise<void> {
    let next: Policy;
    try {
      next = await policyFrom(source);
    } catch (error) {
      this.reportReloadFailure((error as Error).message);
      throw error;
    }
    let compiled = compilePolicy(this.withApprovals(next));
    const approvals = this.approvedRules.length;
    const nextCredentials = await loadRuleCredentials(next, { env: this.options.secretEnv });
    if (this.approvedRules.length !== approvals) compiled = compilePolicy(this.withApprovals(next));
    this.base = next;
    this.credentialsValue = nextCredentials;
    this.install(compiled);
    this.events.emit('policyReload', { kind: 'policy-reload', outcome: 'ok', rules: next.rules.length });
  }

  /** Records a reload that failed before it reached reload() (e.g. the file did not validate). */
  reportReloadFailure(reason: string): void {
    this.events.emit('policyReload', { kind: 'policy-reload', outcome: 'failed', reason });
  }

  /**
   * Adds the allow rule onUnknownHost approved for host:port (id `approved-<host>-<port>`, made
   * unique) and returns its id. It is compiled before it counts: a rule that does not compile is
   * no approval (this throws, and the policy stays as it was).
   */
  approve(host: string, port: number): string {
    const taken = new Set([...this.base.rules, ...this.approvedRules].map((rule) => rule.id));
    const stem = approvedRuleId(host, port);
    let id = stem;
    for (let n = 2; taken.has(id); n++) id = `${stem}-${n}`;
    const rule: Rule = Object.freeze({ id, host, port, action: 'allow', protocol: 'http' });
    const next = compilePolicy(this.withApprovals(this.base, rule));
    this.approvedRules.push(rule);
    this.install(next);
    return id;
  }

  private withApprovals(base: Policy, ...extra: Rule[]): Policy {
    const approved = [...this.approvedRules, ...extra];
    return approved.length === 0 ? base : { ...base, rules: [...base.rules, ...approved] };
  }

  private install(compiled: CompiledPolicy): void {
    this.compiledValue = compiled;
    this.onChange?.(compiled);
  }
}

/** A policy given as an object is used as is; a path is read with the same loader (and errors) as the CLI's. */
async function policyFrom(source: Policy | string): Promise<Policy> {
  if (typeof source !== 'string') return source;
  // The YAML parser and the schema load only when a file is read.
  return (await import('../policies/loader.js')).loadPolicyFile(source);
}
