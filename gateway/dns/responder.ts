// Answers one DNS query packet from the sandbox, from policy: admitted names get a stable
// synthetic address, everything else NXDOMAIN. No sockets here: the server (server.ts) and the
// tests drive it.
// SECURITY: nothing here opens a socket towards any other DNS server, so no query from the
// sandbox ever causes an upstream query (DNS tunnelling) — test: test/e2e/dns-tunnel.test.ts.
// The one exception is report mode (--monitor), which lets data out by design: an A or AAAA
// query for a name no rule allows is checked through the gateway's own upstream resolver
// (`monitor` below); no other query type ever is — test/e2e/monitor-mode.test.ts.
import {
  QTYPE,
  CLASS_ANY,
  CLASS_IN,
  encodeDnsResponse,
  encodeErrorResponse,
  encodeName,
  parseDnsQuery,
  qtypeName,
  udpLimitFor,
  type AnswerRecord,
  type DnsQuestion,
  type ParsedQuery,
  type RcodeName,
} from './dns-message.js';
import { dnsQueryChannel, dnsReasonCode, loggableName, nameTunnelSignals, type DnsDecision, type DnsQueryEvent, type TunnelSignal } from './query-events.js';
import { ClientRateLimiter, type ClientRateLimitOptions } from './rate-limiter.js';
import { expandIPv6, isSyntheticAddress, type SyntheticAddressPool } from './synthetic-pool.js';
import type { WildcardNameCap, WildcardNameVerdict } from './wildcard-names.js';

/** Whether a name exists upstream: it has an address, it has none (NXDOMAIN, no A/AAAA), or no answer came. */
export type NameExistence = 'found' | 'none' | 'failed';

/** Report mode's view upstream: the gateway's own resolver, asked only for names no rule allows. */
export interface DnsMonitorLookup {
  exists(name: string): Promise<NameExistence>;
}

/** What the DNS server needs from the policy: could any rule allow a connection to `host`? */
export interface DnsAdmission {
  /** `host` is normalised: lower-case, no trailing dot, only letters, digits, "-", "_" and dots. */
  couldAllowHost(host: string): boolean;
}

export interface DnsResponderOptions {
  admission: DnsAdmission;
  pool: SyntheticAddressPool;
  /** Answer for names no rule could allow (default NXDOMAIN). */
  denyRcode?: 'NXDOMAIN' | 'REFUSED';
  /** TTL of synthetic answers in seconds (default 60; the address is stable anyway). */
  answerTtlSeconds?: number;
  /** Per-client limit; false disables it. */
  rateLimit?: (ClientRateLimitOptions & { action?: 'refuse' | 'drop' }) | false;
  /**
   * Receives every query decision. Default: the process-wide srt-gw:dns:query channel. A gateway
   * passes its own event bus, so two gateways in one process keep their decisions apart.
   */
  onQuery?: (event: DnsQueryEvent) => void;
  /**
   * Report mode (--monitor): a name no rule allows is answered like an allowed one (a synthetic
   * address) when `monitor` finds it upstream, and logged as a would-be denial. Absent: denied.
   */
  monitor?: DnsMonitorLookup;
  /**
   * Bounds the new names each wildcard rule admits (wildcard-names.ts). Absent: no bound, as for
   * a server that only ever answers from policy and whose answers cause no lookup anywhere.
   */
  wildcardNames?: Pick<WildcardNameCap, 'check'>;
}

type Transport = 'udp' | 'tcp';
type AcceptedQuery = Extract<ParsedQuery, { kind: 'query' }>;

interface Outcome {
  decision: DnsDecision;
  rcode: RcodeName;
  answers?: AnswerRecord[];
  /** A denial report mode let through (DnsQueryEvent.monitored). */
  monitored?: true;
  wildcard?: WildcardNameVerdict;
}

