// The policy a gateway enforces now: the loaded policy with the rules onUnknownHost approved,
// compiled, and the secrets its credential rules inject. A reload or an approval swaps all of it
// at once, so a request never sees the rules of one policy with the secrets of another.
import { compilePolicy, type CompiledPolicy } from '../policies/match.js';
import type { Policy, Rule } from '../policies/types.js';
import type { GatewayEvents } from './audit/events.js';
import { loadRuleCredentials, type RuleCredentials } from './credentials/credential-secrets.js';
import { compileClientPolicies, loadPolicyClients, type PolicyClients } from './policy-clients.js';
import { approvedRuleId } from './unknown-host.js';
import type { ClientAuthenticatorOptions } from '../identity/authenticate-client.js';

export interface PolicyStateOptions {
  /** Where `inject: { env: NAME }` secrets are read, at start and at each reload. */
  secretEnv?: NodeJS.ProcessEnv;
  /**
   * Authenticate the explicit proxy's requests when the policy names `clients:` (a new
   * authenticator at each reload); absent: `clients:` is not enforced.
   */
  clientAuthentication?: ClientAuthenticatorOptions;
}

type LoadedClients = Omit<PolicyClients, 'policyFor'> | null;

export class PolicyState {
  /** Called with each newly compiled policy (after a reload or an approval), e.g. to relabel metrics. */
  onChange: ((policy: CompiledPolicy) => void) | null = null;
  /** Rules onUnknownHost approved: kept across reloads, for the gateway's life. */
  private readonly approvedRules: Rule[] = [];
  private compiledValue: CompiledPolicy;
  private clientsValue: PolicyClients | null = null;

  private constructor(
    private base: Policy,
    private credentialsValue: RuleCredentials,
    private loadedClients: LoadedClients,
    private readonly events: GatewayEvents,
    private readonly options: PolicyStateOptions,
  ) {
    this.compiledValue = compilePolicy(base);
    this.clientsValue = withClientPolicies(loadedClients, this.compiledValue);
  }

  /** Reads the policy and its secrets; a secret that cannot be read fails the start. */
  static async load(source: Policy | string, events: GatewayEvents, options: PolicyStateOptions): Promise<PolicyState> {
    const policy = await policyFrom(source);
    const credentials = await loadRuleCredentials(policy, { env: options.secretEnv });
    return new PolicyState(policy, credentials, await clientsOf(policy, options), events, options);
  }

  /** The compiled policy in force; read once per request or connection. */
  get current(): CompiledPolicy {
    return this.compiledValue;
  }

  /**
   * The policy's clients, when it names some and client authentication is on; null otherwise
   * (then the explicit proxy does no authentication work at all).
   */
  get clients(): PolicyClients | null {
    return this.clientsValue;
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
    // A new authenticator (keys, JWKS files, labeller) for the new clients; a configuration it
    // refuses keeps the old policy, like an unreadable secret.
    const nextClients = await clientsOf(next, this.options);
    if (this.approvedRules.length !== approvals) compiled = compilePolicy(this.withApprovals(next));
    this.base = next;
    this.credentialsValue = nextCredentials;
    this.loadedClients = nextClients;
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
    this.clientsValue = withClientPolicies(this.loadedClients, compiled);
    this.onChange?.(compiled);
  }
}

/** A policy given as an object is used as is; a path is read with the same loader (and errors) as the CLI's. */
async function policyFrom(source: Policy | string): Promise<Policy> {
  if (typeof source !== 'string') return source;
  // The YAML parser and the schema load only when a file is read.
  return (await import('../policies/loader.js')).loadPolicyFile(source);
}

async function clientsOf(policy: Policy, options: PolicyStateOptions): Promise<LoadedClients> {
  return options.clientAuthentication === undefined ? null : loadPolicyClients(policy, options.clientAuthentication);
}

function withClientPolicies(loaded: LoadedClients, compiled: CompiledPolicy): PolicyClients | null {
  if (loaded === null) return null;
  const policies = compileClientPolicies(compiled);
  return { ...loaded, policyFor: (clientId) => policies.get(clientId) };
}
