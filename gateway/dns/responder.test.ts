import { randomBytes } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DNS_QUERY_CHANNEL, type DnsQueryEvent } from './query-events.js';
import { DnsResponder, reverseLookupAddress, type DnsAdmission, type NameExistence } from './responder.js';
import { startDnsServer } from './server.js';
import { SyntheticAddressPool } from './synthetic-pool.js';
import { WildcardNameCap } from './wildcard-names.js';
import { parsePolicy } from '../../policies/loader.js';
import { parseDnsQuery } from './dns-message.js';
import { decodeResponse, optRecord } from '../../test/support/dns-test-packets.js';

const admission: DnsAdmission = {
  couldAllowHost: (host) => host === 'api.example.test' || host.endsWith('.allowed.test'),
};

/** An answer that must not wait for anything: only report mode's upstream lookups do. */
function immediate(answer: Buffer | null | Promise<Buffer | null>): Buffer | null {
  if (answer instanceof Promise) throw new Error('expected an immediate answer, got a promise');
  return answer;
}

function query(name: string, type: string): Buffer {
  return dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'A', name }] });
}

function ask(responder: DnsResponder, name: string, type = 'A', client = '10.0.0.2'): ReturnType<typeof decodeResponse> | null {
  const answer = immediate(responder.respond(query(name, type), client, 'udp'));
  return answer ? decodeResponse(answer) : null;
}

let events: DnsQueryEvent[] = [];
const onEvent = (m: unknown) => events.push(m as DnsQueryEvent);
beforeEach(() => {
  events = [];
  diagnosticsChannel.subscribe(DNS_QUERY_CHANNEL, onEvent);
});
afterEach(() => {
  diagnosticsChannel.unsubscribe(DNS_QUERY_CHANNEL, onEvent);
});

describe('DnsResponder decisions', () => {
  const responder = new DnsResponder({ admission, pool: new SyntheticAddressPool() });

  it.each([
    { name: 'api.example.test', type: 'A', rcode: 'NOERROR', answers: 1, decision: 'synthetic' },
    { name: 'x.allowed.test', type: 'AAAA', rcode: 'NOERROR', answers: 1, decision: 'synthetic' },
    { name: 'api.example.test', type: 'TXT', rcode: 'NOERROR', answers: 0, decision: 'nodata' },
    { name: 'api.example.test', type: 'NULL', rcode: 'NOERROR', answers: 0, decision: 'nodata' },
    { name: 'api.example.test', type: 'UNKNOWN_65', rcode: 'NOERROR', answers: 0, decision: 'nodata' },
    { name: 'api.example.test', type: 'PTR', rcode: 'NOERROR', answers: 0, decision: 'nodata' },
    { name: 'evil.attacker.test', type: 'A', rcode: 'NXDOMAIN', answers: 0, decision: 'denied' },
    { name: 'evil.attacker.test', type: 'TXT', rcode: 'NXDOMAIN', answers: 0, decision: 'denied' },
    { name: 'example.test', type: 'A', rcode: 'NXDOMAIN', answers: 0, decision: 'denied' },
    { name: 'api.example.test', type: 'AXFR', rcode: 'REFUSED', answers: 0, decision: 'refused' },
    { name: '8.8.8.8.in-addr.arpa', type: 'PTR', rcode: 'NXDOMAIN', answers: 0, decision: 'denied' },
  ])('$type $name → $rcode ($decision)', ({ name, type, rcode, answers, decision }) => {
    const response = ask(responder, name, type);
    expect(response?.rcode).toBe(rcode);
    expect(response?.answers ?? []).toHaveLength(answers);
    expect(events.at(-1)).toMatchObject({ decision, rcode, client: '10.0.0.2', transport: 'udp' });
  });

  it('PTR maps a synthetic address back to its name', () => {
    const address = (ask(responder, 'back.allowed.test')?.answers?.[0] as { data: string }).data;
    const reverse = `${address.split('.').reverse().join('.')}.in-addr.arpa`;
    expect(ask(responder, reverse, 'PTR')?.answers?.[0]).toMatchObject({ type: 'PTR', data: 'back.allowed.test' });
    expect(ask(responder, reverse, 'A')?.rcode).toBe('NOERROR');
  });

  it('a name whose label holds a "." byte is never admitted', () => {
    // wire labels ["api", "example.test"] must not be read as api.example.test
    const packet = Buffer.concat([
      dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'x' }] }).subarray(0, 12),
      Buffer.from([3]), Buffer.from('api'), Buffer.from([12]), Buffer.from('example.test'), Buffer.from([0, 0, 1, 0, 1]),
    ]);
    expect(parseDnsQuery(packet).kind).toBe('query');
    const answer = immediate(responder.respond(packet, '10.0.0.2', 'udp'));
    expect(answer && decodeResponse(answer).rcode).toBe('NXDOMAIN');
  });

  it('classes other than IN/ANY are refused', () => {
    const packet = dnsPacket.encode({ type: 'query', id: 3, questions: [{ type: 'TXT', name: 'version.bind', class: 'CH' }] });
    expect(decodeResponse(immediate(responder.respond(packet, '10.0.0.2', 'udp')) ?? Buffer.alloc(12)).rcode).toBe('REFUSED');
  });

  it('denyRcode REFUSED', () => {
    const refusing = new DnsResponder({ admission, pool: new SyntheticAddressPool(), denyRcode: 'REFUSED' });
    expect(ask(refusing, 'evil.attacker.test')?.rcode).toBe('REFUSED');
  });

  it('fails closed: a throwing admission denies; a full pool answers SERVFAIL', () => {
    const throwing = new DnsResponder({ admission: { couldAllowHost: () => { throw new Error('policy broke'); } }, pool: new SyntheticAddressPool() });
    expect(ask(throwing, 'api.example.test')?.rcode).toBe('NXDOMAIN');
    const tiny = new DnsResponder({ admission, pool: new SyntheticAddressPool({ capacity: 1 }) });
    expect(ask(tiny, 'a.allowed.test')?.rcode).toBe('NOERROR');
    const full = ask(tiny, 'b.allowed.test');
    expect(full?.rcode).toBe('SERVFAIL');
    expect(full?.answers).toHaveLength(0);
    expect(ask(tiny, 'a.allowed.test')?.rcode).toBe('NOERROR');
  });
});

