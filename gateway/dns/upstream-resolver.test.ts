import { mkdtempSync, rmSync, writeFileSync, utimesSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, isSrtGwError } from '../../errors.js';
import { startDnsLogServer, type DnsLogServer } from '../../test/support/dns-log-server.js';
import { DestinationCheck } from '../upstream/destination-check.js';
import { UpstreamResolver, parseHostsFile } from './upstream-resolver.js';

let upstream: DnsLogServer;
let shortTtl: DnsLogServer;
let dir: string;
let hostsFile: string;

beforeAll(async () => {
  upstream = await startDnsLogServer(
    {
      'api.example.test': ['192.0.2.10', '2001:db8::10'],
      'v4only.example.test': ['192.0.2.11'],
      'overridden.example.test': ['192.0.2.12'],
      ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`n${i}.example.test`, [`192.0.2.${100 + i}`]])),
    },
    { ttl: 300 },
  );
  shortTtl = await startDnsLogServer({ 'short.example.test': ['192.0.2.20'] }, { ttl: 1 });
  dir = mkdtempSync(join(tmpdir(), 'srtgw-resolver-'));
  hostsFile = join(dir, 'hosts');
  writeFileSync(hostsFile, '# test hosts\n192.0.2.50 fromhosts.example.test alias.example.test\n::1 fromhosts.example.test\n');
});

afterAll(async () => {
  await upstream.close();
  await shortTtl.close();
  rmSync(dir, { recursive: true, force: true });
});

function resolverFor(server: DnsLogServer, extra: Partial<ConstructorParameters<typeof UpstreamResolver>[0]> = {}) {
  return new UpstreamResolver({ dnsServers: [server.address], hostsFile, ...extra });
}

/** Questions of any type for `name` (lower-case, no trailing dot, as the log server records it). */
function countFor(server: DnsLogServer, name: string): number {
  return server.queries.filter((q) => q.name === name).length;
}

