// Which upstream addresses are private — the gateway host itself, its networks, cloud metadata —
// and which of them a policy opens. Pure: the gateway passes in its own interface addresses and
// calls this after resolving an allowed name, before it connects.
import { parseHostPattern, parseIpAddress, rangeContains, type IpAddress, type IpRange } from './host.js';
import type { Policy } from './types.js';

/** What kind of private range an address is in (for tests and messages). */
export type PrivateRangeKind =
  | 'this-network'
  | 'loopback'
  | 'private'
  | 'shared'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'unspecified'
  | 'unique-local'
  | 'site-local'
  | 'local-nat64';

/**
 * The ranges are parsed on the first check, not when the gateway loads: parsing an IPv6 block
 * compiles node's IPv6 pattern, a few ms of every `srt-gw run`'s start-up, also of runs that
 * never connect anywhere.
 */
type PrivateRange = { readonly range: IpRange; readonly kind: PrivateRangeKind };
let privateRanges: readonly PrivateRange[] | null = null;
const privateRangesOnce = (): readonly PrivateRange[] =>
  (privateRanges ??= (
    [
      ['0.0.0.0/8', 'this-network'],
      ['10.0.0.0/8', 'private'],
      ['100.64.0.0/10', 'shared'], // CGNAT, RFC 6598
      ['127.0.0.0/8', 'loopback'],
      ['169.254.0.0/16', 'link-local'], // cloud metadata (169.254.169.254) lives here
      ['172.16.0.0/12', 'private'],
      ['192.168.0.0/16', 'private'],
      ['224.0.0.0/4', 'multicast'],
      ['255.255.255.255/32', 'broadcast'],
      ['::/128', 'unspecified'],
      ['::1/128', 'loopback'],
      ['64:ff9b:1::/48', 'local-nat64'], // RFC 8215: a network's own translator
      ['fc00::/7', 'unique-local'],
      ['fe80::/10', 'link-local'],
      ['fec0::/10', 'site-local'],
      ['ff00::/8', 'multicast'],
    ] as const
  ).map(([cidr, kind]) => ({ range: rangeOf(cidr), kind })));

/**
 * IPv6 forms that carry an IPv4 address a packet may end up at: NAT64 (64:ff9b::/96, low 32
 * bits), 6to4 (2002::/16, the 32 bits after the prefix) and IPv4-compatible (::/96, deprecated).
 * IPv4-mapped (::ffff:0:0/96) needs no entry: parseIpAddress() already turns it into IPv4.
 */
type EmbeddingRange = { readonly range: IpRange; readonly shift: bigint };
let embeddingRanges: readonly EmbeddingRange[] | null = null;
const embeddingRangesOnce = (): readonly EmbeddingRange[] =>
  (embeddingRanges ??= [
    { range: rangeOf('64:ff9b::/96'), shift: 0n },
    { range: rangeOf('2002::/16'), shift: 80n },
    { range: rangeOf('::/96'), shift: 0n },
  ]);

/** The private range an address is in, looking through IPv6 forms that embed an IPv4 address; null when public. */
export function privateRangeOf(address: IpAddress): PrivateRangeKind | null {
  for (const { range, kind } of privateRangesOnce()) if (rangeContains(range, address)) return kind;
  const embedded = embeddedIpv4(address);
  return embedded === null ? null : privateRangeOf(embedded);
}

/** The IPv4 address an IPv6 NAT64 / 6to4 / IPv4-compatible address carries, else null. */
export function embeddedIpv4(address: IpAddress): IpAddress | null {
  if (address.family !== 6) return null;
  for (const { range, shift } of embeddingRangesOnce()) {
    if (rangeContains(range, address)) return { family: 4, value: (address.value >> shift) & 0xffffffffn };
  }
  return null;
}

/** Whether the address is one of `ownAddresses` (the gateway host's interfaces). */
function isOwnAddress(address: IpAddress, ownAddresses: readonly IpAddress[]): boolean {
  return ownAddresses.some((own) => own.family === address.family && own.value === address.value);
}

export type DestinationVerdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

export interface DestinationFacts {
  /** The policy in force: its allow rules that name addresses or ranges, and allowPrivateDestinations. */
  readonly policy: Policy;
  /** The gateway host's own addresses (its network interfaces). */
  readonly ownAddresses: readonly IpAddress[];
}

const ALLOWED: DestinationVerdict = Object.freeze({ allowed: true });

/**
 * Whether the gateway may connect to `addressText`, an address it resolved for an allowed name.
 * Private addresses and the host's own are refused unless an allow rule names the address or a
 * range holding it, or the policy's allowPrivateDestinations holds it.
 */
export function checkDestinationAddress(addressText: string, facts: DestinationFacts): DestinationVerdict {
  const address = parseIpAddress(addressText);
  // A zone id or anything else that is not a plain address cannot be checked: refused.
  if (address === null) return { allowed: false, reason: `destination ${addressText} is not a plain IP address` };
  if (openedBy(facts.policy).some((range) => rangeContains(range, address))) return ALLOWED;
  if (privateRangeOf(address) !== null) return { allowed: false, reason: `destination ${addressText} is a private address` };
  if (isOwnAddress(address, facts.ownAddresses)) return { allowed: false, reason: `destination ${addressText} is an address of the gateway's own host` };
  return ALLOWED;
}

const openedByPolicy = new WeakMap<Policy, readonly IpRange[]>();

/** The ranges a policy opens: allow rules whose host is an address or CIDR, then allowPrivateDestinations. */
function openedBy(policy: Policy): readonly IpRange[] {
  const known = openedByPolicy.get(policy);
  if (known !== undefined) return known;
  const ranges: IpRange[] = [];
  for (const rule of policy.rules) {
    if (rule.action === 'allow') {
      const range = addressPatternRange(rule.host);
      if (range !== null) ranges.push(range);
    }
  }
  for (const entry of policy.allowPrivateDestinations ?? []) {
    const range = addressPatternRange(entry.range);
    if (range !== null) ranges.push(range);
  }
  openedByPolicy.set(policy, ranges);
  return ranges;
}

/** An IP address (as a one-address range) or a CIDR block; null for names and wildcards. */
function addressPatternRange(text: string): IpRange | null {
  const parsed = parseHostPattern(text);
  if ('error' in parsed) return null;
  const pattern = parsed.pattern;
  if (pattern.kind === 'range') return pattern.range;
  if (pattern.kind !== 'address') return null;
  const bits = pattern.address.family === 4 ? 32n : 128n;
  return { family: pattern.address.family, base: pattern.address.value, prefix: Number(bits), mask: (1n << bits) - 1n };
}

function rangeOf(cidr: string): IpRange {
  const range = addressPatternRange(cidr);
  if (range === null) throw new Error(`not a CIDR block: ${cidr}`);
  return range;
}
