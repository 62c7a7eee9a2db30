// Host names, IP literals and the host patterns rules are written with: one canonical form for
// each, so that a destination and a rule can be compared as plain strings or numbers.
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { BoundedMap } from '../bounded-map.js';

/** An IP address as a number. IPv4-mapped IPv6 addresses ("::ffff:1.2.3.4") are stored as IPv4. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly value: bigint;
}

/** A CIDR block; `base` has no bits set after the prefix. */
export interface IpRange {
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly prefix: number;
  readonly mask: bigint;
}

export type HostPattern =
  /** "*": any host name, never an IP literal. */
  | { readonly kind: 'any-name' }
  | { readonly kind: 'name'; readonly name: string }
  /** "*.example.test": suffix is ".example.test"; the apex never matches. */
  | { readonly kind: 'subdomains'; readonly suffix: string }
  | { readonly kind: 'address'; readonly address: IpAddress }
  | { readonly kind: 'range'; readonly range: IpRange };

export type ParsedHostPattern = { readonly pattern: HostPattern; readonly text: string } | { readonly error: string };

const MAX_NAME_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
const IPV4_BITS = 32;
const IPV6_BITS = 128;
const MAPPED_PREFIX_VALUE = 0xffffn << 32n;
const MAPPED_PREFIX_BITS = 96;
const NAME_PATTERN = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/**
 * The canonical form of a destination host, or null when it is not a valid host name or IP
 * literal: lower case, one trailing dot removed, IDN as punycode, IPv6 without brackets in
 * RFC 5952 form, IPv4-mapped IPv6 as the IPv4 address, and the numeric IPv4 spellings clients
 * accept ("2130706433", "0x7f.1") as the dotted address they mean.
 */
export function normalizeHost(input: string): string | null {
  // Every request names its host again (Host, :authority); the answer for a name is always the same.
  const known = normalizedHosts.get(input);
  if (known !== undefined) return known;
  const normalized = normalizeHostUncached(input);
  normalizedHosts.set(input, normalized);
  return normalized;
}

/** Bounded, because the names come from clients: when full the oldest goes (~1.5 µs a miss). */
const normalizedHosts = new BoundedMap<string, string | null>({ capacity: 4096 });

function normalizeHostUncached(input: string): string | null {
  if (input.length === 0 || input.length > MAX_NAME_LENGTH + 3) return null;
  if (input.startsWith('[')) {
    if (!input.endsWith(']')) return null;
    const inner = input.slice(1, -1);
    return isIPv6(inner) ? normalizeIpLiteral(inner) : null;
  }
  if (input.includes(':')) return isIPv6(input) ? normalizeIpLiteral(input) : null;

  const name = input.endsWith('.') ? input.slice(0, -1) : input;
  if (name.length === 0) return null;
  // domainToASCII also percent-decodes and maps odd characters; only let through what a host
  // name may hold (non-ASCII is left for its IDNA mapping).
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code < 0x80 && !isNameCharacter(code)) return null;
  }
  const ascii = domainToASCII(name);
  if (ascii.length === 0) return null;
  // SECURITY: numeric forms become the address a client would connect to, so they are judged as
  // IP literals (denied unless a rule names the address) — host.test.ts "decimal IPv4".
  if (isIPv4(ascii)) return ascii;
  if (ascii.length > MAX_NAME_LENGTH || !NAME_PATTERN.test(ascii)) return null;
  for (const label of ascii.split('.')) if (label.length > MAX_LABEL_LENGTH) return null;
  return ascii;
}

/** True for an IPv4 or IPv6 literal (without brackets), the forms normalizeHost() returns. */
export function isIpLiteral(host: string): boolean {
  // Every IPv6 literal has a ':'; a name never reaches isIPv6, whose pattern V8 compiles on its
  // first use, a few ms of `srt-gw run --allow NAME`'s start-up.
  return isIPv4(host) || (host.includes(':') && isIPv6(host));
}

/**
 * Whether a host matches a rule's host pattern. Both sides are normalised first; an invalid host
 * or pattern matches nothing.
 */
export function hostMatchesPattern(host: string, pattern: string): boolean {
  const normalized = normalizeHost(host);
  const parsed = parseHostPattern(pattern);
  if (normalized === null || 'error' in parsed) return false;
  return matchHostPattern(parsed.pattern, normalized, isIpLiteral(normalized) ? parseIpAddress(normalized) : null);
}

