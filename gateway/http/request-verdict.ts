// The checks of one request before anything is forwarded, in order, each able to end it:
// framing → authority → policy → credentials → budget. The verdict says which step refused it and
// why, or what to forward (target, path, headers with the credentials applied, the budget to charge).
import { applyCredentials } from '../../policies/credential-rewrite.js';
import type { ReasonCode } from '../../reason-codes.js';
import type { CompiledPolicy } from '../../policies/match.js';
import { findAmbiguousEncoding, normalizePath } from '../../policies/path.js';
import type { Rule } from '../../policies/types.js';
import type { CredentialOutcomeField, RequestStep } from '../audit/events.js';
import { formatAuthority, type ConnectionContext } from '../connection-context.js';
import { EMPTY_RULE_CREDENTIALS, type RuleCredentials } from '../credentials/credential-secrets.js';
import type { BudgetAccount, BudgetRefusal, EgressBudgets } from '../credentials/egress-budget.js';
import type { MaskPair } from '../credentials/secret-masker.js';
import type { UpstreamTarget } from '../upstream/upstream-client.js';
import { refusedPathCode, type ExchangeHead, type ExchangeReadResult } from './exchange.js';

export interface VerdictDependencies {
  /** Read once per request, so a reload never shows a request half of each policy. */
  currentPolicy(): CompiledPolicy;
  /** The credential rules of the policy in force, read together with currentPolicy(). */
  currentCredentials?(): RuleCredentials;
  /** Per-rule egress byte counts; absent = budgets are not enforced. */
  budgets?: EgressBudgets;
  /** Report mode: policy, credential and budget denials are recorded but let through. */
  monitor: boolean;
  /** The policy an authenticated client's requests are decided by (only its rules); absent: no clients. */
  clientPolicy?(clientId: string): CompiledPolicy | undefined;
}

export type Verdict =
  | { kind: 'reject'; step: RequestStep; status: number; rule: string | null; reason: string; code: ReasonCode; credential?: CredentialOutcomeField }
  | {
      kind: 'forward';
      target: UpstreamTarget;
      path: string;
      headers: string[];
      rule: string;
      reason: string;
      code: ReasonCode;
      /** A denial --monitor lets through: by which step, and why. */
      monitoredDenial: MonitoredDenial | null;
      credential?: CredentialOutcomeField;
      /** Injected secrets to mask in the response; empty when nothing was injected. */
      masks: MaskPair[];
      /** The rule's budget, when it has one and the body is counted as it streams. */
      budget: BudgetAccount | null;
      /** The shared budget's judgement of the request head, still to come (serve --state). */
      pendingBudget?: PendingBudget;
    };

/** The request head's charge to a shared budget, not yet answered. */
export interface PendingBudget {
  judgement: Promise<BudgetRefusal | null>;
  account: BudgetAccount;
  bytes: number;
}

/** A denial report mode (--monitor) let through: the step, reason and code it would have had. */
export interface MonitoredDenial {
  step: RequestStep;
  reason: string;
  code: ReasonCode;
}

