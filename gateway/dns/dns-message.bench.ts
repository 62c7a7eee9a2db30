// Cost of parsing what the sandbox sends the DNS server: random bytes, header-shaped random bytes
// that reach the question walker, and a valid query (a measurement, not a test: the speed follows
// the machine). Run: npx vitest bench --run --project unit gateway/dns/dns-message.bench.ts
import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { bench, describe } from 'vitest';
import { optRecord } from '../../test/support/dns-test-packets.js';
import { parseDnsQuery } from './dns-message.js';

const random: Buffer[] = [];
const shaped: Buffer[] = [];
for (let i = 0; i < 10_000; i++) {
  const bytes = randomBytes(Math.floor(Math.random() * 300));
  random.push(bytes);
  if (bytes.length >= 12) {
    // past the header guard, into the question walker
    const walked = Buffer.from(bytes);
    walked[2] = (walked[2] ?? 0) & 0x07;
    walked.writeUInt16BE(1, 4);
    walked.fill(0, 6, 11);
    shaped.push(walked);
  }
}
const valid = dnsPacket.encode({
  type: 'query',
  id: 4242,
  flags: dnsPacket.RECURSION_DESIRED,
  questions: [{ type: 'A', name: 'api.example.test' }],
  additionals: [optRecord(1232)],
});
let next = 0;

describe('parseDnsQuery', () => {
  bench('random bytes (0-299)', () => {
    parseDnsQuery(random[next++ % random.length]!);
  });
  bench('header-shaped random bytes', () => {
    parseDnsQuery(shaped[next++ % shaped.length]!);
  });
  bench('a valid A query with EDNS', () => {
    parseDnsQuery(valid);
  });
});
