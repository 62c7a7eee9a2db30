import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { decodeResponse, optRecord } from '../../test/support/dns-test-packets.js';
import { encodeDnsResponse, encodeErrorResponse, parseDnsQuery, qtypeName, udpLimitFor, type ParsedQuery } from './dns-message.js';

function query(name: string, type = 'A', extra: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'A', name }], ...extra });
}

function accepted(packet: Buffer): Extract<ParsedQuery, { kind: 'query' }> {
  const parsed = parseDnsQuery(packet);
  if (parsed.kind !== 'query') throw new Error(`expected a query, got ${parsed.kind}: ${'reason' in parsed ? parsed.reason : ''}`);
  return parsed;
}

describe('parseDnsQuery', () => {
  it('reads id, name (lower-cased), type, class and RD', () => {
    const q = accepted(query('Api.Example.TEST', 'AAAA'));
    expect(q.id).toBe(4242);
    expect(q.recursionDesired).toBe(true);
    expect(q.question).toMatchObject({ name: 'api.example.test', qtype: 28, qclass: 1, plain: true });
    expect(q.edns).toBeNull();
  });

  it('reads EDNS0: payload size, version, DO', () => {
    const q = accepted(
      query('a.test', 'A', { additionals: [optRecord(4096, dnsPacket.DNSSEC_OK, [{ code: 12, length: 8 }])] }),
    );
    expect(q.edns).toEqual({ udpPayloadSize: 4096, version: 0, dnssecOk: true });
  });

  it('keeps label bytes that are not letters/digits/-/_ visible as \\DDD and marks the name not plain', () => {
    // A "." byte inside a label must not turn "api" + "example.test" into api.example.test.
    const packet = query('xxx.test');
    packet[14] = 0x2e; // first label: "x.x"
    const q = accepted(packet);
    expect(q.question.name).toBe('x\\046x.test');
    expect(q.question.plain).toBe(false);
    const utf8 = Buffer.concat([packet.subarray(0, 12), Buffer.from([2, 0xc3, 0xa9, 4]), Buffer.from('test'), Buffer.from([0, 0, 1, 0, 1])]);
    expect(accepted(utf8).question.name).toBe('\\195\\169.test');
  });

  const withArcount = (b: Buffer, n: number) => {
    b.writeUInt16BE(n, 10);
    return b;
  };
  it.each([
    { name: 'empty', kind: 'drop', mutate: () => Buffer.alloc(0) },
    { name: '11 bytes', kind: 'drop', mutate: (b: Buffer) => b.subarray(0, 11) },
    { name: 'a response (QR=1)', kind: 'drop', mutate: (b: Buffer) => Buffer.from([...b.subarray(0, 2), (b[2] ?? 0) | 0x80, ...b.subarray(3)]) },
    { name: 'opcode NOTIFY', kind: 'error', mutate: (b: Buffer) => Buffer.from([...b.subarray(0, 2), ((b[2] ?? 0) & 0x87) | (4 << 3), ...b.subarray(3)]) },
    { name: 'two questions', kind: 'error', mutate: (b: Buffer) => (b.writeUInt16BE(2, 4), b) },
    { name: 'no question', kind: 'error', mutate: (b: Buffer) => (b.writeUInt16BE(0, 4), b) },
    { name: 'an answer in a query', kind: 'error', mutate: (b: Buffer) => (b.writeUInt16BE(1, 6), b) },
    { name: 'two additionals', kind: 'error', mutate: (b: Buffer) => withArcount(b, 2) },
    { name: 'compression pointer in the question', kind: 'drop', mutate: (b: Buffer) => (b.writeUInt16BE(0xc00c, 12), b) },
    { name: 'type/class cut off', kind: 'drop', mutate: (b: Buffer) => b.subarray(0, b.length - 2) },
    { name: 'trailing garbage', kind: 'drop', mutate: (b: Buffer) => Buffer.concat([b, Buffer.from([1, 2, 3])]) },
    { name: 'OPT record cut off', kind: 'drop', mutate: (b: Buffer) => withArcount(Buffer.concat([b, Buffer.from([0, 0, 41, 2, 0])]), 1) },
    {
      name: 'an additional that is not OPT',
      kind: 'error',
      mutate: (b: Buffer) => withArcount(Buffer.concat([b, Buffer.from([0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 0])]), 1),
    },
  ])('$name → $kind', ({ mutate, kind }) => {
    expect(parseDnsQuery(mutate(Buffer.from(query('api.example.test')))).kind).toBe(kind);
  });

  it('a name longer than 255 wire bytes is FORMERR', () => {
    const labels = Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)]));
    const packet = Buffer.concat([query('a.test').subarray(0, 12), ...labels, Buffer.from([0, 0, 1, 0, 1])]);
    expect(parseDnsQuery(packet)).toMatchObject({ kind: 'error', rcode: 'FORMERR' });
  });

  it('random and truncated packets never throw', () => {
    const valid = query('api.example.test', 'A', { additionals: [optRecord(1232)] });
    const packets: Buffer[] = [];
    for (let i = 0; i < 10_000; i++) {
      const random = randomBytes(Math.floor(Math.random() * 300));
      packets.push(random);
      if (random.length >= 12) {
        // header-shaped random: past the header guard, into the question walker
        const shaped = Buffer.from(random);
        shaped[2] = (shaped[2] ?? 0) & 0x07;
        shaped.writeUInt16BE(1, 4);
        shaped.fill(0, 6, 11);
        packets.push(shaped);
      }
    }
    // How fast they are parsed is measured in dns-message.bench.ts.
    let thrown = 0;
    for (const packet of packets) {
      try {
        parseDnsQuery(packet);
      } catch {
        thrown++;
      }
    }
    expect(thrown).toBe(0);
    for (let cut = 0; cut <= valid.length; cut++) {
      expect(parseDnsQuery(valid.subarray(0, cut)).kind).toBe(cut === valid.length ? 'query' : 'drop');
    }
  });
});