/** `clientId`: the policy client an absolute-form request authenticated as (a tunnel's is on `connection`). */
export function evaluateRequest(read: ExchangeReadResult, connection: ConnectionContext | null, deps: VerdictDependencies, clientId?: string): Verdict {
  if (!read.ok) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: read.reason, code: read.code ?? 'malformed-request' };
  const head = read.head;
  const host = head.authorityHost!;
  let target: UpstreamTarget;
  if (connection) {
    // SECURITY: every request on a tunnel must name the tunnel's host (and port, if it names
    // one), else domain fronting — test/e2e/fronting.test.ts
    if (host !== connection.host || (head.authorityPort !== null && head.authorityPort !== connection.port)) {
      return {
        kind: 'reject',
        step: 'authority',
        status: 421,
        rule: null,
        reason: `request names ${formatAuthority(host, head.authorityPort ?? connection.port)} but the connection is for ${formatAuthority(connection.host, connection.port)}`,
        code: 'authority-mismatch',
      };
    }
    target = { scheme: connection.scheme, host: connection.host, port: connection.port };
  } else {
    if (head.scheme === null) {
      return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: 'srt-gw is a proxy: send absolute-form requests (http://host/path) or use CONNECT', code: 'not-a-proxy-request' };
    }
    target = { scheme: head.scheme, host, port: head.authorityPort ?? (head.scheme === 'https' ? 443 : 80) };
  }

  const queryStart = head.target.indexOf('?');
  const rawPath = queryStart < 0 ? head.target : head.target.slice(0, queryStart);
  // SECURITY: a path a decoding upstream would read differently is refused, not forwarded —
  // test/e2e/path-traversal.test.ts
  const ambiguous = findAmbiguousEncoding(rawPath);
  if (ambiguous !== null) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: `request path ${ambiguous}`, code: refusedPathCode(rawPath) };
  const normalized = normalizePath(rawPath);
  if ('error' in normalized) return { kind: 'reject', step: 'framing', status: 400, rule: null, reason: normalized.error, code: 'invalid-path' };
  const path = normalized.path;

  const fullPolicy = deps.currentPolicy();
  const client = connection?.clientId ?? clientId;
  // SECURITY: an authenticated client is decided by its own rules only, so one client's token
  // cannot use another's rule — test/e2e/serve-clients.test.ts "per-client rules"
  const policy = client === undefined ? fullPolicy : (deps.clientPolicy?.(client) ?? fullPolicy);
  const credentials = deps.currentCredentials?.() ?? EMPTY_RULE_CREDENTIALS;
  const monitor = deps.monitor;
  const decision = policy.decide({ host: target.host, port: target.port, method: head.method, path });
  const policyDenied = decision.action === 'deny';
  if (policyDenied && !monitor) {
    if (policy !== fullPolicy) {
      const refusedForClient = notForClient(fullPolicy, { host: target.host, port: target.port, method: head.method, path }, client!);
      if (refusedForClient !== null) return refusedForClient;
    }
    return { kind: 'reject', step: 'policy', status: 403, rule: decision.ruleId, reason: decision.reason, code: decision.code };
  }
  // Upstream sees exactly the path the policy saw (normalised), with the original query.
  let query = queryStart < 0 ? '' : head.target.slice(queryStart);
  const defaultPort = target.scheme === 'https' ? 443 : 80;
  let headers = ['host', formatAuthority(target.host, target.port, defaultPort), ...head.forwardHeaders];
  let monitoredDenial: MonitoredDenial | null = policyDenied ? { step: 'policy', reason: decision.reason, code: decision.code } : null;
  let credential: CredentialOutcomeField | undefined;
  let masks: MaskPair[] = [];
  let budget: BudgetAccount | null = null;
  let pendingBudget: PendingBudget | undefined;

  const rule = policyDenied ? undefined : ruleById(policy, decision.ruleId);
  const ruleCredentials = policyDenied ? undefined : credentials.get(decision.ruleId);
  // SECURITY: a secret is only ever sent inside TLS; injecting it into a plain-HTTP request
  // would hand it to anyone on the path — test/e2e/credentials.test.ts "plain HTTP".
  const injects = ruleCredentials?.some((entry) => entry.kind === 'inject') === true;
  if (injects && target.scheme !== 'https') {
    const reason = `rule ${decision.ruleId} injects a credential, which srt-gw sends only over https; use https://${formatAuthority(target.host, target.port, 443)}`;
    const code = 'credential-over-plain-http';
    if (!monitor) return { kind: 'reject', step: 'credentials', status: 403, rule: decision.ruleId, reason, code, credential: 'refused' };
    monitoredDenial = { step: 'credentials', reason, code };
    credential = 'refused';
  } else if (ruleCredentials !== undefined && ruleCredentials.length > 0) {
    const result = applyCredentials(decision.ruleId, ruleCredentials, headers, query);
    if (!result.ok) {
      if (!monitor) return { kind: 'reject', step: 'credentials', status: 403, rule: decision.ruleId, reason: result.reason, code: result.code, credential: 'refused' };
      // Report mode: logged as a denial, forwarded as sent — nothing injected.
      monitoredDenial = { step: 'credentials', reason: result.reason, code: result.code };
      credential = 'refused';
    } else {
      headers = result.headers;
      query = result.query;
      masks = result.masks;
      if (result.outcome !== null) credential = result.outcome;
      // A secret echoed in a compressed body could not be found to be masked.
      if (masks.length > 0) headers = withoutCompression(headers, head);
    }
  }

  if (rule?.budget !== undefined && deps.budgets !== undefined) {
    const account = deps.budgets.account(rule.id, rule.budget, client ?? '-');
    const contentLength = head.upgrade !== null ? null : declaredContentLength(head);
    // SECURITY: the request line and headers count, not only the body: a long query or header
    // carries data out as well as a body, and body-less requests are unlimited in number —
    // test/e2e/credentials.test.ts "budgets". Judged before anything is forwarded: the head with
    // a declared body (the whole request or nothing), or the head alone when the body streams
    // or it is a WebSocket (then counted as it flows: BudgetedUpload, handleUpgrade).
    const upFront = requestHeadBytes(head) + (contentLength ?? 0);
    const refusal = account.tryCharge(upFront);
    if (typeof refusal === 'string') {
      if (!monitor) return { kind: 'reject', step: 'budget', status: 429, rule: rule.id, reason: refusal, code: 'budget-exceeded', ...(credential ? { credential } : {}) };
      account.charge(upFront);
      monitoredDenial ??= { step: 'budget', reason: refusal, code: 'budget-exceeded' };
    } else if (refusal !== null) {
      // Shared budgets (serve --state) answer later: the pipeline waits for settleSharedBudget().
      pendingBudget = { judgement: refusal, account, bytes: upFront };
    }
    if (contentLength === null) budget = account;
  }

  return {
    kind: 'forward',
    target,
    path: path + query,
    headers,
    rule: decision.ruleId,
    reason: decision.reason,
    code: decision.code,
    monitoredDenial,
    ...(credential ? { credential } : {}),
    masks,
    budget,
    ...(pendingBudget ? { pendingBudget } : {}),
  };
}

