// The resolver the gateway itself uses to find an allowed upstream host. It is never driven by a
// sandbox DNS query (those are answered from policy by server.ts), only by the gateway connecting.
// Order: --resolve overrides, IP literals, /etc/hosts, then a bounded TTL cache in front of DNS.
import { promises as dnsPromises } from 'node:dns';
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { BoundedMap } from '../../bounded-map.js';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { normalizeHost } from '../../policies/host.js';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Says whether the gateway may connect to an address it resolved (destination-check.ts). */
export interface ResolvedAddressCheck {
  /** Null when allowed; else the error the connection fails with. */
  refusal(address: string): Error | null;
}

export interface UpstreamResolverOptions {
  /** --resolve HOST=IP: normalised (lower-case) host → IP literals. Checked first; causes no query. */
  overrides?: ReadonlyMap<string, string[]>;
  /** --dns-upstream "IP" / "IP:PORT" / "[IPv6]:PORT" (repeatable). Default: the system's resolv.conf servers. */
  dnsServers?: string[];
  /** Whether the hosts file applies (default true). It is re-read when its mtime or size changes. */
  useHostsFile?: boolean;
  /** Hosts file path (default /etc/hosts). */
  hostsFile?: string;
  /** Bound on cached host names, positive and negative (default 1000). */
  maxCacheEntries?: number;
  /** How long NXDOMAIN / no-address answers are remembered, in seconds (default 5). */
  negativeTtlSeconds?: number;
  /** Per-query timeout in ms (default 2000) and tries per server (default 2). */
  queryTimeoutMs?: number;
  queryTries?: number;
  /**
   * Checked for every address lookup() hands out (and resolveDestination() returns), except the
   * --resolve pins, which are the operator's own choice. Absent: nothing is checked.
   */
  addressCheck?: ResolvedAddressCheck;
  /**
   * Asked before a name is sent to a DNS server (not for overrides, the hosts file or a cached
   * answer): a message refuses the lookup, which fails with it. The wildcard name cap.
   */
  nameCheck?: (name: string) => string | null;
}

// `any`: the callback must accept both net's (err, address, family) and (err, addresses[]) forms.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LookupCallback = (...args: any[]) => void;

const MIN_TTL_SECONDS = 1;
const MAX_TTL_SECONDS = 3600;
const HOSTS_RECHECK_MS = 1000;

interface CacheEntry {
  expiresAt: number;
  addresses?: ResolvedAddress[];
  error?: SrtGwError;
}

interface HostsState {
  checkedAt: number;
  mtimeMs: number;
  size: number;
  entries: Map<string, ResolvedAddress[]>;
}

// c-ares error codes → the DNS-level words a user recognises; only the first two are answers
// (cacheable as negative), the rest are failures to get an answer.
const NEGATIVE_CODES: Record<string, string> = {
  ENOTFOUND: 'NXDOMAIN',
  ENODATA: 'no A or AAAA records',
};
const FAILURE_CODES: Record<string, string> = {
  ESERVFAIL: 'SERVFAIL',
  EREFUSED: 'REFUSED',
  ETIMEOUT: 'timed out',
  ECONNREFUSED: 'DNS server refused the connection',
  EFORMERR: 'FORMERR',
  EBADRESP: 'bad response',
};

export class UpstreamResolver {
  readonly lookup: (hostname: string, options: object, callback: LookupCallback) => void;

  private readonly overrides = new Map<string, ResolvedAddress[]>();
  private readonly resolver: dnsPromises.Resolver;
  private readonly useHostsFile: boolean;
  private readonly hostsFile: string;
  private readonly negativeTtlMs: number;
  /** Least recently used goes first when full. */
  private readonly cache: BoundedMap<string, CacheEntry>;
  private readonly inFlight = new Map<string, Promise<ResolvedAddress[]>>();
  /** The errors that are answers (NXDOMAIN, no A/AAAA records), as opposed to failures to get one. */
  private readonly negativeAnswers = new WeakSet<SrtGwError>();
  private hosts: HostsState | null = null;
  private hostsRefresh: Promise<void> | null = null;
  private readonly addressCheck: ResolvedAddressCheck | undefined;
  private readonly nameCheck: ((name: string) => string | null) | undefined;