describe('DnsResponder with a wildcard name cap', () => {
  it('refuses the new name past the cap with the rule\'s reason, before it gets an address; known names still answer', () => {
    const policy = parsePolicy('version: 1\ndns:\n  maxNamesPerWildcard: 3\nrules:\n  - id: wild\n    host: "*.allowed.test"\n');
    const pool = new SyntheticAddressPool();
    const responder = new DnsResponder({ admission, pool, rateLimit: false, wildcardNames: new WildcardNameCap(() => policy) });
    for (const name of ['a.allowed.test', 'b.allowed.test']) expect(ask(responder, name)?.rcode).toBe('NOERROR');
    // Other types count too: the name is admitted either way.
    expect(ask(responder, 'c.allowed.test', 'TXT')?.rcode).toBe('NOERROR');
    expect(events.at(-1)).toMatchObject({ decision: 'nodata', wildcard: { rule: 'wild', pattern: '*.allowed.test', names: 3, cap: 3, firstSeen: true, capped: false } });
    const refused = ask(responder, 'd.allowed.test');
    expect(refused?.rcode).toBe('NXDOMAIN');
    expect(refused?.answers ?? []).toHaveLength(0);
    expect(events.at(-1)).toMatchObject({
      decision: 'denied',
      rcode: 'NXDOMAIN',
      reason: 'rule wild has seen 4 names under *.allowed.test; the cap is 3 (policy dns.maxNamesPerWildcard)',
      wildcard: { rule: 'wild', names: 4, cap: 3, firstSeen: true, capped: true },
    });
    expect(pool.size).toBe(2);
    expect(ask(responder, 'a.allowed.test')?.rcode).toBe('NOERROR');
    // Not under a wildcard: never capped.
    expect(ask(responder, 'api.example.test')?.rcode).toBe('NOERROR');
    expect(events.at(-1)?.wildcard).toBeUndefined();
    const refusing = new DnsResponder({ admission, pool, rateLimit: false, denyRcode: 'REFUSED', wildcardNames: new WildcardNameCap(() => policy) });
    for (const name of ['a.allowed.test', 'b.allowed.test', 'c.allowed.test']) ask(refusing, name);
    expect(ask(refusing, 'e.allowed.test')?.rcode).toBe('REFUSED');
  });
});

