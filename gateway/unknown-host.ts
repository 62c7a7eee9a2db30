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
  /** Approvals shared with other replicas (serve --state); absent: this gateway's own only. */
  shared?: SharedApprovals;
  /** How long a deny is kept before the shared approvals are read again for it. Default 5 s. */
  sharedRecheckMs?: number;
  now?: () => number;
}

/**
 * Approvals other replicas made. A host:port one replica approved is approved on the others
 * when they meet it, without asking; a state that cannot answer makes them ask, as without it.
 * Denials are not shared: each replica's own callback may still say yes later.
 */
export interface SharedApprovals {
  /** Rejects when the state cannot answer. */
  isApproved(host: string, port: number): Promise<boolean>;
  record(host: string, port: number): Promise<void>;
}

const DEFAULT_SHARED_RECHECK_MS = 5000;

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
  /** When each kept deny last looked at the shared approvals. */
  private readonly sharedCheckedAt = new Map<string, number>();
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
    if (known) {
      if (known.approved || this.options.shared === undefined || this.closed) return Promise.resolve(known);
      return this.recheckShared(key, host, port, known);
    }
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
        // The shared approvals were read just now: a deny looks at them again only later.
        if (!answer.approved && this.options.shared !== undefined) this.sharedCheckedAt.set(key, (this.options.now ?? Date.now)());
        resolve(answer);
      };
      const seconds = this.options.timeoutMs / 1000;
      const timer = setTimeout(() => settle({ approved: false, reason: `onUnknownHost gave no answer within ${seconds} s` }), this.options.timeoutMs);
      timer.unref();
    });
    this.pending.set(key, { promise, settle });

    // The callback runs outside the caller's stack: a throw in it is a deny, never a crash here.
    Promise.resolve()
      .then(async () => {
        if (this.options.shared === undefined) return this.options.ask(host, port);
        // Approved on another replica: approved here too, unasked. A state that cannot answer
        // makes this replica ask its own callback, as without shared state.
        const approvedElsewhere = await this.options.shared.isApproved(host, port).catch(() => false);
        if (approvedElsewhere) return 'shared' as const;
        const answer = await this.options.ask(host, port);
        if (answer === true) this.options.shared.record(host, port).catch(() => undefined);
        return answer;
      })
      .then(
        (answer) => {
          if (answer !== true && answer !== 'shared') {
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

  /** A kept deny: approved meanwhile on another replica? Read at most every sharedRecheckMs. */
  private async recheckShared(key: string, host: string, port: number, known: UnknownHostAnswer): Promise<UnknownHostAnswer> {
    const now = (this.options.now ?? Date.now)();
    const checkedAt = this.sharedCheckedAt.get(key) ?? -Infinity;
    if (now - checkedAt < (this.options.sharedRecheckMs ?? DEFAULT_SHARED_RECHECK_MS)) return known;
    this.sharedCheckedAt.set(key, now);
    const approvedElsewhere = await this.options.shared!.isApproved(host, port).catch(() => false);
    if (!approvedElsewhere || this.closed || this.answered.get(key) !== known) return this.answered.get(key) ?? known;
    let ruleId: string;
    try {
      ruleId = this.approve(host, port);
    } catch {
      return known;
    }
    const approved: UnknownHostAnswer = { approved: true, ruleId };
    this.answered.set(key, approved);
    this.sharedCheckedAt.delete(key);
    return approved;
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