  constructor(options: UpstreamResolverOptions = {}) {
    for (const [host, ips] of options.overrides ?? []) {
      const addresses = ips.map((ip) => ip.replace(/^\[|\]$/g, ''));
      const bad = addresses.find((ip) => isIP(ip) === 0);
      if (bad !== undefined || addresses.length === 0) {
        throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--resolve ${host}: "${bad ?? ''}" is not an IP address`);
      }
      const name = normalizeHost(host);
      if (name === null) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--resolve ${printable(host)}: not a valid host name`);
      this.overrides.set(name, sortAddresses(addresses.map(toResolved)));
    }
    this.resolver = new dnsPromises.Resolver({ timeout: options.queryTimeoutMs ?? 2000, tries: options.queryTries ?? 2 });
    if (options.dnsServers && options.dnsServers.length > 0) {
      try {
        this.resolver.setServers(options.dnsServers);
      } catch (error) {
        throw new SrtGwError(
          ErrorCodes.CONFIG_INVALID,
          `--dns-upstream ${options.dnsServers.join(', ')}: expected IP or IP:PORT (e.g. 127.0.0.1:5353)`,
          { cause: error },
        );
      }
    }
    this.useHostsFile = options.useHostsFile ?? true;
    this.hostsFile = options.hostsFile ?? '/etc/hosts';
    this.cache = new BoundedMap({ capacity: Math.max(1, Math.floor(options.maxCacheEntries ?? 1000)), refreshOnGet: true });
    this.negativeTtlMs = (options.negativeTtlSeconds ?? 5) * 1000;
    this.addressCheck = options.addressCheck;
    this.nameCheck = options.nameCheck;
    this.lookup = (hostname, options, callback) => this.lookupForConnect(hostname, options, callback);
  }