describe('UpstreamResolver', () => {
  it('resolves A and AAAA through --dns-upstream, IPv4 first', async () => {
    const resolver = resolverFor(upstream);
    expect(await resolver.resolve('API.Example.Test.')).toEqual([
      { address: '192.0.2.10', family: 4 },
      { address: '2001:db8::10', family: 6 },
    ]);
  });

  it('answers from the TTL cache without asking again', async () => {
    const resolver = resolverFor(upstream);
    await resolver.resolve('v4only.example.test');
    await resolver.resolve('v4only.example.test');
    await Promise.all([resolver.resolve('v4only.example.test'), resolver.resolve('v4only.example.test')]);
    // one A and one AAAA question, for four resolves
    expect(countFor(upstream, 'v4only.example.test')).toBe(2);
  });

  it('asks again once the TTL has passed (TTL 1 s)', async () => {
    const resolver = resolverFor(shortTtl);
    await resolver.resolve('short.example.test');
    await resolver.resolve('short.example.test');
    expect(countFor(shortTtl, 'short.example.test')).toBe(2);
    await new Promise((r) => setTimeout(r, 1100));
    await resolver.resolve('short.example.test');
    expect(countFor(shortTtl, 'short.example.test')).toBe(4);
  });

  it('coalesces concurrent lookups of one name into one query per family', async () => {
    const resolver = resolverFor(upstream);
    await Promise.all(Array.from({ length: 10 }, () => resolver.resolve('n19.example.test')));
    expect(countFor(upstream, 'n19.example.test')).toBe(2);
  });

  it('--resolve overrides win and cause no query', async () => {
    const resolver = resolverFor(upstream, { overrides: new Map([['overridden.example.test', ['127.0.0.1', '::1']]]) });
    expect(await resolver.resolve('Overridden.Example.Test')).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(countFor(upstream, 'overridden.example.test')).toBe(0);
  });

  it('IP literals resolve to themselves without a query', async () => {
    const resolver = resolverFor(upstream);
    expect(await resolver.resolve('192.0.2.99')).toEqual([{ address: '192.0.2.99', family: 4 }]);
    expect(await resolver.resolve('[2001:db8::99]')).toEqual([{ address: '2001:db8::99', family: 6 }]);
  });

  it('the hosts file applies, and is re-read when it changes', async () => {
    const resolver = resolverFor(upstream);
    expect(await resolver.resolve('alias.example.test')).toEqual([{ address: '192.0.2.50', family: 4 }]);
    expect(await resolver.resolve('fromhosts.example.test')).toEqual([
      { address: '192.0.2.50', family: 4 },
      { address: '::1', family: 6 },
    ]);
    writeFileSync(hostsFile, '192.0.2.51 alias.example.test\n');
    const later = new Date(Date.now() + 5000);
    utimesSync(hostsFile, later, later);
    await new Promise((r) => setTimeout(r, 1050));
    expect(await resolver.resolve('alias.example.test')).toEqual([{ address: '192.0.2.51', family: 4 }]);
    expect(countFor(upstream, 'alias.example.test')).toBe(0);
  });

  it('useHostsFile: false ignores the hosts file', async () => {
    const otherHosts = join(dir, 'hosts-ignored');
    writeFileSync(otherHosts, '192.0.2.52 api.example.test\n');
    expect((await resolverFor(upstream, { hostsFile: otherHosts }).resolve('api.example.test'))[0]?.address).toBe('192.0.2.52');
    const resolver = resolverFor(upstream, { hostsFile: otherHosts, useHostsFile: false });
    expect((await resolver.resolve('api.example.test'))[0]?.address).toBe('192.0.2.10');
  });

  it('NXDOMAIN throws SRTGW_UPSTREAM_DNS and is cached briefly', async () => {
    const resolver = resolverFor(upstream);
    const failure = await resolver.resolve('missing.example.test').catch((e: unknown) => e);
    expect(isSrtGwError(failure, ErrorCodes.UPSTREAM_DNS)).toBe(true);
    expect((failure as Error).message).toBe('could not resolve missing.example.test: NXDOMAIN');
    await expect(resolver.resolve('missing.example.test')).rejects.toThrow('NXDOMAIN');
    expect(countFor(upstream, 'missing.example.test')).toBe(2);
  });

  it('an unreachable DNS server fails with a DNS error, not a hang', async () => {
    const resolver = new UpstreamResolver({ dnsServers: ['127.0.0.1:9'], queryTimeoutMs: 200, queryTries: 1, useHostsFile: false });
    await expect(resolver.resolve('api.example.test')).rejects.toMatchObject({ code: ErrorCodes.UPSTREAM_DNS });
  });

  it('exists(): found, none (NXDOMAIN, invalid name) and failed (no answer) are told apart, and never reject', async () => {
    const resolver = resolverFor(upstream);
    expect(await resolver.exists('api.example.test')).toBe('found');
    expect(await resolver.exists('nowhere.example.test')).toBe('none');
    expect(await resolver.exists('bad name!')).toBe('none');
    const unreachable = new UpstreamResolver({ dnsServers: ['127.0.0.1:9'], queryTimeoutMs: 200, queryTries: 1, useHostsFile: false });
    expect(await unreachable.exists('api.example.test')).toBe('failed');
  });

  it('the cache is bounded', async () => {
    const resolver = resolverFor(upstream, { maxCacheEntries: 5 });
    for (let i = 0; i < 12; i++) await resolver.resolve(`n${i}.example.test`);
    expect(resolver.cacheSize).toBe(5);
    // the oldest were evicted: n0 is asked again, n11 is not
    const before = countFor(upstream, 'n0.example.test');
    await resolver.resolve('n0.example.test');
    expect(countFor(upstream, 'n0.example.test')).toBe(before + 2);
    const beforeRecent = countFor(upstream, 'n11.example.test');
    await resolver.resolve('n11.example.test');
    expect(countFor(upstream, 'n11.example.test')).toBe(beforeRecent);
  });

  it('rejects invalid options with SRTGW_CONFIG_INVALID', () => {
    expect(() => new UpstreamResolver({ dnsServers: ['not-an-ip'] })).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }));
    expect(() => new UpstreamResolver({ overrides: new Map([['a.test', ['nope']]]) })).toThrow(
      expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID }),
    );
  });

  it('lookup adapter: single, all, and family-filtered answers', async () => {
    const resolver = resolverFor(upstream);
    const call = (options: object) =>
      new Promise<unknown[]>((resolve) => resolver.lookup('api.example.test', options, (...args: unknown[]) => resolve(args)));
    expect(await call({})).toEqual([null, '192.0.2.10', 4]);
    expect(await call({ family: 6 })).toEqual([null, '2001:db8::10', 6]);
    expect(await call({ all: true })).toEqual([
      null,
      [
        { address: '192.0.2.10', family: 4 },
        { address: '2001:db8::10', family: 6 },
      ],
    ]);
    const [error] = await new Promise<unknown[]>((resolve) =>
      resolver.lookup('v4only.example.test', { family: 6 }, (...args: unknown[]) => resolve(args)),
    );
    expect(isSrtGwError(error, ErrorCodes.UPSTREAM_DNS)).toBe(true);
  });

  it('lookup adapter drives a real net.connect', async () => {
    const listener = net.createServer((socket) => socket.end('hi'));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address() as net.AddressInfo;
    const resolver = resolverFor(upstream, { overrides: new Map([['local.example.test', ['127.0.0.1']]]) });
    const text = await new Promise<string>((resolve, reject) => {
      const socket = net.connect({ host: 'local.example.test', port, lookup: resolver.lookup as net.LookupFunction });
      let data = '';
      socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    listener.close();
    expect(text).toBe('hi');
  });
});

