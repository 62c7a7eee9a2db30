// The DNS server's decisions, published on one diagnostics channel; the audit log and the metrics
// subscribe. Names are made loggable first, so the log never becomes a store of exfiltrated data.
import { createHash } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { ReasonCode } from '../../reason-codes.js';

export const DNS_QUERY_CHANNEL = 'srt-gw:dns:query';

export type DnsDecision = 'synthetic' | 'nodata' | 'denied' | 'refused' | 'rate-limited' | 'malformed';
export type TunnelSignal = 'long-label' | 'high-entropy' | 'burst';

export interface DnsQueryEvent {
  /** Client IP address (no port). */
  client: string;
  transport: 'udp' | 'tcp';
  /** The loggable name: see loggableName(). Empty when the packet had no readable question. */
  name: string;
  /** "A", "AAAA", "TXT", "HTTPS", "TYPE1234", or "" for a malformed packet. */
  qtype: string;
  decision: DnsDecision;
  /** The decision's stable code (reason-codes.ts): dnsReasonCode(). */
  code: ReasonCode;
  /** The rcode sent ("NOERROR", "NXDOMAIN", ...), or "none" when nothing was sent. */
  rcode: string;
  tunnelSignals: TunnelSignal[];
  /**
   * Only with --monitor, on a name no rule allows (decision "denied"): the query was answered as
   * for an allowed name instead of refused. A/AAAA were resolved upstream first (the rcode says
   * what came back); other types got an empty answer, with nothing sent upstream.
   */
  monitored?: true;
  /** Present when a wildcard rule ("*.example.test", "*") is what admits the name. */
  wildcard?: DnsWildcardUse;
  /** Why the query was refused, when the decision alone does not say (the wildcard cap). */
  reason?: string;
}

/** Where a name stands under the wildcard rule that admits it (gateway/dns/wildcard-names.ts). */
export interface DnsWildcardUse {
  /** The rule's id and host pattern. */
  rule: string;
  pattern: string;
  /** Distinct names seen under the rule in this gateway's life so far, refused ones included. */
  names: number;
  /** The policy's dns.maxNamesPerWildcard (default 300). */
  cap: number;
  /** The first query for this name under the rule. */
  firstSeen: boolean;
  /** The cap was reached and the name is new: it was refused. */
  capped: boolean;
}

export const dnsQueryChannel = diagnosticsChannel.channel(DNS_QUERY_CHANNEL);

/** The code of a DNS decision; `wildcardCapped`: a wildcard rule's name cap refused the name. */
export function dnsReasonCode(decision: DnsDecision, wildcardCapped = false): ReasonCode {
  switch (decision) {
    case 'synthetic':
      return 'name-allowed';
    case 'nodata':
      return 'record-type-not-answered';
    case 'denied':
      return wildcardCapped ? 'wildcard-cap-reached' : 'host-not-allowed';
    case 'refused':
      return 'query-refused';
    case 'rate-limited':
      return 'rate-limited';
    case 'malformed':
      return 'malformed-query';
  }
}

export const LOGGABLE_NAME_MAX = 64;

/**
 * Names up to 64 characters as they are; longer ones cut to 64 and suffixed with
 * "…#" and the first 12 hex digits of the full name's SHA-256, so repeats can be correlated.
 */
export function loggableName(name: string): string {
  // SECURITY: a tunnel's payload lives in long names; logging them whole would copy the
  // exfiltrated data into our own log — test: gateway/dns/query-events.test.ts.
  if (name.length <= LOGGABLE_NAME_MAX) return name;
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 12);
  return `${name.slice(0, LOGGABLE_NAME_MAX)}…#${digest}`;
}

const LONG_LABEL = 40;
const ENTROPY_BITS = 3.5;
const ENTROPY_MIN_LENGTH = 16;

/** Shannon entropy in bits per character (case-folded: DNS names are case-insensitive). */
export function shannonEntropy(text: string): number {
  if (text.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const char of text.toLowerCase()) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Signals of a tunnelling attempt that can be read from the name alone ("burst" comes from the rate limiter). */
export function nameTunnelSignals(labels: readonly string[]): TunnelSignal[] {
  let longest = '';
  for (const label of labels) if (label.length > longest.length) longest = label;
  const signals: TunnelSignal[] = [];
  if (longest.length > LONG_LABEL) signals.push('long-label');
  if (longest.length >= ENTROPY_MIN_LENGTH && shannonEntropy(longest) > ENTROPY_BITS) signals.push('high-entropy');
  return signals;
}
