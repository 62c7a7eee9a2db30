// The sandbox-facing DNS server, asked by the real `dig` over UDP and TCP: admitted names get a
// stable synthetic address, everything else NXDOMAIN, other types no data; garbage is survived.
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DNS_QUERY_CHANNEL, type DnsQueryEvent } from '../../gateway/dns/query-events.js';
import type { DnsAdmission } from '../../gateway/dns/responder.js';
import { startDnsServer, type DnsServer } from '../../gateway/dns/server.js';
import { decodeResponse } from '../support/dns-test-packets.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';

const run = promisify(execFile);
const skip = capabilityGate(missingCommand('dig'));

/** A real admission: exact names and "*.zone" wildcards (any depth below the zone, not the apex). */
class ListAdmission implements DnsAdmission {
  constructor(private readonly patterns: string[]) {}
  couldAllowHost(host: string): boolean {
    return this.patterns.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p));
  }
}

const admission = new ListAdmission(['api.example.test', '*.allowed.test']);
let server: DnsServer;
let refusing: DnsServer;
let port: number;
const events: DnsQueryEvent[] = [];
const onEvent = (message: unknown) => events.push(message as DnsQueryEvent);

async function dig(...args: string[]): Promise<string> {
  const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(port), '+tries=1', '+time=2', ...args]);
  return stdout;
}

function status(output: string): string | undefined {
  return /status: (\w+)/.exec(output)?.[1];
}

function answerCount(output: string): number {
  return Number(/ANSWER: (\d+)/.exec(output)?.[1] ?? NaN);
}

beforeAll(async () => {
  diagnosticsChannel.subscribe(DNS_QUERY_CHANNEL, onEvent);
  server = await startDnsServer({ host: '127.0.0.1', port: 0, admission });
  port = server.address.udp.port;
  refusing = await startDnsServer({ host: '127.0.0.1', port: 0, admission, denyRcode: 'REFUSED' });
});

afterAll(async () => {
  diagnosticsChannel.unsubscribe(DNS_QUERY_CHANNEL, onEvent);
  await server?.close();
  await refusing?.close();
});