/** Turns one query packet into one answer packet (or none). No sockets: the server and tests drive it. */
export class DnsResponder {
  readonly pool: SyntheticAddressPool;
  private readonly admission: DnsAdmission;
  private readonly denyRcode: 'NXDOMAIN' | 'REFUSED';
  private readonly ttl: number;
  private readonly limiter: ClientRateLimiter | null;
  private readonly overLimitAction: 'refuse' | 'drop';
  private readonly onQuery: ((event: DnsQueryEvent) => void) | undefined;
  private readonly monitor: DnsMonitorLookup | undefined;
  private readonly wildcardNames: Pick<WildcardNameCap, 'check'> | undefined;
  /** Report mode's upstream lookups not yet answered. */
  private pendingLookups = 0;

  constructor(options: DnsResponderOptions) {
    this.onQuery = options.onQuery;
    this.wildcardNames = options.wildcardNames;
    this.monitor = options.monitor;
    this.admission = options.admission;
    this.pool = options.pool;
    this.denyRcode = options.denyRcode ?? 'NXDOMAIN';
    this.ttl = Math.max(0, Math.floor(options.answerTtlSeconds ?? 60));
    this.limiter = options.rateLimit === false ? null : new ClientRateLimiter(options.rateLimit ?? {});
    this.overLimitAction = (options.rateLimit && options.rateLimit.action) || 'refuse';
  }