/**
 * Matches a compiled pattern against a normalised host. `address` is the host parsed with
 * parseIpAddress() when it is an IP literal, else null.
 */
export function matchHostPattern(pattern: HostPattern, host: string, address: IpAddress | null): boolean {
  // SECURITY: an IP literal only ever matches a rule that names the address or its CIDR, never
  // "*" or "*.x" (DESIGN invariant 2) — host.test.ts "IP literal never matches a name wildcard".
  if (address !== null) {
    if (pattern.kind === 'address') return pattern.address.family === address.family && pattern.address.value === address.value;
    if (pattern.kind === 'range') return rangeContains(pattern.range, address);
    return false;
  }
  switch (pattern.kind) {
    case 'any-name':
      return true;
    case 'name':
      return host === pattern.name;
    case 'subdomains':
      return host.length > pattern.suffix.length && host.endsWith(pattern.suffix);
    default:
      return false;
  }
}

/**
 * Parses a rule's host pattern into its canonical text and compiled form, or says what is wrong
 * with it as a phrase that follows the field name ("host ...").
 */
export function parseHostPattern(input: string): ParsedHostPattern {
  if (input.length === 0) return { error: 'must not be empty; write a host name such as "api.example.test"' };
  if (input === '*') return { pattern: { kind: 'any-name' }, text: '*' };
  if (input.includes('://')) return { error: 'is a URL; write only the host name, such as "api.example.test"' };
  if (/^[^:]+:[0-9]+$/.test(input)) return { error: 'has a port in it; write the host alone and put the port in "port:"' };
  if (input.startsWith('*.')) {
    const rest = input.slice(2);
    if (rest.includes('*')) return { error: WILDCARD_PLACEMENT };
    const suffix = normalizeHost(rest);
    if (suffix === null) return { error: 'is not a valid wildcard: the part after "*." must be a host name' };
    if (isIpLiteral(suffix)) return { error: 'is not a valid wildcard: the part after "*." must be a host name, not an IP address' };
    return { pattern: { kind: 'subdomains', suffix: `.${suffix}` }, text: `*.${suffix}` };
  }
  if (/^\*[A-Za-z0-9][^*]*$/.test(input)) {
    return { error: `has a "*" that is not followed by "."; write "*.${input.slice(1)}" to match its subdomains` };
  }
  if (input.includes('*')) return { error: WILDCARD_PLACEMENT };
  if (input.includes('/')) return parseCidr(input);
  const host = normalizeHost(input);
  if (host === null) return { error: 'is not a valid host name or IP address' };
  if (isIpLiteral(host)) {
    const address = parseIpAddress(host);
    if (address === null) return { error: 'is not a valid IP address' };
    return { pattern: { kind: 'address', address }, text: host };
  }
  return { pattern: { kind: 'name', name: host }, text: host };
}

const WILDCARD_PLACEMENT =
  'has a "*" that is not the whole first label; write "*.example.test" to match the subdomains of example.test, or "*" for any host name';

/** Parses an IPv4 or IPv6 literal (no brackets, no zone id); IPv4-mapped IPv6 becomes IPv4. */
export function parseIpAddress(text: string): IpAddress | null {
  if (isIPv4(text)) return { family: 4, value: parseIpv4(text) };
  if (!isIPv6(text) || text.includes('%')) return null;
  const value = parseIpv6(text);
  if (value === null) return null;
  if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
  return { family: 6, value };
}

/** Whether a CIDR block holds an address; IPv4 addresses are compared as IPv4-mapped against IPv6 blocks. */
export function rangeContains(range: IpRange, address: IpAddress): boolean {
  let value = address.value;
  if (range.family !== address.family) {
    if (range.family === 4) return false;
    value = MAPPED_PREFIX_VALUE | value;
  }
  return (value & range.mask) === range.base;
}

