// DNS query messages as a sandboxed program sends them to the gateway's resolver.
// Contract: parseDnsQuery never throws; a parsed query re-encodes to the same bytes (header
// fields, the question verbatim, the OPT record) and parses back to the same question; the
// response built for it echoes the question and stays within the transport's size limit.
import { parseDnsQuery, encodeDnsResponse, encodeErrorResponse, udpLimitFor, QTYPE } from '../../dist/gateway/dns/dns-message.js';
import { expect, expectEqual } from '../target-contract.mjs';

export function fuzz(data) {
  const parsed = parseDnsQuery(data);
  if (parsed.kind === 'drop') {
    expect(typeof parsed.reason === 'string', 'a dropped packet has a reason');
    return;
  }
  if (parsed.kind === 'error') {
    const answer = encodeErrorResponse(parsed.id, parsed.recursionDesired, parsed.rcode);
    expectEqual(answer.readUInt16BE(0), parsed.id, 'error answer echoes the id');
    return;
  }
  const reencoded = encodeQuery(parsed);
  const reparsed = parseDnsQuery(reencoded);
  expectEqual(reparsed.kind, 'query', 're-encoded query parses');
  expect(reparsed.question.raw.equals(parsed.question.raw), 'question bytes survive re-encoding');
  expectEqual(reparsed.question.name, parsed.question.name, 'question name survives re-encoding');
  expectEqual(reparsed.question.plain, parsed.question.plain, 'plainness survives re-encoding');
  expectEqual(JSON.stringify(reparsed.edns), JSON.stringify(parsed.edns), 'EDNS info survives re-encoding');
  // Parsing accepts only canonical queries, so re-encoding gives the input back byte for byte
  // except the flag bits the parser does not keep and the OPT record's data.
  expect(reencoded.subarray(4, 12 + parsed.question.raw.length).equals(data.subarray(4, 12 + parsed.question.raw.length)), 'counts and question re-encode byte for byte');

  const address = Buffer.from([192, 0, 2, 1]);
  const answers = Array.from({ length: data[data.length - 1] ?? 0 }, () => ({ type: QTYPE.A, ttl: 60, data: address }));
  const maxBytes = udpLimitFor(parsed.edns);
  const response = encodeDnsResponse({ query: parsed, rcode: 'NOERROR', answers, maxBytes });
  expect(response.length <= Math.max(maxBytes, 12 + parsed.question.raw.length + 11), `response of ${response.length} bytes fits ${maxBytes}`);
  expect(response.subarray(12, 12 + parsed.question.raw.length).equals(parsed.question.raw), 'response echoes the question verbatim');
  expectEqual(response.readUInt16BE(0), parsed.id, 'response echoes the id');
}

/** The query the parser says it read, written out again (RFC 1035 §4.1 layout). */
function encodeQuery(query) {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.id, 0);
  header.writeUInt16BE((query.recursionDesired ? 0x0100 : 0) | (query.checkingDisabled ? 0x0010 : 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(query.edns ? 1 : 0, 10);
  const chunks = [header, query.question.raw];
  if (query.edns) {
    const opt = Buffer.alloc(11);
    opt.writeUInt16BE(QTYPE.OPT, 1);
    opt.writeUInt16BE(query.edns.udpPayloadSize, 3);
    opt.writeUInt32BE(((query.edns.version & 0xff) << 16) | (query.edns.dnssecOk ? 0x8000 : 0), 5);
    chunks.push(opt);
  }
  return Buffer.concat(chunks);
}