  /** Addresses for `host`, IPv4 first. Throws SrtGwError(UPSTREAM_DNS) when there are none. */
  async resolve(host: string): Promise<ResolvedAddress[]> {
    // The policy's normaliser: the resolver keys names exactly as the rules and the CLI do.
    const name = normalizeHost(host);
    if (name === null) {
      throw new SrtGwError(ErrorCodes.UPSTREAM_DNS, `could not resolve ${printable(host)}: not a valid host name`);
    }
    const literal = isIP(name);
    if (literal !== 0) return [{ address: name, family: literal as 4 | 6 }];
    const override = this.overrides.get(name);
    if (override) return override.map((a) => ({ ...a }));
    if (this.useHostsFile) {
      const fromHosts = (await this.hostsEntries()).get(name);
      if (fromHosts) return fromHosts.map((a) => ({ ...a }));
    }
    const cached = this.cache.get(name);
    if (cached) {
      if (cached.expiresAt > Date.now()) {
        if (cached.error) throw cached.error;
        return (cached.addresses ?? []).map((a) => ({ ...a }));
      }
      this.cache.delete(name);
    }
    let pending = this.inFlight.get(name);
    if (!pending) {
      // SECURITY: a name reaching a DNS server reaches its zone's owner; a connection whose SNI or
      // CONNECT host is a new name under a capped wildcard is refused here, whatever path it took
      // — gateway/dns/upstream-resolver.test.ts.
      const refusal = this.nameCheck?.(name) ?? null;
      if (refusal !== null) throw new SrtGwError(ErrorCodes.UPSTREAM_DNS, `could not resolve ${name}: ${refusal}`);
      pending = this.queryDns(name).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, pending);
    }
    return (await pending).map((a) => ({ ...a }));
  }

  /**
   * Whether `host` has an address, through the same overrides, hosts file, cache and servers as
   * resolve(): "none" for NXDOMAIN, no A/AAAA records or a name that is not valid, "failed" when
   * no answer came (timeout, SERVFAIL). Never rejects.
   */
  async exists(host: string): Promise<'found' | 'none' | 'failed'> {
    if (normalizeHost(host) === null) return 'none';
    try {
      await this.resolve(host);
      return 'found';
    } catch (error) {
      return error instanceof SrtGwError && this.negativeAnswers.has(error) ? 'none' : 'failed';
    }
  }

  /**
   * The addresses the gateway may connect to for `host`: resolve()'s, less those the address
   * check refuses. Throws the first refusal when it refuses them all.
   */
  async resolveDestination(host: string): Promise<ResolvedAddress[]> {
    return this.checked(host, await this.resolve(host));
  }

  /**
   * Why the gateway may not connect to `host` when it is an IP literal, else null. net.connect
   * never calls `lookup` for a literal, so connections to one are checked with this instead.
   */
  literalRefusal(host: string): Error | null {
    const name = normalizeHost(host);
    if (name === null || isIP(name) === 0 || this.addressCheck === undefined) return null;
    return this.addressCheck.refusal(name);
  }

  /** Number of cached names (positive and negative); for tests and metrics. */
  get cacheSize(): number {
    return this.cache.size;
  }

  /** Forgets cached answers (the hosts file is re-read on its own when it changes). */
  clearCache(): void {
    this.cache.clear();
  }

  private async queryDns(name: string): Promise<ResolvedAddress[]> {
    const [v4, v6] = await Promise.allSettled([
      this.resolver.resolve4(name, { ttl: true }),
      this.resolver.resolve6(name, { ttl: true }),
    ]);
    const addresses: ResolvedAddress[] = [];
    let ttl = MAX_TTL_SECONDS;
    if (v4.status === 'fulfilled') {
      for (const record of v4.value) {
        addresses.push({ address: record.address, family: 4 });
        ttl = Math.min(ttl, record.ttl);
      }
    }
    if (v6.status === 'fulfilled') {
      for (const record of v6.value) {
        addresses.push({ address: record.address, family: 6 });
        ttl = Math.min(ttl, record.ttl);
      }
    }
    if (addresses.length > 0) {
      ttl = Math.min(MAX_TTL_SECONDS, Math.max(MIN_TTL_SECONDS, ttl));
      this.cache.set(name, { expiresAt: Date.now() + ttl * 1000, addresses });
      return addresses;
    }
    const codes = [v4, v6].map((r) => (r.status === 'rejected' ? errorCode(r.reason) : 'ENODATA'));
    const cause = v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : undefined;
    // A failure to get an answer (timeout, SERVFAIL) wins over a negative answer for the other
    // family, and is not cached: the next connect asks again.
    const failure = codes.find((code) => !(code in NEGATIVE_CODES));
    if (failure !== undefined) {
      throw new SrtGwError(ErrorCodes.UPSTREAM_DNS, `could not resolve ${name}: ${FAILURE_CODES[failure] ?? failure}`, { cause });
    }
    const word = codes.includes('ENOTFOUND') ? NEGATIVE_CODES.ENOTFOUND : NEGATIVE_CODES.ENODATA;
    const error = new SrtGwError(ErrorCodes.UPSTREAM_DNS, `could not resolve ${name}: ${word}`, { cause });
    this.negativeAnswers.add(error);
    this.cache.set(name, { expiresAt: Date.now() + this.negativeTtlMs, error });
    throw error;
  }

  private async hostsEntries(): Promise<Map<string, ResolvedAddress[]>> {
    const now = Date.now();
    if (!this.hosts || now - this.hosts.checkedAt >= HOSTS_RECHECK_MS) {
      this.hostsRefresh ??= this.refreshHosts(now).finally(() => {
        this.hostsRefresh = null;
      });
      await this.hostsRefresh;
    }
    return this.hosts?.entries ?? new Map();
  }

  private async refreshHosts(now: number): Promise<void> {
    try {
      const info = await stat(this.hostsFile);
      if (this.hosts && this.hosts.mtimeMs === info.mtimeMs && this.hosts.size === info.size) {
        this.hosts.checkedAt = now;
        return;
      }
      const text = await readFile(this.hostsFile, 'utf8');
      this.hosts = { checkedAt: now, mtimeMs: info.mtimeMs, size: info.size, entries: parseHostsFile(text) };
    } catch {
      // No readable hosts file: nothing applies (DNS still does).
      this.hosts = { checkedAt: now, mtimeMs: -1, size: -1, entries: new Map() };
    }
  }

  /**
   * `addresses` less those the address check refuses; throws the first refusal when none is left.
   * What lookup() hands a connection comes from here, so the socket connects to exactly the
   * address that was checked — there is no second lookup.
   */
  private checked(host: string, addresses: ResolvedAddress[]): ResolvedAddress[] {
    const check = this.addressCheck;
    const name = normalizeHost(host);
    // --resolve pins a name to an address: the operator's explicit choice, not checked.
    if (check === undefined || name === null || (isIP(name) === 0 && this.overrides.has(name))) return addresses;
    const usable: ResolvedAddress[] = [];
    let firstRefusal: Error | null = null;
    for (const candidate of addresses) {
      const refusal = check.refusal(candidate.address);
      if (refusal === null) usable.push(candidate);
      else firstRefusal ??= refusal;
    }
    if (usable.length === 0 && firstRefusal !== null) throw firstRefusal;
    return usable;
  }

  private lookupForConnect(hostname: string, options: object | number, callback: LookupCallback): void {
    const opts = (typeof options === 'number' ? { family: options } : (options ?? {})) as {
      family?: number | string;
      all?: boolean;
    };
    const wanted = opts.family === 4 || opts.family === 'IPv4' ? 4 : opts.family === 6 || opts.family === 'IPv6' ? 6 : 0;
    this.resolve(hostname).then(
      (addresses) => {
        let usable: ResolvedAddress[];
        try {
          usable = this.checked(hostname, wanted === 0 ? addresses : addresses.filter((a) => a.family === wanted));
        } catch (refusal) {
          callback(refusal);
          return;
        }
        const first = usable[0];
        if (!first) {
          callback(new SrtGwError(ErrorCodes.UPSTREAM_DNS, `could not resolve ${normalizeHost(hostname) ?? printable(hostname)}: no IPv${wanted} address`));
        } else if (opts.all) {
          callback(null, usable);
        } else {
          callback(null, first.address, first.family);
        }
      },
      (error: unknown) => callback(error),
    );
  }
}