describe('encodeDnsResponse', () => {
  it('echoes the question bytes verbatim (0x20 case survives) and decodes with dns-packet', () => {
    const q = accepted(query('aPi.ExAmPlE.tEsT'));
    const response = decodeResponse(encodeDnsResponse({ query: q, rcode: 'NOERROR', answers: [{ type: 1, ttl: 60, data: Buffer.from([198, 18, 0, 1]) }], maxBytes: 512 }));
    expect(response.id).toBe(4242);
    expect(response.flag_qr).toBe(true);
    expect(response.flag_rd).toBe(true);
    expect(response.questions?.[0]?.name).toBe('aPi.ExAmPlE.tEsT');
    expect(response.answers?.[0]).toMatchObject({ type: 'A', name: 'aPi.ExAmPlE.tEsT', ttl: 60, data: '198.18.0.1' });
  });

  it('echoes an OPT record when the query had one, with the extended rcode for BADVERS', () => {
    const q = accepted(query('a.test', 'A', { additionals: [optRecord(4096)] }));
    const ok = decodeResponse(encodeDnsResponse({ query: q, rcode: 'NXDOMAIN', maxBytes: 512 }));
    expect(ok.rcode).toBe('NXDOMAIN');
    expect(ok.additionals?.[0]).toMatchObject({ type: 'OPT', udpPayloadSize: 1232 });
    const badvers = encodeDnsResponse({ query: q, rcode: 'BADVERS', maxBytes: 512 });
    expect(badvers.readUInt16BE(2) & 0xf).toBe(0);
    expect(badvers[badvers.length - 6]).toBe(1); // OPT TTL's top byte: extended rcode 1 → 16
  });

  it('sets TC and leaves the answers out when they do not fit the limit', () => {
    const q = accepted(query('a.test', 'A', { additionals: [optRecord(512)] }));
    const answers = Array.from({ length: 40 }, (_, i) => ({ type: 1, ttl: 60, data: Buffer.from([198, 18, 0, i + 1]) }));
    const full = encodeDnsResponse({ query: q, rcode: 'NOERROR', answers, maxBytes: 65535 });
    expect(full.length).toBeGreaterThan(512);
    const truncated = decodeResponse(encodeDnsResponse({ query: q, rcode: 'NOERROR', answers, maxBytes: udpLimitFor(q.edns) }));
    expect(truncated.flag_tc).toBe(true);
    expect(truncated.answers).toHaveLength(0);
    expect(truncated.questions?.[0]?.name).toBe('a.test');
    expect(truncated.additionals?.[0]?.type).toBe('OPT');
    const untruncated = decodeResponse(full);
    expect(untruncated.flag_tc).toBe(false);
    expect(untruncated.answers).toHaveLength(40);
  });

  it('udpLimitFor: 512 without EDNS, the client size with it, never below 512', () => {
    expect(udpLimitFor(null)).toBe(512);
    expect(udpLimitFor({ udpPayloadSize: 1232, version: 0, dnssecOk: false })).toBe(1232);
    expect(udpLimitFor({ udpPayloadSize: 100, version: 0, dnssecOk: false })).toBe(512);
  });

  it('error responses are a bare header', () => {
    const decoded = decodeResponse(encodeErrorResponse(7, true, 'NOTIMP'));
    expect(decoded).toMatchObject({ id: 7, rcode: 'NOTIMP', flag_qr: true, flag_rd: true });
  });

  it('names query types, unknown ones as TYPEn', () => {
    expect(qtypeName(65)).toBe('HTTPS');
    expect(qtypeName(64)).toBe('SVCB');
    expect(qtypeName(4711)).toBe('TYPE4711');
  });
});