describe('UpstreamResolver address check', () => {
  const check = new DestinationCheck(() => ({ version: 1, rules: [] }), () => ({}));
  const lookupArgs = (resolver: UpstreamResolver, host: string, options: object) =>
    new Promise<unknown[]>((resolve) => resolver.lookup(host, options, (...args: unknown[]) => resolve(args)));

  it('lookup hands out only the addresses the check allows, and fails with its refusal when none is left', async () => {
    const mixedHosts = join(dir, 'hosts-mixed');
    writeFileSync(mixedHosts, '192.0.2.50 fromhosts.example.test\n::1 fromhosts.example.test\n');
    const resolver = resolverFor(upstream, { addressCheck: check, hostsFile: mixedHosts });
    // fromhosts.example.test is 192.0.2.50 and ::1 in the hosts file: the loopback one is dropped.
    expect(await lookupArgs(resolver, 'fromhosts.example.test', { all: true })).toEqual([null, [{ address: '192.0.2.50', family: 4 }]]);
    const [error] = await lookupArgs(resolver, 'fromhosts.example.test', { family: 6 });
    expect(isSrtGwError(error, ErrorCodes.UPSTREAM_PRIVATE_DESTINATION)).toBe(true);
    expect((error as Error).message).toBe('destination ::1 is a private address');
    await expect(resolver.resolveDestination('127.0.0.1')).rejects.toThrow('destination 127.0.0.1 is a private address');
  });

  it('--resolve pins are not checked; IP literals are, through literalRefusal', async () => {
    const resolver = resolverFor(upstream, { addressCheck: check, overrides: new Map([['local.example.test', ['127.0.0.1']]]) });
    expect(await lookupArgs(resolver, 'local.example.test', {})).toEqual([null, '127.0.0.1', 4]);
    expect(resolver.literalRefusal('[::ffff:7f00:1]')?.message).toBe('destination 127.0.0.1 is a private address');
    expect(resolver.literalRefusal('192.0.2.9')).toBeNull();
    expect(resolver.literalRefusal('local.example.test')).toBeNull();
  });
});

describe('UpstreamResolver name check (the wildcard name cap)', () => {
  it('a refused name fails with the refusal and never reaches the DNS server; overrides are not asked about', async () => {
    const asked: string[] = [];
    const resolver = resolverFor(upstream, {
      overrides: new Map([['overridden.example.test', ['192.0.2.99']]]),
      nameCheck: (name) => {
        asked.push(name);
        return name === 'n7.example.test' ? 'rule wild has seen 301 names under *.example.test; the cap is 300' : null;
      },
    });
    const before = countFor(upstream, 'n7.example.test');
    const error = await resolver.resolve('n7.example.test').catch((e: unknown) => e);
    expect(isSrtGwError(error) && error.code).toBe(ErrorCodes.UPSTREAM_DNS);
    expect((error as Error).message).toBe('could not resolve n7.example.test: rule wild has seen 301 names under *.example.test; the cap is 300');
    expect(countFor(upstream, 'n7.example.test')).toBe(before);
    expect(await resolver.resolve('n8.example.test')).toEqual([{ address: '192.0.2.108', family: 4 }]);
    expect(await resolver.resolve('overridden.example.test')).toEqual([{ address: '192.0.2.99', family: 4 }]);
    expect(asked).toEqual(['n7.example.test', 'n8.example.test']);
  });
});

describe('parseHostsFile', () => {
  it('reads addresses, aliases and comments; IPv4 first', () => {
    const entries = parseHostsFile('::1 localhost ip6-localhost\n127.0.0.1\tlocalhost # loopback\n#10.0.0.1 hidden\nbogus line\n');
    expect(entries.get('localhost')).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    expect(entries.get('ip6-localhost')).toEqual([{ address: '::1', family: 6 }]);
    expect(entries.has('hidden')).toBe(false);
  });
});