/**
 * The verdict once the shared budget (serve --state) has judged the request head: the same
 * forward, a 429 (over the budget, or the state unreachable: fail closed), or under --monitor the
 * forward marked as a would-deny.
 */
export async function settleSharedBudget(verdict: Verdict & { kind: 'forward' }, monitor: boolean): Promise<Verdict> {
  const pending = verdict.pendingBudget;
  if (pending === undefined) return verdict;
  const refusal = await pending.judgement.catch((error: unknown): BudgetRefusal => ({ reason: `the shared budget state failed: ${(error as Error).message}`, code: 'budget-state-unavailable' }));
  const settled = { ...verdict };
  delete settled.pendingBudget;
  if (refusal === null) return settled;
  if (!monitor) {
    return { kind: 'reject', step: 'budget', status: 429, rule: verdict.rule, reason: refusal.reason, code: refusal.code, ...(verdict.credential ? { credential: verdict.credential } : {}) };
  }
  pending.account.charge(pending.bytes);
  settled.monitoredDenial ??= { step: 'budget', reason: refusal.reason, code: refusal.code };
  return settled;
}

/** A denial the whole policy would have allowed: the rule exists, but not for this client. */
function notForClient(fullPolicy: CompiledPolicy, facts: { host: string; port: number; method: string; path: string }, clientId: string): Verdict | null {
  const unrestricted = fullPolicy.decide(facts);
  if (unrestricted.action !== 'allow') return null;
  const reason = `rule ${unrestricted.ruleId} allows this request, but client ${clientId} may not use it (its rules: in clients:)`;
  return { kind: 'reject', step: 'policy', status: 403, rule: unrestricted.ruleId, reason, code: 'rule-not-for-client' };
}

const rulesByPolicy = new WeakMap<CompiledPolicy, ReadonlyMap<string, Rule>>();

function ruleById(policy: CompiledPolicy, id: string): Rule | undefined {
  let rules = rulesByPolicy.get(policy);
  if (rules === undefined) {
    rules = new Map(policy.policy.rules.map((rule) => [rule.id, rule]));
    rulesByPolicy.set(policy, rules);
  }
  return rules.get(id);
}

/**
 * The bytes of the request line and headers as the client sent them, in HTTP/1.1 framing whatever
 * the protocol. Headers the gateway does not forward (Host, hop-by-hop) are left out: they do not
 * leave.
 */
function requestHeadBytes(head: ExchangeHead): number {
  // "METHOD target HTTP/1.1\r\n" and the blank line that ends the head.
  let bytes = head.method.length + head.target.length + 13;
  for (let i = 0; i < head.forwardHeaders.length; i += 2) bytes += head.forwardHeaders[i]!.length + head.forwardHeaders[i + 1]!.length + 4;
  return bytes;
}

/** The body length the client declared (Content-Length), or null when it streams without one. */
function declaredContentLength(head: ExchangeHead): number | null {
  for (let i = 0; i < head.forwardHeaders.length; i += 2) {
    if (head.forwardHeaders[i] === 'content-length') {
      const value = Number(head.forwardHeaders[i + 1]);
      return Number.isSafeInteger(value) && value >= 0 ? value : null;
    }
  }
  return head.hasBody ? null : 0;
}

/** Asks for an uncompressed response (for WebSocket, no permessage-deflate; for gRPC, uncompressed messages). */
function withoutCompression(headers: string[], head: ExchangeHead): string[] {
  const upgrade = head.upgrade !== null;
  const kept: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'accept-encoding' || (head.grpc && name === 'grpc-accept-encoding') || (upgrade && name === 'sec-websocket-extensions')) continue;
    kept.push(name, headers[i + 1]!);
  }
  if (!upgrade) kept.push('accept-encoding', 'identity');
  // gRPC compresses each message inside the body, whatever the body's own encoding.
  if (head.grpc) kept.push('grpc-accept-encoding', 'identity');
  return kept;
}

