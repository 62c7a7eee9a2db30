// Test support: a UDP DNS server on 127.0.0.1 that answers from a fixed table and logs every query
// it receives, so a test can prove a name was (or was never) looked up, and point a resolver
// (--dns-upstream, Resolver.setServers) at known answers.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';

export interface DnsQueryRecord {
  /** Lower-cased, without a trailing dot. */
  name: string;
  /** The question type as dns-packet names it: "A", "AAAA", "TXT", "UNKNOWN_65", ... */
  type: string;
}

export interface DnsLogServer {
  port: number;
  /** "127.0.0.1:PORT", as --dns-upstream and Resolver.setServers take it. */
  address: string;
  /** Every question received, in order. */
  queries: DnsQueryRecord[];
  /** Distinct names queried, in first-seen order. */
  queriedNames(): string[];
  reset(): void;
  close(): Promise<void>;
}

export interface DnsLogServerOptions {
  /** TTL of every answer record, in seconds. Default 5. */
  ttl?: number;
  /** UDP port to bind (default: any free one); a test that restarts a server passes the old one. */
  port?: number;
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/**
 * `answers`: name → one address or a list of addresses, IPv4 and IPv6 mixed. A known name gets
 * NOERROR, with its IPv4 addresses for A queries, its IPv6 ones for AAAA, and no records for any
 * other type (or a family it has none of); an unknown name gets NXDOMAIN.
 */
export async function startDnsLogServer(answers: Record<string, string | string[]>, options: DnsLogServerOptions = {}): Promise<DnsLogServer> {
  const ttl = options.ttl ?? 5;
  const table = new Map<string, string[]>();
  for (const [name, value] of Object.entries(answers)) {
    const addresses = typeof value === 'string' ? [value] : value;
    const invalid = addresses.find((address) => net.isIP(address) === 0);
    if (invalid !== undefined) throw new Error(`startDnsLogServer: ${name}: not an IP address: ${invalid}`);
    table.set(normalise(name), addresses);
  }
  const queries: DnsQueryRecord[] = [];
  const socket = dgram.createSocket('udp4');

  socket.on('message', (message, remote) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) return;
    const name = normalise(question.name);
    queries.push({ name, type: question.type });
    const addresses = table.get(name);
    const family = question.type === 'A' ? 4 : question.type === 'AAAA' ? 6 : 0;
    const answerRecords: dnsPacket.Answer[] = (addresses ?? [])
      .filter((address) => family !== 0 && net.isIP(address) === family)
      .map((address) => ({ type: question.type as 'A' | 'AAAA', name: question.name, ttl, class: 'IN', data: address }));
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      // QR + AA + RD copied + RA; RCODE 3 (NXDOMAIN) for names we do not know.
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER |
        ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
        dnsPacket.RECURSION_AVAILABLE |
        (addresses === undefined ? 3 : 0),
      questions: [question],
      answers: answerRecords,
    });
    socket.send(response, remote.port, remote.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = socket.address();
  return {
    port,
    address: `127.0.0.1:${port}`,
    queries,
    queriedNames: () => [...new Set(queries.map((q) => q.name))],
    reset: () => {
      queries.length = 0;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