  /**
   * The answer to send back, or null to stay silent. Never throws, never rejects. A promise only
   * in report mode, for a query that waits for an upstream lookup; every other answer is immediate.
   */
  respond(packet: Buffer, client: string, transport: Transport): Buffer | null | Promise<Buffer | null> {
    let parsed: ParsedQuery;
    try {
      parsed = parseDnsQuery(packet);
    } catch {
      parsed = { kind: 'drop', reason: 'parser failure' };
    }
    const name = parsed.kind === 'query' ? parsed.question.name : '';
    const qtype = parsed.kind === 'query' ? qtypeName(parsed.question.qtype) : '';
    const signals: TunnelSignal[] = parsed.kind === 'query' ? nameTunnelSignals(parsed.question.labels) : [];

    // Malformed packets spend tokens too, so a flood of garbage is limited like a flood of queries.
    if (this.limiter && !this.limiter.take(client)) {
      signals.push('burst');
      let answer: Buffer | null = null;
      if (this.overLimitAction === 'refuse' && parsed.kind === 'query') {
        answer = encodeDnsResponse({ query: parsed, rcode: 'REFUSED', maxBytes: this.limitFor(parsed, transport) });
      } else if (this.overLimitAction === 'refuse' && parsed.kind === 'error') {
        answer = encodeErrorResponse(parsed.id, parsed.recursionDesired, 'REFUSED');
      }
      this.publish(client, transport, name, qtype, 'rate-limited', answer ? 'REFUSED' : 'none', signals);
      return answer;
    }

    if (parsed.kind === 'drop') {
      this.publish(client, transport, '', '', 'malformed', 'none', signals);
      return null;
    }
    if (parsed.kind === 'error') {
      this.publish(client, transport, '', '', 'malformed', parsed.rcode, signals);
      return encodeErrorResponse(parsed.id, parsed.recursionDesired, parsed.rcode);
    }

    const answer = (outcome: Outcome): Buffer => {
      this.publish(client, transport, name, qtype, outcome.decision, outcome.rcode, signals, outcome.monitored, outcome.wildcard);
      return encodeDnsResponse({ query: parsed, rcode: outcome.rcode, answers: outcome.answers, maxBytes: this.limitFor(parsed, transport) });
    };
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = this.decide(parsed);
    } catch {
      outcome = FAILED;
    }
    if (!(outcome instanceof Promise)) return answer(outcome);
    return outcome.catch(() => FAILED).then(answer).catch(() => null);
  }

  private decide(query: AcceptedQuery): Outcome | Promise<Outcome> {
    const { question } = query;
    if (query.edns && query.edns.version > 0) return { decision: 'refused', rcode: 'BADVERS' };
    if (question.qclass !== CLASS_IN && question.qclass !== CLASS_ANY) return { decision: 'refused', rcode: 'REFUSED' };
    if (question.qtype === QTYPE.AXFR || question.qtype === QTYPE.IXFR) return { decision: 'refused', rcode: 'REFUSED' };

    const reverse = reverseLookupAddress(question);
    if (reverse !== undefined && isSyntheticAddress(reverse)) {
      const target = this.pool.nameFor(reverse);
      if (target === undefined) return { decision: 'denied', rcode: 'NXDOMAIN' };
      if (question.qtype !== QTYPE.PTR) return { decision: 'nodata', rcode: 'NOERROR' };
      return { decision: 'synthetic', rcode: 'NOERROR', answers: [{ type: QTYPE.PTR, ttl: this.ttl, data: encodeName(target) }] };
    }
    // PTR for any other address: we hold no real reverse data and must not ask anyone.
    if (reverse !== undefined) return { decision: 'denied', rcode: 'NXDOMAIN' };
    if (!this.admits(question)) {
      if (this.monitor && isResolvableName(question)) return this.decideMonitored(question, this.monitor);
      return { decision: 'denied', rcode: this.denyRcode };
    }
    // SECURITY: every new name under a wildcard costs an upstream lookup once the program
    // connects to it, so the new names per wildcard rule are capped; beyond the cap a name is
    // refused before it gets an address — test/e2e/dns-tunnel.test.ts.
    const wildcard = this.wildcardNames?.check(question.name) ?? undefined;
    if (wildcard?.refusal !== undefined) return { decision: 'denied', rcode: this.denyRcode, wildcard };
    const via = wildcard === undefined ? {} : { wildcard };
    if (question.qtype === QTYPE.A || question.qtype === QTYPE.AAAA) return { decision: 'synthetic', rcode: 'NOERROR', answers: [this.syntheticAnswer(question)], ...via };
    // TXT, NULL, MX, CNAME, SRV, HTTPS, ANY, ... for an admitted name: the name exists, with no
    // data of that type. A tunnel needs payload-carrying answers; it gets none.
    return { decision: 'nodata', rcode: 'NOERROR', ...via };
  }

  /**
   * Report mode, a name no rule allows: answered as if a rule allowed it, so the program goes on
   * to connect and the gateway sees (and reports) what it would send there.
   */
  private decideMonitored(question: DnsQuestion, monitor: DnsMonitorLookup): Outcome | Promise<Outcome> {
    // SECURITY: only address queries are resolved upstream; TXT, NULL, MX and the rest get the
    // empty answer an allowed name gets and cause no upstream query, so a tunnel's
    // payload-carrying answers never come back — test/e2e/monitor-mode.test.ts.
    if (question.qtype !== QTYPE.A && question.qtype !== QTYPE.AAAA) return { decision: 'denied', rcode: 'NOERROR', monitored: true };
    // A flood of names would otherwise hold one pending answer each for as long as the upstream
    // takes: beyond the bound a query is answered SERVFAIL at once (the program retries).
    if (this.pendingLookups >= MAX_PENDING_MONITOR_LOOKUPS) return { decision: 'denied', rcode: 'SERVFAIL', monitored: true };
    this.pendingLookups++;
    // Resolved upstream first so a name that does not exist stays NXDOMAIN for the program, as it
    // would be without the gateway; the address the program gets is still synthetic.
    const lookup = monitor.exists(question.name).finally(() => this.pendingLookups--);
    return lookup.then((existence): Outcome => {
      if (existence === 'none') return { decision: 'denied', rcode: 'NXDOMAIN', monitored: true };
      if (existence === 'failed') return { decision: 'denied', rcode: 'SERVFAIL', monitored: true };
      return { decision: 'denied', rcode: 'NOERROR', answers: [this.syntheticAnswer(question)], monitored: true };
    });
  }

  /** The A or AAAA record of `question`'s synthetic address; throws when the pool is full. */
  private syntheticAnswer(question: DnsQuestion): AnswerRecord {
    const family = question.qtype === QTYPE.A ? 4 : 6;
    const address = this.pool.addressFor(question.name, family);
    return { type: question.qtype, ttl: this.ttl, data: addressData(address, family) };
  }

  private admits(question: DnsQuestion): boolean {
    if (!isResolvableName(question)) return false;
    try {
      return this.admission.couldAllowHost(question.name) === true;
    } catch {
      return false;
    }
  }

  private limitFor(query: AcceptedQuery, transport: Transport): number {
    return transport === 'tcp' ? 65535 : udpLimitFor(query.edns);
  }

  private publish(
    client: string,
    transport: Transport,
    name: string,
    qtype: string,
    decision: DnsDecision,
    rcode: string,
    tunnelSignals: TunnelSignal[],
    monitored?: true,
    wildcard?: WildcardNameVerdict,
  ): void {
    const onQuery = this.onQuery;
    if (!onQuery && !dnsQueryChannel.hasSubscribers) return;
    const code = dnsReasonCode(decision, wildcard?.refusal !== undefined);
    const event: DnsQueryEvent = { client, transport, name: loggableName(name), qtype, decision, code, rcode, tunnelSignals };
    if (monitored) event.monitored = true;
    if (wildcard) {
      event.wildcard = { rule: wildcard.rule, pattern: wildcard.pattern, names: wildcard.names, cap: wildcard.cap, firstSeen: wildcard.firstSeen, capped: wildcard.refusal !== undefined };
      if (wildcard.refusal !== undefined) event.reason = wildcard.refusal;
    }
    if (onQuery) onQuery(event);
    // Subscribers must not throw: node:diagnostics_channel re-raises their errors on the next tick.
    else dnsQueryChannel.publish(event);
  }
}

