import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { loadOrCreateCertificateAuthority, type CertificateAuthority } from './authority.js';
import { LeafContextCache } from './leaf-cache.js';

let work: string;
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'srt-gw-leaf-cache-test-'));
  ca = await loadOrCreateCertificateAuthority(path.join(work, 'ca'));
  otherCa = await loadOrCreateCertificateAuthority(path.join(work, 'other-ca'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});
afterEach(() => {
  vi.useRealTimers();
});

interface HandshakeResult {
  authorized: boolean;
  error?: string;
  peer?: tls.PeerCertificate;
}

async function withSniServer(cache: LeafContextCache, body: (port: number) => Promise<void>): Promise<void> {
  const server = tls.createServer({
    SNICallback: (servername, callback) => {
      try {
        callback(null, cache.secureContextFor(servername));
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  server.on('secureConnection', (socket) => socket.end('hello'));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await body((server.address() as AddressInfo).port);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function handshake(port: number, options: tls.ConnectionOptions): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    socket.once('secureConnect', () => {
      const result = { authorized: socket.authorized, peer: socket.getPeerCertificate(true) };
      socket.destroy();
      resolve(result);
    });
    socket.once('error', (error: Error & { code?: string }) => resolve({ authorized: false, error: error.code ?? error.message }));
  });
}

describe('LeafContextCache', () => {
  it('serves a leaf over a real TLS handshake that a client trusting the CA verifies', async () => {
    const cache = new LeafContextCache(ca);
    await withSniServer(cache, async (port) => {
      const trusting = await handshake(port, { servername: 'api.example.test', ca: ca.certPem });
      expect(trusting.error).toBeUndefined();
      expect(trusting.authorized).toBe(true);
      expect(trusting.peer?.subject.CN).toBe('api.example.test');
      expect(trusting.peer?.subjectaltname).toBe('DNS:api.example.test');
      expect((trusting.peer as tls.DetailedPeerCertificate | undefined)?.issuerCertificate.fingerprint256).toBe(ca.fingerprint256);

      const untrusting = await handshake(port, { servername: 'api.example.test' });
      expect(untrusting.authorized).toBe(false);
      expect(untrusting.error).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');

      const trustingAnotherCa = await handshake(port, { servername: 'api.example.test', ca: otherCa.certPem });
      expect(trustingAnotherCa.error).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');

      const tls12 = await handshake(port, { servername: 'api.example.test', ca: ca.certPem, maxVersion: 'TLSv1.2' });
      expect(tls12.authorized).toBe(true);

      const tls11 = await handshake(port, { servername: 'api.example.test', ca: ca.certPem, minVersion: 'TLSv1', maxVersion: 'TLSv1.1' });
      expect(tls11.authorized).toBe(false);
    });
    expect(cache.stats).toMatchObject({ misses: 1, size: 1 }); // one leaf served every handshake
  });

  it('gives every never-seen host its own leaf, made in a spare context or inline, and keeps each one', async () => {
    const cache = new LeafContextCache(ca);
    const presented = async (port: number, host: string) => {
      const result = await handshake(port, { servername: host, ca: ca.certPem });
      expect(result.error).toBeUndefined();
      expect(result.authorized).toBe(true);
      return result.peer?.subjectaltname;
    };
    await withSniServer(cache, async (port) => {
      // One at a time: after the first, each miss takes the spare made while the last handshake ran.
      for (const host of ['a.example.test', 'b.example.test', 'c.example.test']) {
        expect(await presented(port, host)).toBe(`DNS:${host}`);
      }
      // Three misses in one turn of the loop: one spare, then contexts made inline.
      for (const host of ['d.example.test', 'e.example.test', 'f.example.test']) cache.secureContextFor(host);
      for (const host of ['d.example.test', 'e.example.test', 'f.example.test', 'a.example.test']) {
        expect(await presented(port, host)).toBe(`DNS:${host}`);
      }
    });
    expect(cache.stats).toMatchObject({ misses: 6, size: 6 });
  });

  it('counts hits and misses and reports each lookup', () => {
    const lookups: boolean[] = [];
    const cache = new LeafContextCache(ca, { onLookup: (hit) => lookups.push(hit) });
    const first = cache.secureContextFor('a.example.test');
    expect(cache.secureContextFor('a.example.test')).toBe(first);
    cache.secureContextFor('b.example.test');
    expect(cache.stats).toEqual({ hits: 1, misses: 2, size: 2 });
    expect(lookups).toEqual([false, true, false]);
  });

  it('evicts the least recently used entry at maxEntries', () => {
    const cache = new LeafContextCache(ca, { maxEntries: 3 });
    const a = cache.secureContextFor('a.test');
    cache.secureContextFor('b.test');
    cache.secureContextFor('c.test');
    expect(cache.secureContextFor('a.test')).toBe(a); // a is used again, so b is now the oldest
    cache.secureContextFor('d.test');
    expect(cache.stats.size).toBe(3);
    expect(cache.secureContextFor('a.test')).toBe(a);
    expect(cache.stats).toEqual({ hits: 2, misses: 4, size: 3 });
    cache.secureContextFor('b.test'); // evicted: issued again
    expect(cache.stats).toEqual({ hits: 2, misses: 5, size: 3 });
  });

  it('keeps a host that is used on every round alive through a stream of one-off names', () => {
    const cache = new LeafContextCache(ca, { maxEntries: 10 });
    const hot = cache.secureContextFor('hot.test');
    for (let index = 0; index < 100; index += 1) {
      cache.secureContextFor(`cold-${index}.test`);
      expect(cache.secureContextFor('hot.test')).toBe(hot);
    }
    expect(cache.stats).toEqual({ hits: 100, misses: 101, size: 10 });
  });

  it('re-issues a cached leaf once it is within a day of expiry', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const cache = new LeafContextCache(ca);
    const first = cache.secureContextFor('renew.example.test');
    vi.setSystemTime(Date.now() + 5 * 24 * 3600_000);
    expect(cache.secureContextFor('renew.example.test')).toBe(first);
    vi.setSystemTime(Date.now() + 1.5 * 24 * 3600_000); // 6.5 days in: within a day of the 7-day expiry
    const renewed = cache.secureContextFor('renew.example.test');
    expect(renewed).not.toBe(first);
    expect(cache.stats).toEqual({ hits: 1, misses: 2, size: 1 });
  });

  it('throws for invalid host names and caches nothing for them', () => {
    const cache = new LeafContextCache(ca);
    for (const host of ['../x', 'a b', '']) expect(() => cache.secureContextFor(host)).toThrow(/cannot issue a leaf certificate/);
    expect(cache.stats.size).toBe(0);
  });

  it('rejects a maxEntries that is not a positive integer', () => {
    expect(() => new LeafContextCache(ca, { maxEntries: 0 })).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }));
    expect(() => new LeafContextCache(ca, { maxEntries: 1.5 })).toThrow(/positive integer/);
  });
});