/** Parses hosts(5) text: "IP name [aliases...]", "#" comments; first lines win per address order. */
export function parseHostsFile(text: string): Map<string, ResolvedAddress[]> {
  const entries = new Map<string, ResolvedAddress[]>();
  for (const rawLine of text.split('\n')) {
    const fields = rawLine.replace(/#.*/, '').trim().split(/\s+/);
    const ip = (fields[0] ?? '').replace(/%.*$/, '');
    const family = isIP(ip);
    if (family === 0 || fields.length < 2) continue;
    for (const name of fields.slice(1)) {
      const key = normalizeHost(name);
      if (key === null) continue;
      const list = entries.get(key) ?? [];
      if (!list.some((a) => a.address === ip)) list.push({ address: ip, family: family as 4 | 6 });
      entries.set(key, list);
    }
  }
  for (const [key, list] of entries) entries.set(key, sortAddresses(list));
  return entries;
}

function toResolved(address: string): ResolvedAddress {
  return { address, family: isIP(address) as 4 | 6 };
}

function sortAddresses(list: ResolvedAddress[]): ResolvedAddress[] {
  return [...list.filter((a) => a.family === 4), ...list.filter((a) => a.family === 6)];
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function printable(host: string): string {
  const clean = host.replace(/[^\x21-\x7e]/g, '?');
  return clean.length > 80 ? `${clean.slice(0, 80)}…` : clean;
}
