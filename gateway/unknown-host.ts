// Asking about hosts no rule mentions (the library's `onUnknownHost` option, for interactive
// harnesses): once per host:port, answers shared by concurrent asks, no answer in time = deny.
// An approval becomes an allow rule of the running policy, so everything after it (requests,
// the audit log, metrics) sees an ordinary rule with an id that says where it came from.
import type { CompiledPolicy } from '../policies/match.js';
import { DEFAULT_DENY_RULE_ID } from '../policies/types.js';

/**
 * Asked when a connection or request is for a host:port no rule allows or denies. Resolve `true`
 * to allow that host:port for the rest of the gateway's life; anything else (false, a throw, no
 * answer within the timeout) denies it, and the answer is kept: the same host:port is not asked again.
 */
export type UnknownHostCallback = (host: string, port: number) => boolean | Promise<boolean>;

export interface UnknownHostOptions {
  ask: UnknownHostCallback;
  /** No answer within this long is a deny. */
  timeoutMs: number;
  /** Distinct host:port questions one gateway asks at most; beyond, unknown hosts are denied unasked. */
  maxQuestions: number;
  /** Names the DNS resolver answers before anyone is asked; beyond, unknown names get the deny answer. */
  maxDeferredNames: number;
}

export const DEFAULT_UNKNOWN_HOST_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_UNKNOWN_HOST_QUESTIONS = 256;
export const DEFAULT_MAX_DEFERRED_NAMES = 4096;

export type UnknownHostAnswer =
  | { readonly approved: true; readonly ruleId: string }
  /** `reason` completes "no rule allows host H on port P, and ...": safe to send into the sandbox. */
  | { readonly approved: false; readonly reason: string };

/**
 * Whether no rule has a say about host:port: nothing could allow it (http or tcp) and no deny rule
 * names it. Only such hosts are asked about; a host a deny rule names is never offered for approval.
 */
export function isUnknownHost(policy: CompiledPolicy, host: string, port: number): boolean {
  // SECURITY: a harness's "yes" must never override the policy's "no": hosts a deny rule (http
  // or tcp) names are not asked about, and an approval is an allow rule, which a deny rule still
  // beats — test: gateway/unknown-host.test.ts, test/e2e/library-unknown-host.test.ts
  if (policy.couldAllowHost(host, port)) return false;
  if (policy.tcpRuleFor(host, port).ruleId !== DEFAULT_DENY_RULE_ID) return false;
  return policy.decide({ host, port, method: 'GET', path: '/' }).ruleId === DEFAULT_DENY_RULE_ID;
}

/** The id of the rule an approval adds: `approved-<host>-<port>`, in the characters rule ids use. */
export function approvedRuleId(host: string, port: number): string {
  return `approved-${host.replace(/[^A-Za-z0-9._-]/g, '_')}-${port}`;
}

export class UnknownHostQuestions {
  private readonly answered = new Map<string, UnknownHostAnswer>();
  private readonly pending = new Map<string, { promise: Promise<UnknownHostAnswer>; settle: (answer: UnknownHostAnswer) => void }>();
  private readonly deferredNames = new Set<string>();
  private closed = false;

  constructor(
    private readonly options: UnknownHostOptions,
    /** Adds the allow rule for host:port to the running policy; returns its id. */
    private readonly approve: (host: string, port: number) => string,
  ) {}

  /** The answer for host:port: asked now, joined to the question already pending, or remembered. */
  ask(host: string, port: number): Promise<UnknownHostAnswer> {
    const key = `${host}\u0000${port}`;
    const known = this.answered.get(key);
    if (known) return Promise.resolve(known);
    const waiting = this.pending.get(key);
    if (waiting) return waiting.promise;
    if (this.closed) return Promise.resolve({ approved: false, reason: 'the gateway is closing' });
    if (this.answered.size + this.pending.size >= this.options.maxQuestions) {
      return Promise.resolve({ approved: false, reason: `it was not asked about: ${this.options.maxQuestions} hosts were asked about already` });
    }

    let settle!: (answer: UnknownHostAnswer) => void;
    const promise = new Promise<UnknownHostAnswer>((resolve) => {
      let settled = false;
      settle = (answer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending.delete(key);
        // Only answers from the callback are kept; "closing" is not an answer.
        if (!this.closed) this.answered.set(key, answer);
        resolve(answer);
      };
      const seconds = this.options.timeoutMs / 1000;
      const timer = setTimeout(() => settle({ approved: false, reason: `onUnknownHost gave no answer within ${seconds} s` }), this.options.timeoutMs);
      timer.unref();
    });
    this.pending.set(key, { promise, settle });

    // The callback runs outside the caller's stack: a throw in it is a deny, never a crash here.
    Promise.resolve()
      .then(() => this.options.ask(host, port))
      .then(
        (answer) => {
          if (answer !== true) {
            settle({ approved: false, reason: 'onUnknownHost declined it' });
            return;
          }
          if (this.closed || !this.pending.has(key)) return; // timed out or closing: the deny stands
          let ruleId: string;
          try {
            ruleId = this.approve(host, port);
          } catch {
            settle({ approved: false, reason: 'the approval could not be added to the policy' });
            return;
          }
          settle({ approved: true, ruleId });
        },
        // The callback's error text is the harness's business, not the sandbox's: it is not repeated.
        () => settle({ approved: false, reason: 'onUnknownHost failed' }),
      );
    return promise;
  }

  /**
   * Whether the DNS resolver may answer `name` (which no rule allows) with a synthetic address so
   * that the question can be asked when the program connects and the port is known. Bounded, so
   * a program cycling through names cannot use up the synthetic pool for the names the policy allows.
   */
  mayDeferName(name: string): boolean {
    if (this.closed) return false;
    if (this.deferredNames.has(name)) return true;
    if (this.deferredNames.size >= this.options.maxDeferredNames) return false;
    this.deferredNames.add(name);
    return true;
  }

  /** Pending questions are answered "deny" (not remembered); nothing is asked from now on. */
  close(): void {
    this.closed = true;
    for (const { settle } of [...this.pending.values()]) settle({ approved: false, reason: 'the gateway is closing' });
  }
}