/** Formats an address canonically (IPv6 per RFC 5952: lower case, longest zero run as "::"). */
export function formatIpAddress(address: IpAddress): string {
  if (address.family === 4) {
    const v = Number(address.value);
    return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((address.value >> shift) & 0xffffn));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function normalizeIpLiteral(text: string): string | null {
  const address = parseIpAddress(text);
  return address === null ? null : formatIpAddress(address);
}

function parseCidr(input: string): ParsedHostPattern {
  const slash = input.indexOf('/');
  const addressText = input.slice(0, slash);
  const prefixText = input.slice(slash + 1);
  const isV6Syntax = addressText.includes(':');
  const bits = isV6Syntax ? IPV6_BITS : IPV4_BITS;
  const syntaxError = { error: `is not a valid CIDR block; write an address and a prefix length, such as "203.0.113.0/24" or "fd00::/8"` };
  if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return syntaxError;
  const prefix = Number(prefixText);
  if (prefix > bits) return { error: `is not a valid CIDR block: the prefix length must be 0-${bits} for IPv${isV6Syntax ? 6 : 4}` };
  // Parse the address by its spelling, so "::ffff:10.0.0.0/104" keeps its IPv6 prefix length.
  let family: 4 | 6 = 4;
  let value: bigint | null = null;
  if (isIPv4(addressText) && !isV6Syntax) {
    value = parseIpv4(addressText);
  } else if (isIPv6(addressText) && !addressText.includes('%')) {
    family = 6;
    value = parseIpv6(addressText);
  }
  if (value === null) return syntaxError;
  const mask = prefixMask(bits, prefix);
  if ((value & mask) !== value) {
    const suggestion = formatRange(family, value & mask, prefix);
    return { error: `has bits set after the /${prefix} prefix; write "${suggestion}"` };
  }
  // An IPv6 block inside ::ffff:0:0/96 is an IPv4 block; store it as one so it compares with
  // the IPv4 addresses normalizeHost() produces.
  if (family === 6 && prefix >= MAPPED_PREFIX_BITS && value >> 32n === 0xffffn) {
    return rangePattern(4, value & 0xffffffffn, prefix - MAPPED_PREFIX_BITS);
  }
  return rangePattern(family, value, prefix);
}

function rangePattern(family: 4 | 6, base: bigint, prefix: number): ParsedHostPattern {
  const bits = family === 4 ? IPV4_BITS : IPV6_BITS;
  const range: IpRange = { family, base, prefix, mask: prefixMask(bits, prefix) };
  return { pattern: { kind: 'range', range }, text: formatRange(family, base, prefix) };
}

function formatRange(family: 4 | 6, base: bigint, prefix: number): string {
  return `${formatIpAddress({ family, value: base })}/${prefix}`;
}

function prefixMask(bits: number, prefix: number): bigint {
  const all = (1n << BigInt(bits)) - 1n;
  return (all >> BigInt(bits - prefix)) << BigInt(bits - prefix);
}

function parseIpv4(text: string): bigint {
  let value = 0n;
  for (const part of text.split('.')) value = (value << 8n) | BigInt(Number(part));
  return value;
}

/** Parses a string net.isIPv6() accepted; returns null only on shapes it should not have let through. */
function parseIpv6(text: string): bigint | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = groupsOf(halves[0] ?? '');
  const tail = halves.length === 2 ? groupsOf(halves[1] ?? '') : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  let value = 0n;
  for (const group of [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail]) {
    value = (value << 16n) | BigInt(group);
  }
  return value;
}

function groupsOf(part: string): number[] | null {
  if (part.length === 0) return [];
  const groups: number[] = [];
  const pieces = part.split(':');
  for (let i = 0; i < pieces.length; i++) {
    const piece = pieces[i] ?? '';
    if (i === pieces.length - 1 && piece.includes('.')) {
      if (!isIPv4(piece)) return null;
      const v4 = Number(parseIpv4(piece));
      groups.push(v4 >>> 16, v4 & 0xffff);
    } else {
      if (!/^[0-9a-fA-F]{1,4}$/.test(piece)) return null;
      groups.push(parseInt(piece, 16));
    }
  }
  return groups;
}

function isNameCharacter(code: number): boolean {
  return (
    (code >= 0x61 && code <= 0x7a) || // a-z
    (code >= 0x41 && code <= 0x5a) || // A-Z
    (code >= 0x30 && code <= 0x39) || // 0-9
    code === 0x2d || // -
    code === 0x2e || // .
    code === 0x5f // _
  );
}
