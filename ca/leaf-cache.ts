// Per-host TLS SecureContexts for the gateway's SNICallback: a bounded LRU, so a handshake for a
// known host costs a Map lookup and a new host costs one leaf signature plus loading that leaf
// into a context made ahead of time.
// node:tls loads at the first handshake, not with the gateway (process.getBuiltinModule below).
import type tls from 'node:tls';
import { BoundedMap } from '../bounded-map.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { replaceableCertificateOf } from '../gateway/node-internals.js';
import type { CertificateAuthority } from './authority.js';
import { LEAF_BACKDATE_MS } from './leaf.js';

export interface LeafContextCacheOptions {
  /** Bound on cached hosts (default 1000); the least recently used goes first. */
  maxEntries?: number;
  /** Called on every lookup, for the gateway's hit/miss metrics. */
  onLookup?: (hit: boolean) => void;
}

export interface LeafContextCacheStats {
  hits: number;
  misses: number;
  size: number;
}

/** A cached leaf is re-issued once it is this close to its notAfter. */
export const LEAF_RENEW_BEFORE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_MAX_ENTRIES = 1000;

interface Entry {
  context: tls.SecureContext;
  renewAtMs: number;
  /** The leaf's notBefore (the issuing time less the backdating). */
  validFromMs: number;
}

export class LeafContextCache {
  private readonly entries: BoundedMap<string, Entry>;
  private readonly onLookup: ((hit: boolean) => void) | undefined;
  private hits = 0;
  private misses = 0;
  /**
   * A context that holds the shared leaf key and no certificate yet, made while the gateway has
   * nothing else to do: loading the key is ~0.5 ms of OpenSSL 3.0 decoder set-up (and the empty
   * context ~0.25 ms more) that a handshake for a never-seen host would otherwise wait for.
   */
  private spare: { context: tls.SecureContext; keyPem: string } | null = null;
  private spareScheduled = false;

  constructor(
    private readonly ca: CertificateAuthority,
    options: LeafContextCacheOptions = {},
  ) {
    const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) {
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `leaf cache maxEntries must be a positive integer (got ${String(maxEntries)})`);
    }
    this.entries = new BoundedMap({ capacity: maxEntries, refreshOnGet: true });
    this.onLookup = options.onLookup;
  }

  get stats(): LeafContextCacheStats {
    return { hits: this.hits, misses: this.misses, size: this.entries.size };
  }

  /** The SecureContext presenting a leaf for `host`; throws when `host` is not a valid leaf name. */
  secureContextFor(host: string): tls.SecureContext {
    const entry = this.entries.get(host);
    const now = Date.now();
    // Judged by the wall clock, as clients judge the leaf: one stepped back (NTP, a VM resumed)
    // before a cached leaf's notBefore gets a new leaf, not one clients reject as not yet valid
    // — test/e2e/faults.test.ts.
    if (entry !== undefined && entry.renewAtMs > now && entry.validFromMs <= now) {
      this.hits += 1;
      this.onLookup?.(true);
      return entry.context;
    }
    this.misses += 1;
    this.onLookup?.(false);
    const leaf = this.ca.issueLeafCertificate(host);
    const context = this.contextWith(leaf.certPem, leaf.keyPem);
    this.entries.set(host, { context, renewAtMs: leaf.notAfter.getTime() - LEAF_RENEW_BEFORE_MS, validFromMs: now - LEAF_BACKDATE_MS });
    return context;
  }

  /** Drops every cached context (after the CA changes, say). Counters are kept. */
  clear(): void {
    this.entries.clear();
    this.spare = null;
  }

  private contextWith(certPem: string, keyPem: string): tls.SecureContext {
    const spare = this.spare;
    this.spare = null;
    this.scheduleSpare(keyPem);
    // Only for the same key: OpenSSL silently drops a context's key when the certificate does not
    // match it, which would fail every handshake for the host.
    const native = spare !== null && spare.keyPem === keyPem ? replaceableCertificateOf(spare.context) : null;
    if (native === null) return process.getBuiltinModule('node:tls').createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' });
    native.setCert(certPem);
    return spare!.context;
  }

  /** Makes the next spare context once the current handshake has been answered. */
  private scheduleSpare(keyPem: string): void {
    if (this.spareScheduled) return;
    this.spareScheduled = true;
    setImmediate(() => {
      this.spareScheduled = false;
      if (this.spare === null) this.spare = { context: process.getBuiltinModule('node:tls').createSecureContext({ key: keyPem, minVersion: 'TLSv1.2' }), keyPem };
    }).unref();
  }
}
