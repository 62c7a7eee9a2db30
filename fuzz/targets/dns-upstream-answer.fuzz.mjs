// Answers from an upstream DNS server, as UpstreamResolver (gateway/dns/upstream-resolver.ts)
// receives them: a DNS server on 127.0.0.1 answers each A and AAAA query with the query's id and
// question followed by the fuzzer's header flags, counts and records. c-ares decodes them (not
// instrumented); the resolver's JavaScript turns them into addresses, TTLs and errors.
// Input layout: [flags 2][ancount 2][nscount 2][arcount 2][records...].
// Contract: resolve() settles within its query timeout, resolves to IP literals of the family
// they claim, or rejects with SrtGwError UPSTREAM_DNS.
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { UpstreamResolver } from '../../dist/gateway/dns/upstream-resolver.js';
import { ErrorCodes, SrtGwError } from '../../dist/errors.js';
import { expect, violation, withinDeadline } from '../target-contract.mjs';

const QUERY_TIMEOUT_MS = 250;
const DEADLINE_MS = 5000;

let answer = Buffer.alloc(8);
const server = dgram.createSocket('udp4');
server.on('message', (query, peer) => {
  if (query.length < 12) return;
  // The question ends at the first zero label length after the header, then type and class.
  let end = 12;
  while (end < query.length && query[end] !== 0) end += query[end] + 1;
  const question = query.subarray(12, end + 5);
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8000 | (answer.length >= 2 ? answer.readUInt16BE(0) : 0), 2);
  header.writeUInt16BE(1, 4);
  answer.copy(header, 6, 2, 8);
  server.send(Buffer.concat([header, question, answer.subarray(8)]), peer.port, peer.address);
});
await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve));
server.unref();
const dnsServer = `127.0.0.1:${server.address().port}`;

let queries = 0;

export async function fuzz(data) {
  answer = Buffer.concat([data, Buffer.alloc(Math.max(0, 8 - data.length))]);
  // A fresh resolver per input: no cached answer from an earlier input.
  const resolver = new UpstreamResolver({ dnsServers: [dnsServer], useHostsFile: false, queryTimeoutMs: QUERY_TIMEOUT_MS, queryTries: 1 });
  const name = `q${++queries}.fuzz.example`;
  const outcome = await withinDeadline(
    resolver.resolve(name).then(
      (addresses) => ({ addresses }),
      (error) => ({ error }),
    ),
    DEADLINE_MS,
    'resolve() against an answering server',
  );
  if ('error' in outcome) {
    if (!(outcome.error instanceof SrtGwError) || outcome.error.code !== ErrorCodes.UPSTREAM_DNS) {
      throw violation(`resolve() rejected with ${outcome.error?.constructor?.name} ${outcome.error?.code ?? ''}: ${outcome.error?.message}`, outcome.error);
    }
    return;
  }
  expect(Array.isArray(outcome.addresses) && outcome.addresses.length > 0, 'a resolved name has addresses');
  for (const { address, family } of outcome.addresses) {
    expect(isIP(address) === family, `address ${address} is IPv${family}`);
  }
}