describe('DnsResponder in report mode (--monitor)', () => {
  /** A responder whose upstream knows `existence`; `asked` records every name sent upstream. */
  function monitoring(existence: Record<string, NameExistence>) {
    const asked: string[] = [];
    const pool = new SyntheticAddressPool();
    const responder = new DnsResponder({
      admission,
      pool,
      rateLimit: false,
      monitor: {
        exists: (name) => {
          asked.push(name);
          return Promise.resolve(existence[name] ?? 'none');
        },
      },
    });
    return { responder, pool, asked };
  }

  async function askAndWait(responder: DnsResponder, name: string, type: string): Promise<ReturnType<typeof decodeResponse> | null> {
    const answer = await responder.respond(query(name, type), '10.0.0.2', 'udp');
    return answer ? decodeResponse(answer) : null;
  }

  it.each([
    { name: 'unlisted.test', type: 'A', upstream: 'found', rcode: 'NOERROR', address: /^198\.1[89]\./ },
    { name: 'unlisted.test', type: 'AAAA', upstream: 'found', rcode: 'NOERROR', address: /^fd73:7274:6777:/ },
    { name: 'gone.test', type: 'A', upstream: 'none', rcode: 'NXDOMAIN', address: null },
    { name: 'flaky.test', type: 'AAAA', upstream: 'failed', rcode: 'SERVFAIL', address: null },
  ] as const)('$type $name, upstream says $upstream → $rcode, logged as a would-be denial', async ({ name, type, upstream, rcode, address }) => {
    const { responder, pool, asked } = monitoring({ [name]: upstream });
    const response = await askAndWait(responder, name, type);
    expect(response?.rcode).toBe(rcode);
    expect(asked).toEqual([name]);
    const data = (response?.answers?.[0] as { data?: string } | undefined)?.data ?? null;
    if (address === null) expect(data).toBeNull();
    else {
      expect(data).toMatch(address);
      // The address maps back to the name, so the connection to it is for that host.
      expect(pool.nameFor(data!)).toBe(name);
    }
    expect(events.at(-1)).toMatchObject({ name, qtype: type, decision: 'denied', rcode, monitored: true });
  });

  it.each(['TXT', 'NULL', 'MX', 'HTTPS', 'UNKNOWN_65', 'CNAME'])('%s for a name no rule allows: an empty answer at once, nothing asked upstream', (type) => {
    const { responder, asked } = monitoring({ 'unlisted.test': 'found' });
    const response = ask(responder, 'unlisted.test', type);
    expect(response?.rcode).toBe('NOERROR');
    expect(response?.answers ?? []).toHaveLength(0);
    expect(asked).toEqual([]);
    expect(events.at(-1)).toMatchObject({ name: 'unlisted.test', decision: 'denied', rcode: 'NOERROR', monitored: true });
  });

  it('allowed names, reverse lookups of real addresses and names with odd labels never go upstream', () => {
    const { responder, asked } = monitoring({});
    expect(ask(responder, 'api.example.test')?.rcode).toBe('NOERROR');
    expect(events.at(-1)).not.toHaveProperty('monitored');
    expect(ask(responder, '8.8.8.8.in-addr.arpa', 'PTR')?.rcode).toBe('NXDOMAIN');
    const packet = Buffer.concat([
      dnsPacket.encode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'x' }] }).subarray(0, 12),
      Buffer.from([3]), Buffer.from('a.b'), Buffer.from([4]), Buffer.from('test'), Buffer.from([0, 0, 1, 0, 1]),
    ]);
    expect(decodeResponse(immediate(responder.respond(packet, '10.0.0.2', 'udp'))!).rcode).toBe('NXDOMAIN');
    expect(asked).toEqual([]);
  });

  it('a full pool answers SERVFAIL, never an address', async () => {
    const responder = new DnsResponder({ admission, pool: new SyntheticAddressPool({ capacity: 1 }), monitor: { exists: () => Promise.resolve('found') } });
    expect((await askAndWait(responder, 'one.test', 'A'))?.rcode).toBe('NOERROR');
    const full = await askAndWait(responder, 'two.test', 'A');
    expect(full?.rcode).toBe('SERVFAIL');
    expect(full?.answers).toHaveLength(0);
  });

  it('over TCP, an answer that waits upstream does not hold up the ones after it', async () => {
    let release!: (existence: NameExistence) => void;
    const server = await startDnsServer({
      admission,
      host: '127.0.0.1',
      port: 0,
      rateLimit: false,
      monitor: { exists: () => new Promise<NameExistence>((resolve) => (release = resolve)) },
    });
    try {
      const socket = net.connect(server.address.tcp.port, '127.0.0.1');
      const answers: ReturnType<typeof decodeResponse>[] = [];
      let buffered = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          answers.push(decodeResponse(buffered.subarray(2, 2 + buffered.readUInt16BE(0))));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        }
      });
      const framed = (id: number, name: string) => {
        const packet = dnsPacket.encode({ type: 'query', id, questions: [{ type: 'A', name }] });
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(packet.length, 0);
        return Buffer.concat([prefix, packet]);
      };
      socket.write(Buffer.concat([framed(1, 'slow.test'), framed(2, 'api.example.test')]));
      await expect.poll(() => answers.map((a) => a.id), { timeout: 10_000 }).toEqual([2]);
      release('found');
      await expect.poll(() => answers.map((a) => a.id), { timeout: 10_000 }).toEqual([2, 1]);
      expect(answers[1]?.rcode).toBe('NOERROR');
      socket.destroy();
    } finally {
      await server.close();
    }
  });
});

