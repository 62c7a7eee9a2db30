// Synthetic addresses handed to the sandbox for allowed names, and the map back from an address to
// the name it was issued for. The jail's redirector asks `nameFor(198.18.0.7)` to learn which host
// a connection was meant for, so the sandbox never learns (or chooses) a real upstream address.
//
// IPv4: 198.18.0.0/15 (RFC 2544 benchmarking range; never routed on the internet).
// IPv6: fd73:7274:6777::/64, a fixed ULA prefix ("srtgw" in ASCII after fd); RFC 4193 wants a random
// global ID, but the range never leaves the machine, and a recognisable constant helps debugging.
// One index per name serves both families: name #7 is 198.18.0.7 and fd73:7274:6777::7.
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { isIPv4, isIPv6 } from 'node:net';

export const SYNTHETIC_IPV4_CIDR = '198.18.0.0/15';
export const SYNTHETIC_IPV6_CIDR = 'fd73:7274:6777::/64';

const IPV4_BASE = 0xc6120000; // 198.18.0.0
const IPV6_PREFIX_GROUPS = [0xfd73, 0x7274, 0x6777, 0];
/** 198.18.0.1 .. 198.19.255.254: skips the network address and the last one of the /15. */
export const SYNTHETIC_POOL_CAPACITY = 2 ** 17 - 2;

/** Raised when every synthetic address is taken; names are never silently reassigned. */
export class SyntheticPoolExhaustedError extends SrtGwError {
  constructor(capacity: number) {
    super(ErrorCodes.DNS_POOL_EXHAUSTED, `the synthetic address pool is full (${capacity} names); restart the gateway or allow fewer distinct names`);
    this.name = 'SyntheticPoolExhaustedError';
  }
}

export interface SyntheticAddressPoolOptions {
  /** Smaller bound for tests; at most SYNTHETIC_POOL_CAPACITY. */
  capacity?: number;
}

export class SyntheticAddressPool {
  readonly capacity: number;
  private readonly indexByName = new Map<string, number>();
  private readonly names: string[] = ['']; // index 0 is never issued

  constructor(options: SyntheticAddressPoolOptions = {}) {
    this.capacity = Math.max(1, Math.min(SYNTHETIC_POOL_CAPACITY, options.capacity ?? SYNTHETIC_POOL_CAPACITY));
  }

  /** Number of names that hold an address. */
  get size(): number {
    return this.indexByName.size;
  }

  has(name: string): boolean {
    return this.indexByName.has(normalizeName(name));
  }

  /** The stable synthetic address for `name`; issues one on first use. Throws when the pool is full. */
  addressFor(name: string, family: 4 | 6): string {
    const key = normalizeName(name);
    let index = this.indexByName.get(key);
    if (index === undefined) {
      if (this.indexByName.size >= this.capacity) throw new SyntheticPoolExhaustedError(this.capacity);
      index = this.names.length;
      this.names.push(key);
      this.indexByName.set(key, index);
    }
    return family === 4 ? ipv4ForIndex(index) : ipv6ForIndex(index);
  }

  /** The name a synthetic address was issued for; undefined for any other address. */
  nameFor(address: string): string | undefined {
    const index = indexOfAddress(address);
    return index === undefined ? undefined : this.names[index];
  }
}

/** Whether `address` lies in one of the synthetic ranges (issued or not). */
export function isSyntheticAddress(address: string): boolean {
  return indexOfAddress(address) !== undefined;
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function ipv4ForIndex(index: number): string {
  const value = (IPV4_BASE + index) >>> 0;
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff].join('.');
}

function ipv6ForIndex(index: number): string {
  const high = Math.floor(index / 0x10000);
  const low = index & 0xffff;
  const prefix = 'fd73:7274:6777:';
  return high === 0 ? `${prefix}:${low.toString(16)}` : `${prefix}:${high.toString(16)}:${low.toString(16)}`;
}

function indexOfAddress(address: string): number | undefined {
  let text = address.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(text);
  if (mapped?.[1]) text = mapped[1];
  let index: number | undefined;
  if (isIPv4(text)) {
    const value = text.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
    index = value - IPV4_BASE;
  } else if (isIPv6(text)) {
    const groups = expandIPv6(text);
    if (!groups || IPV6_PREFIX_GROUPS.some((g, i) => groups[i] !== g) || groups[4] !== 0 || groups[5] !== 0) return undefined;
    index = (groups[6] ?? 0) * 0x10000 + (groups[7] ?? 0);
  }
  if (index === undefined || index < 1 || index > SYNTHETIC_POOL_CAPACITY) return undefined;
  return index;
}

/** "fd73::7" → eight 16-bit numbers; undefined for forms we do not expect (embedded IPv4). */
export function expandIPv6(address: string): number[] | undefined {
  const text = address.replace(/%.*$/, '').toLowerCase();
  if (text.includes('.')) return undefined;
  const [head, tail, extra] = text.split('::');
  if (extra !== undefined) return undefined;
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}
