// The DNS wire format as far as a sandbox-facing resolver needs it: strict parsing of one query
// (header, one question, an optional EDNS0 OPT record) and encoding of our small answers.
//
// Why not dns-packet's decode here: it turns label bytes into a UTF-8 string, so a label holding a
// "." byte or invalid UTF-8 collapses into a different name (the admission check would then see a
// name the client did not ask for); it accepts compression pointers and trailing garbage in
// queries; and it took up to 12 ms on a single random packet (gateway/dns/dns-message.bench.ts
// measures both parsers on random bytes). This parser looks at every byte once, rejects what no
// real stub resolver sends, and keeps the question's bytes so the answer echoes them exactly (0x20
// case randomisation survives). dns-packet remains the independent implementation the tests speak
// to us with.

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  /** Extended (EDNS0) rcode: upper bits go in the OPT record. */
  BADVERS: 16,
} as const;
export type RcodeName = keyof typeof RCODE;

export const QTYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  NULL: 10,
  PTR: 12,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NAPTR: 35,
  OPT: 41,
  DS: 43,
  DNSKEY: 48,
  SVCB: 64,
  HTTPS: 65,
  SPF: 99,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
  CAA: 257,
  PRIVATE: 65399,
} as const;

const QTYPE_NAMES = new Map<number, string>(Object.entries(QTYPE).map(([name, code]) => [code, name]));

/** "A", "HTTPS", or RFC 3597's "TYPE12345" for anything unnamed. */
export function qtypeName(code: number): string {
  return QTYPE_NAMES.get(code) ?? `TYPE${code}`;
}

export const CLASS_IN = 1;
export const CLASS_ANY = 255;
const HEADER_BYTES = 12;
const MAX_NAME_WIRE_BYTES = 255;
/** What we advertise in our OPT record (the DNS flag day 2020 value). */
export const ADVERTISED_UDP_PAYLOAD = 1232;
/** Without EDNS0 a UDP answer may not exceed 512 bytes (RFC 1035). */
export const CLASSIC_UDP_PAYLOAD = 512;

export interface EdnsInfo {
  udpPayloadSize: number;
  version: number;
  dnssecOk: boolean;
}

export interface DnsQuestion {
  /** The question section's bytes (name, type, class), echoed verbatim in the answer. */
  raw: Buffer;
  /** Lower-case text form without the trailing dot; bytes outside [a-z0-9_-] appear as \DDD. */
  name: string;
  labels: string[];
  /** True when every label byte is a letter, digit, "-" or "_": the only names a policy can admit. */
  plain: boolean;
  qtype: number;
  qclass: number;
}

export type ParsedQuery =
  /** Not a DNS query we could answer at all (too short, a response, garbage): stay silent. */
  | { kind: 'drop'; reason: string }
  /** A query header we can answer with an error rcode alone (no question echoed). */
  | { kind: 'error'; id: number; recursionDesired: boolean; rcode: 'FORMERR' | 'NOTIMP'; reason: string }
  | { kind: 'query'; id: number; recursionDesired: boolean; checkingDisabled: boolean; question: DnsQuestion; edns: EdnsInfo | null };

/** Parses one query message. Never throws; never reads past the buffer. */
export function parseDnsQuery(message: Buffer): ParsedQuery {
  // SECURITY: the header guard runs before anything else looks at the packet, so a malformed or
  // hostile packet costs O(length) and can never crash or stall the server — test:
  // gateway/dns/dns-message.test.ts ("random and truncated packets").
  if (message.length < HEADER_BYTES) return { kind: 'drop', reason: 'shorter than a DNS header' };
  const id = message.readUInt16BE(0);
  const flags = message.readUInt16BE(2);
  if (flags & 0x8000) return { kind: 'drop', reason: 'a response, not a query' };
  const recursionDesired = (flags & 0x0100) !== 0;
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) return { kind: 'error', id, recursionDesired, rcode: 'NOTIMP', reason: `opcode ${opcode}` };
  const qdcount = message.readUInt16BE(4);
  const ancount = message.readUInt16BE(6);
  const nscount = message.readUInt16BE(8);
  const arcount = message.readUInt16BE(10);
  if (qdcount !== 1 || ancount !== 0 || nscount !== 0 || arcount > 1) {
    return { kind: 'error', id, recursionDesired, rcode: 'FORMERR', reason: `counts ${qdcount}/${ancount}/${nscount}/${arcount}` };
  }

  const labels: string[] = [];
  let plain = true;
  let offset = HEADER_BYTES;
  let wireBytes = 1;
  for (;;) {
    if (offset >= message.length) return { kind: 'drop', reason: 'question name runs past the packet' };
    const length = message[offset] ?? 0;
    offset += 1;
    if (length === 0) break;
    // Compression pointers (0xc0) and the obsolete extended label types are not sent by stub
    // resolvers in a question; accepting them only widens the parser.
    if ((length & 0xc0) !== 0) return { kind: 'drop', reason: 'compressed or extended label in the question' };
    if (offset + length > message.length) return { kind: 'drop', reason: 'label runs past the packet' };
    wireBytes += length + 1;
    if (wireBytes > MAX_NAME_WIRE_BYTES) {
      return { kind: 'error', id, recursionDesired, rcode: 'FORMERR', reason: 'name longer than 255 bytes' };
    }
    let label = '';
    for (let i = offset; i < offset + length; i++) {
      const byte = message[i] ?? 0;
      if ((byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x5f) {
        label += String.fromCharCode(byte);
      } else if (byte >= 0x41 && byte <= 0x5a) {
        label += String.fromCharCode(byte + 0x20);
      } else {
        plain = false;
        label += `\\${byte.toString().padStart(3, '0')}`;
      }
    }
    labels.push(label);
    offset += length;
  }
  if (offset + 4 > message.length) return { kind: 'drop', reason: 'question type/class missing' };
  const qtype = message.readUInt16BE(offset);
  const qclass = message.readUInt16BE(offset + 2);
  offset += 4;
  const question: DnsQuestion = {
    raw: Buffer.from(message.subarray(HEADER_BYTES, offset)),
    name: labels.join('.'),
    labels,
    plain,
    qtype,
    qclass,
  };

  let edns: EdnsInfo | null = null;
  if (arcount === 1) {
    // Only an OPT record with the root name is accepted as the additional record.
    if (offset + 11 > message.length) return { kind: 'drop', reason: 'additional record runs past the packet' };
    const ownerIsRoot = message[offset] === 0;
    const type = message.readUInt16BE(offset + 1);
    const rdlength = message.readUInt16BE(offset + 9);
    if (!ownerIsRoot || type !== QTYPE.OPT) {
      return { kind: 'error', id, recursionDesired, rcode: 'FORMERR', reason: 'additional record is not an EDNS0 OPT' };
    }
    if (offset + 11 + rdlength > message.length) return { kind: 'drop', reason: 'OPT data runs past the packet' };
    const ttl = message.readUInt32BE(offset + 5);
    edns = {
      udpPayloadSize: message.readUInt16BE(offset + 3),
      version: (ttl >>> 16) & 0xff,
      dnssecOk: (ttl & 0x8000) !== 0,
    };
    offset += 11 + rdlength;
  }
  if (offset !== message.length) return { kind: 'drop', reason: 'trailing bytes after the query' };
  return { kind: 'query', id, recursionDesired, checkingDisabled: (flags & 0x0010) !== 0, question, edns };
}