/** Report mode's upstream lookups in flight at once; later queries get SERVFAIL. */
const MAX_PENDING_MONITOR_LOOKUPS = 256;

// Fail closed: a full synthetic pool (SyntheticPoolExhaustedError) or any other failure answers
// SERVFAIL, never an address.
const FAILED: Outcome = { decision: 'refused', rcode: 'SERVFAIL' };

/** A name that may reach the policy (or, in report mode, the upstream resolver). */
function isResolvableName(question: DnsQuestion): boolean {
  // SECURITY: only plain names reach the policy, so a label holding a "." (or any odd byte)
  // cannot pose as an allowed name — test: gateway/dns/server.test.ts ("label holds a . byte").
  return question.plain && question.name.length > 0 && question.name.length <= 253;
}

/** The address a reverse-lookup name stands for ("7.0.18.198.in-addr.arpa" → "198.18.0.7"), else undefined. */
export function reverseLookupAddress(question: DnsQuestion): string | undefined {
  const labels = question.labels;
  const n = labels.length;
  if (n === 6 && labels[4] === 'in-addr' && labels[5] === 'arpa') {
    const octets = labels.slice(0, 4).reverse();
    if (octets.every((o) => /^(0|[1-9][0-9]{0,2})$/.test(o) && Number(o) <= 255)) return octets.join('.');
    return undefined;
  }
  if (n === 34 && labels[32] === 'ip6' && labels[33] === 'arpa') {
    const nibbles = labels.slice(0, 32).reverse();
    if (!nibbles.every((x) => /^[0-9a-f]$/.test(x))) return undefined;
    const groups: string[] = [];
    for (let i = 0; i < 32; i += 4) groups.push(nibbles.slice(i, i + 4).join(''));
    return groups.join(':');
  }
  return undefined;
}

function addressData(address: string, family: 4 | 6): Buffer {
  if (family === 4) return Buffer.from(address.split('.').map(Number));
  const data = Buffer.alloc(16);
  (expandIPv6(address) ?? []).forEach((group, i) => data.writeUInt16BE(group, i * 2));
  return data;
}