describe('DnsResponder under hostile input', () => {
  it('random, header-shaped and truncated packets never throw out of respond()', () => {
    const responder = new DnsResponder({ admission, pool: new SyntheticAddressPool(), rateLimit: false });
    const valid = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'api.example.test' }], additionals: [optRecord(1232)] });
    let thrown = 0;
    for (let i = 0; i < 5000; i++) {
      const random = randomBytes(Math.floor(Math.random() * 200));
      const shaped = Buffer.from(random);
      if (shaped.length >= 12) {
        shaped[2] = (shaped[2] ?? 0) & 0x07;
        shaped.writeUInt16BE(1, 4);
        shaped.fill(0, 6, 11);
      }
      for (const [packet, transport] of [[random, 'udp'], [shaped, 'tcp']] as const) {
        try {
          immediate(responder.respond(packet, '10.0.0.3', transport));
        } catch {
          thrown++;
        }
      }
    }
    expect(thrown).toBe(0);
    for (let cut = 0; cut < valid.length; cut++) {
      expect(responder.respond(valid.subarray(0, cut), '10.0.0.3', 'udp')).toBeNull();
    }
    expect(responder.respond(valid, '10.0.0.3', 'udp')).not.toBeNull();
    expect(events.filter((e) => e.decision === 'malformed').length).toBeGreaterThan(1000);
  });

  it('rate limit: over the burst → REFUSED with a burst signal; drop mode stays silent', () => {
    const refusing = new DnsResponder({ admission, pool: new SyntheticAddressPool(), rateLimit: { queriesPerSecond: 1, burst: 3 } });
    const rcodes = Array.from({ length: 6 }, () => ask(refusing, 'api.example.test')?.rcode);
    expect(rcodes).toEqual(['NOERROR', 'NOERROR', 'NOERROR', 'REFUSED', 'REFUSED', 'REFUSED']);
    expect(events.at(-1)).toMatchObject({ decision: 'rate-limited', rcode: 'REFUSED', tunnelSignals: ['burst'] });
    expect(ask(refusing, 'api.example.test', 'A', '10.0.0.9')?.rcode).toBe('NOERROR'); // per client

    const dropping = new DnsResponder({ admission, pool: new SyntheticAddressPool(), rateLimit: { queriesPerSecond: 1, burst: 1, action: 'drop' } });
    expect(ask(dropping, 'api.example.test')?.rcode).toBe('NOERROR');
    expect(ask(dropping, 'api.example.test')).toBeNull();
    expect(events.at(-1)).toMatchObject({ decision: 'rate-limited', rcode: 'none' });
  });
});

describe('reverseLookupAddress', () => {
  const q = (name: string) => ({ raw: Buffer.alloc(0), name, labels: name.split('.'), plain: true, qtype: 12, qclass: 1 });
  it.each([
    ['7.0.18.198.in-addr.arpa', '198.18.0.7'],
    ['1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.7.6.4.7.2.7.3.7.d.f.ip6.arpa', 'fd73:7274:6777:0000:0000:0000:0000:0001'],
    ['18.198.in-addr.arpa', undefined],
    ['256.0.18.198.in-addr.arpa', undefined],
    ['api.example.test', undefined],
  ])('%s → %s', (name, address) => {
    expect(reverseLookupAddress(q(name))).toBe(address);
  });
});
