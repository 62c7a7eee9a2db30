// Test support: a tiny authoritative DNS server (dns-packet over UDP on loopback) that answers
// from a fixed table and records every query it receives, plus small dns-packet conveniences.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface RecordingDnsServer {
  /** "127.0.0.1:PORT", ready for --dns-upstream / Resolver.setServers. */
  readonly server: string;
  readonly port: number;
  /** Every question received, in order, as "name TYPE" (name lower-cased). */
  readonly queries: string[];
  close(): Promise<void>;
}

export interface RecordingZone {
  /** name → addresses (v4 and v6 mixed); anything else is NXDOMAIN. */
  records: Record<string, string[]>;
  ttl?: number;
}

export async function startRecordingDnsServer(zone: RecordingZone): Promise<RecordingDnsServer> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  socket.on('message', (message, remote) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase();
    queries.push(`${name} ${question.type}`);
    const addresses = zone.records[name];
    const wanted = question.type === 'AAAA' ? ':' : question.type === 'A' ? '.' : null;
    const answers = (addresses ?? [])
      .filter((address) => wanted !== null && address.includes(wanted))
      .map((address) => ({ type: question.type as 'A' | 'AAAA', name: question.name, ttl: zone.ttl ?? 300, data: address }));
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (addresses ? 0 : 3),
      questions: [question],
      answers,
    });
    socket.send(response, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  return {
    server: `127.0.0.1:${port}`,
    port,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** An EDNS0 OPT record for dns-packet queries. */
export function optRecord(udpPayloadSize: number, flags = 0, options: dnsPacket.PacketOpt[] = []): dnsPacket.OptAnswer {
  return { type: 'OPT', name: '.', udpPayloadSize, extendedRcode: 0, ednsVersion: 0, flags, flag_do: (flags & dnsPacket.DNSSEC_OK) !== 0, options };
}

const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** The 4-bit header rcode of a response, by name (@types/dns-packet does not declare `rcode`). */
export function rcodeOf(response: Buffer): string {
  const code = response.readUInt16BE(2) & 0xf;
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

/** dns-packet's decode plus the header rcode by name. */
export function decodeResponse(response: Buffer): dnsPacket.DecodedPacket & { rcode: string } {
  return { ...dnsPacket.decode(response), rcode: rcodeOf(response) };
}