export interface AnswerRecord {
  type: number;
  ttl: number;
  data: Buffer;
}

export interface ResponseParts {
  query: Extract<ParsedQuery, { kind: 'query' }>;
  rcode: RcodeName;
  answers?: AnswerRecord[];
  /** Largest message the transport allows: 65535 for TCP, the EDNS0 / classic limit for UDP. */
  maxBytes: number;
}

/** The UDP size limit for an answer to `query` (RFC 6891: values below 512 mean 512). */
export function udpLimitFor(edns: EdnsInfo | null): number {
  if (!edns) return CLASSIC_UDP_PAYLOAD;
  return Math.max(CLASSIC_UDP_PAYLOAD, edns.udpPayloadSize);
}

/**
 * Encodes a response: header, the question echoed verbatim, answers owned by the question name
 * (a compression pointer to offset 12), and an OPT record when the query had one. When the result
 * would exceed `maxBytes` the answers are left out and TC is set, so the client retries over TCP.
 */
export function encodeDnsResponse(parts: ResponseParts): Buffer {
  const { query } = parts;
  const answers = parts.answers ?? [];
  const rcode = RCODE[parts.rcode];
  const opt = query.edns ? encodeOpt(rcode >> 4, query.edns.dnssecOk) : null;
  const answerBytes = answers.reduce((sum, a) => sum + 12 + a.data.length, 0);
  const fullLength = HEADER_BYTES + query.question.raw.length + answerBytes + (opt?.length ?? 0);
  const truncated = fullLength > parts.maxBytes;
  const included = truncated ? [] : answers;

  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(query.id, 0);
  let flags = 0x8000 | 0x0080 | (rcode & 0xf); // QR, RA: to the sandbox we are its recursive resolver
  if (query.recursionDesired) flags |= 0x0100;
  if (query.checkingDisabled) flags |= 0x0010;
  if (truncated) flags |= 0x0200;
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(included.length, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(opt ? 1 : 0, 10);

  const chunks: Buffer[] = [header, query.question.raw];
  for (const answer of included) {
    const fixed = Buffer.alloc(12);
    fixed.writeUInt16BE(0xc000 | HEADER_BYTES, 0);
    fixed.writeUInt16BE(answer.type, 2);
    fixed.writeUInt16BE(CLASS_IN, 4);
    fixed.writeUInt32BE(answer.ttl >>> 0, 6);
    fixed.writeUInt16BE(answer.data.length, 10);
    chunks.push(fixed, answer.data);
  }
  if (opt) chunks.push(opt);
  return Buffer.concat(chunks);
}

/** A header-only error answer (FORMERR / NOTIMP) for a query whose question we did not accept. */
export function encodeErrorResponse(id: number, recursionDesired: boolean, rcode: 'FORMERR' | 'NOTIMP' | 'REFUSED'): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x8000 | 0x0080 | (recursionDesired ? 0x0100 : 0) | RCODE[rcode], 2);
  return header;
}

function encodeOpt(extendedRcode: number, dnssecOk: boolean): Buffer {
  const opt = Buffer.alloc(11);
  opt[0] = 0; // root owner name
  opt.writeUInt16BE(QTYPE.OPT, 1);
  opt.writeUInt16BE(ADVERTISED_UDP_PAYLOAD, 3);
  opt.writeUInt32BE(((extendedRcode & 0xff) << 24) | (dnssecOk ? 0x8000 : 0), 5);
  opt.writeUInt16BE(0, 9);
  return opt;
}

/** Wire form of a domain name (for PTR data); `name` must be plain text labels. */
export function encodeName(name: string): Buffer {
  const labels = name.split('.').filter((label) => label.length > 0);
  const chunks: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'ascii');
    if (bytes.length > 63) throw new RangeError(`label longer than 63 bytes in ${name}`);
    chunks.push(Buffer.from([bytes.length]), bytes);
  }
  chunks.push(Buffer.from([0]));
  return Buffer.concat(chunks);
}