describe.skipIf(skip)('DNS server answered by dig', () => {
  it('listens on one port for UDP and TCP', () => {
    expect(server.address.tcp.port).toBe(server.address.udp.port);
  });

  it('an admitted name gets a synthetic 198.18.0.0/15 address, the same one every time', async () => {
    const first = (await dig('+short', 'api.example.test', 'A')).trim();
    expect(first).toMatch(/^198\.1[89]\.\d+\.\d+$/);
    expect((await dig('+short', 'API.Example.Test.', 'A')).trim()).toBe(first);
    expect(server.pool.nameFor(first)).toBe('api.example.test');
  });

  it('names under an admitted wildcard get distinct addresses', async () => {
    const a = (await dig('+short', 'one.allowed.test', 'A')).trim();
    const b = (await dig('+short', 'deep.two.allowed.test', 'A')).trim();
    expect(a).toMatch(/^198\.1[89]\./);
    expect(b).toMatch(/^198\.1[89]\./);
    expect(a).not.toBe(b);
  });

  it('AAAA gets the synthetic ULA address for the same name', async () => {
    const v6 = (await dig('+short', 'api.example.test', 'AAAA')).trim();
    expect(v6).toMatch(/^fd73:7274:6777::[0-9a-f]+$/);
    expect(server.pool.nameFor(v6)).toBe('api.example.test');
  });

  it('a denied name is NXDOMAIN (or REFUSED when configured)', async () => {
    const out = await dig('evil.attacker.test', 'A');
    expect(status(out)).toBe('NXDOMAIN');
    expect(answerCount(out)).toBe(0);
    expect(status(await dig('allowed.test', 'A'))).toBe('NXDOMAIN'); // the wildcard does not cover the apex
    const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(refusing.address.udp.port), '+tries=1', '+time=2', 'evil.attacker.test', 'A']);
    expect(status(stdout)).toBe('REFUSED');
  });

  it.each(['TXT', 'NULL', 'MX', 'CNAME', 'SRV', 'ANY', 'HTTPS', 'TYPE64', 'NS', 'SOA', 'CAA'])(
    '%s for an admitted name is NOERROR with no data; for a denied one NXDOMAIN',
    async (type) => {
      const allowed = await dig('api.example.test', type);
      expect(status(allowed)).toBe('NOERROR');
      expect(answerCount(allowed)).toBe(0);
      expect(status(await dig('x.attacker.test', type))).toBe('NXDOMAIN');
    },
  );

  it('PTR for a synthetic address gives the name; any other address NXDOMAIN', async () => {
    const address = (await dig('+short', 'ptr.allowed.test', 'A')).trim();
    expect((await dig('+short', '-x', address)).trim()).toBe('ptr.allowed.test.');
    const v6 = (await dig('+short', 'ptr.allowed.test', 'AAAA')).trim();
    expect((await dig('+short', '-x', v6)).trim()).toBe('ptr.allowed.test.');
    expect(status(await dig('-x', '198.19.255.200'))).toBe('NXDOMAIN'); // in range, never issued
    expect(status(await dig('-x', '8.8.8.8'))).toBe('NXDOMAIN');
  });

  it('TCP (+tcp) answers the same as UDP (+notcp)', async () => {
    const udp = (await dig('+notcp', '+short', 'tcp.allowed.test', 'A')).trim();
    const tcp = (await dig('+tcp', '+short', 'tcp.allowed.test', 'A')).trim();
    expect(tcp).toMatch(/^198\.1[89]\./);
    expect(tcp).toBe(udp);
    expect(status(await dig('+tcp', 'evil.attacker.test', 'A'))).toBe('NXDOMAIN');
  });

  it('EDNS0: the OPT record is echoed (+bufsize), absent without EDNS, BADVERS for version 1', async () => {
    const withEdns = await dig('+bufsize=1232', 'api.example.test', 'A');
    expect(withEdns).toMatch(/OPT PSEUDOSECTION:\n; EDNS: version: 0, flags:; udp: 1232/);
    expect(status(withEdns)).toBe('NOERROR');
    const withoutEdns = await dig('+noedns', 'api.example.test', 'A');
    expect(withoutEdns).not.toContain('OPT PSEUDOSECTION');
    expect(answerCount(withoutEdns)).toBe(1);
    expect(status(await dig('+edns=1', '+noednsnegotiation', 'api.example.test', 'A'))).toBe('BADVERS');
  });

  it('a 253-character name (the longest there is) is still answered', async () => {
    const longName = `${['a'.repeat(63), 'b'.repeat(63), 'c'.repeat(63), 'd'.repeat(48)].join('.')}.allowed.test`;
    expect(longName.length).toBe(253);
    expect((await dig('+short', longName, 'A')).trim()).toMatch(/^198\.1[89]\./);
  });

  it('a burst of malformed UDP packets is survived silently, then dig still answers', async () => {
    const socket = dgram.createSocket('udp4');
    let replies = 0;
    socket.on('message', () => replies++);
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const valid = dnsPacket.encode({ type: 'query', id: 7, questions: [{ type: 'A', name: 'api.example.test' }] });
    const garbage: Buffer[] = [];
    for (let i = 0; i < 300; i++) {
      const random = Buffer.alloc(12 + Math.floor(Math.random() * 600));
      for (let j = 0; j < random.length; j++) random[j] = Math.floor(Math.random() * 256);
      random[2] = (random[2] ?? 0) & 0x07; // a query, opcode 0: past the first checks
      random.writeUInt16BE(1, 4);
      random.fill(0, 6, 12);
      garbage.push(random);
    }
    for (let cut = 1; cut < valid.length; cut++) garbage.push(valid.subarray(0, cut));
    const pointerLoop = Buffer.from(valid);
    pointerLoop.writeUInt16BE(0xc00c, 12); // compression pointer to itself
    garbage.push(pointerLoop, Buffer.alloc(0), Buffer.from([0x12]));
    for (const packet of garbage) socket.send(packet, port, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 300));
    socket.close();
    // Random bytes past the header check are dropped; only header-shaped ones may get FORMERR.
    expect(replies).toBeLessThan(garbage.length / 10);
    expect((await dig('+short', 'api.example.test', 'A')).trim()).toMatch(/^198\.1[89]\./);
    expect(events.some((e) => e.decision === 'malformed')).toBe(true);
  });

  it('TCP frames split byte by byte and coalesced in one write are all answered', async () => {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    const names = ['a.allowed.test', 'b.allowed.test', 'nope.attacker.test'];
    const frames = names.map((name, i) => dnsPacket.streamEncode({ type: 'query', id: 100 + i, questions: [{ type: 'A', name }] }));
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    const first = frames[0] ?? Buffer.alloc(0);
    for (const byte of first) {
      socket.write(Buffer.from([byte]));
      await new Promise((r) => setTimeout(r, 1));
    }
    socket.write(Buffer.concat(frames.slice(1)));
    const answers: ReturnType<typeof decodeResponse>[] = [];
    for (let waited = 0; waited < 2000 && answers.length < 3; waited += 20) {
      await new Promise((r) => setTimeout(r, 20));
      answers.length = 0;
      let offset = 0;
      while (offset + 2 <= received.length) {
        const length = received.readUInt16BE(offset);
        if (offset + 2 + length > received.length) break;
        answers.push(decodeResponse(received.subarray(offset + 2, offset + 2 + length)));
        offset += 2 + length;
      }
    }
    socket.destroy();
    expect(answers.map((a) => a.id)).toEqual([100, 101, 102]);
    expect(answers[0]?.answers?.[0]?.type).toBe('A');
    expect(answers[2]?.rcode).toBe('NXDOMAIN');
  });

  it('idle TCP connections are closed, and the connection cap holds', async () => {
    const small = await startDnsServer({ host: '127.0.0.1', port: 0, admission, tcpIdleTimeoutMs: 200, maxTcpConnections: 2 });
    try {
      const open = () =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect(small.address.tcp.port, '127.0.0.1', () => resolve(s));
          s.on('error', () => undefined);
        });
      const started = Date.now();
      const a = await open();
      const closedAfter = await new Promise<number>((resolve) => a.on('close', () => resolve(Date.now() - started)));
      expect(closedAfter).toBeGreaterThanOrEqual(150);
      expect(closedAfter).toBeLessThan(2000);

      const kept = [await open(), await open()];
      const third = await open();
      const thirdClosed = await new Promise<boolean>((resolve) => {
        third.on('close', () => resolve(true));
        setTimeout(() => resolve(false), 150);
      });
      expect(thirdClosed).toBe(true);
      for (const s of [...kept, third]) s.destroy();
    } finally {
      await small.close();
    }
  });

  it('per-client rate limit: excess queries are REFUSED and flagged as a burst', async () => {
    const limited = await startDnsServer({ host: '127.0.0.1', port: 0, admission, rateLimit: { queriesPerSecond: 5, burst: 10 } });
    try {
      const socket = dgram.createSocket('udp4');
      const rcodes: string[] = [];
      socket.on('message', (m) => rcodes.push(decodeResponse(m).rcode));
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      for (let i = 0; i < 40; i++) {
        socket.send(dnsPacket.encode({ type: 'query', id: i, questions: [{ type: 'A', name: `r${i}.allowed.test` }] }), limited.address.udp.port, '127.0.0.1');
      }
      await new Promise((r) => setTimeout(r, 300));
      socket.close();
      expect(rcodes.length).toBe(40);
      expect(rcodes.filter((r) => r === 'NOERROR').length).toBeGreaterThanOrEqual(10);
      expect(rcodes.filter((r) => r === 'NOERROR').length).toBeLessThanOrEqual(13);
      expect(events.some((e) => e.decision === 'rate-limited' && e.tunnelSignals.includes('burst'))).toBe(true);
    } finally {
      await limited.close();
    }
  });

  it('publishes one event per query with a loggable name and tunnel signals', async () => {
    const label = 'mzxw6ytboi4dcmrtgq2tmnzygeztmnjq'; // base32 payload, 32 chars
    const longName = `${label}${label.slice(0, 31)}.${label}.attacker.test`;
    events.length = 0;
    await dig(longName, 'TXT');
    const event = events.find((e) => e.name.startsWith(label));
    expect(event).toMatchObject({ client: '127.0.0.1', transport: 'udp', qtype: 'TXT', decision: 'denied', rcode: 'NXDOMAIN' });
    expect(event?.name).toMatch(/^.{64}…#[0-9a-f]{12}$/);
    expect(event?.tunnelSignals).toEqual(expect.arrayContaining(['long-label', 'high-entropy']));
  });
});
