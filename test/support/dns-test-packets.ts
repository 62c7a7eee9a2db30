// Test support: small dns-packet conveniences. (The recording DNS server is startDnsLogServer in
// dns-log-server.ts.)
import dnsPacket from 'dns-packet';

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
