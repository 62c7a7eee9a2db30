// A UDP DNS server on 127.0.0.1 that answers A queries from a fixed map and logs every query it
// receives, so a test can prove a name was (or was never) looked up.
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface DnsQueryRecord {
  /** Lower-cased, without a trailing dot. */
  name: string;
  type: string;
}

export interface DnsLogServer {
  port: number;
  /** "127.0.0.1:PORT", as --dns-upstream takes it. */
  address: string;
  queries: DnsQueryRecord[];
  /** Distinct names queried, in first-seen order. */
  queriedNames(): string[];
  reset(): void;
  close(): Promise<void>;
}

function normalise(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** `answers`: name → IPv4 address. Known names get NOERROR (an A record for A queries, nothing for others); unknown names NXDOMAIN. */
export async function startDnsLogServer(answers: Record<string, string>): Promise<DnsLogServer> {
  const table = new Map(Object.entries(answers).map(([name, ip]) => [normalise(name), ip]));
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
    const ip = table.get(name);
    const answerRecords: dnsPacket.Answer[] =
      ip !== undefined && question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 5, class: 'IN', data: ip }] : [];
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      // QR + RD copied + RA; RCODE 3 (NXDOMAIN) for names we do not know.
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (ip === undefined ? 3 : 0),
      questions: [question],
      answers: answerRecords,
    });
    socket.send(response, remote.port, remote.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => resolve());
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
