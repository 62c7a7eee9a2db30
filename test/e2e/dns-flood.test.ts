// A DNS query flood, over UDP and over the jail's length-framed unix socket: the server goes on
// answering, and no listener piles up on a socket (MaxListenersExceededWarning). The gateway's
// memory before and after is printed as a measurement, never asserted (the machine is shared).
import dgram from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';

const QUERIES = 100_000;
const POLICY = `version: 1
rules:
  - id: api
    host: api.flood.test
  - id: wild
    host: "*.flood.test"
`;

function query(id: number, name: string): Buffer {
  return dnsPacket.encode({ type: 'query', id: id & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
}

function rssMiB(pid: number): string {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? (Number(match[1]) / 1024).toFixed(1) : '?';
}

async function waitFor(check: () => boolean, ms: number, stepMs = 50): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += stepMs) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return check();
}

/** One A query from a fresh socket, asked again until an answer comes (UDP may drop it). */
async function askOnce(port: number, name: string, deadlineMs: number): Promise<dnsPacket.Packet & { rcode?: string }> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  try {
    let answer: (dnsPacket.Packet & { rcode?: string }) | undefined;
    socket.on('message', (message) => (answer = dnsPacket.decode(message)));
    for (let waited = 0; answer === undefined && waited < deadlineMs; waited += 500) {
      socket.send(query(4242, name), port, '127.0.0.1');
      await waitFor(() => answer !== undefined, 500);
    }
    if (answer === undefined) throw new Error(`no answer for ${name} within ${deadlineMs} ms`);
    return answer;
  } finally {
    socket.close();
  }
}

describe('a DNS query flood', () => {
  let dir: string;
  let gateway: GatewayProcess;
  let socketPath: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-dns-flood-'));
    socketPath = join(dir, 'dns.sock');
    gateway = await startGatewayProcess({ policyYaml: POLICY, args: ['--dns', '127.0.0.1:0', '--dns-socket', socketPath] });
  });

  afterAll(async () => {
    await gateway?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(`${QUERIES.toLocaleString('en')} UDP queries from 16 sources: the server still answers, and no listener piles up`, async () => {
    const before = rssMiB(gateway.pid);
    const sockets: dgram.Socket[] = [];
    let answered = 0;
    for (let k = 0; k < 16; k++) {
      const socket = dgram.createSocket('udp4');
      // Loopback is all of 127/8: each source address has a rate limit of its own.
      await new Promise<void>((resolve) => socket.bind(0, `127.0.9.${k + 2}`, resolve));
      socket.on('message', () => answered++);
      sockets.push(socket);
    }
    for (let i = 0; i < QUERIES; i++) {
      sockets[i % sockets.length]!.send(query(i, `n${i}-${'x'.repeat(40)}.flood.test`), gateway.dnsPort!, '127.0.0.1');
      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    const answer = await askOnce(gateway.dnsPort!, 'api.flood.test', 60_000);
    for (const socket of sockets) socket.close();
    expect(answer.rcode).toBe('NOERROR');
    expect(answer.answers?.[0]).toMatchObject({ type: 'A' });
    expect(gateway.stderr()).not.toContain('MaxListenersExceededWarning');
    process.stderr.write(`[dns-flood] UDP: ${QUERIES} queries, ${answered} answers; gateway RSS ${before} MiB before, ${rssMiB(gateway.pid)} MiB after\n`);
  });

  it(`${QUERIES.toLocaleString('en')} framed queries on the unix socket from a client that reads nothing, then everything: each one answered, no listener piles up`, async () => {
    const before = rssMiB(gateway.pid);
    const client = net.connect(socketPath);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    client.pause();
    for (let i = 0; i < QUERIES; i++) {
      const message = query(i, `m${i % 1000}.flood.test`);
      const frame = Buffer.alloc(2 + message.length);
      frame.writeUInt16BE(message.length, 0);
      message.copy(frame, 2);
      client.write(frame);
    }
    // Until the gateway stops reading: its answers fill the socket, so it waits for this client.
    let last = -1;
    let steady = 0;
    const stalled = await waitFor(() => {
      const pending = client.writableLength;
      steady = pending > 0 && pending === last ? steady + 1 : 0;
      last = pending;
      return steady >= 20;
    }, 60_000);
    expect(stalled).toBe(true);

    let answers = 0;
    let buffered = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        answers++;
      }
    });
    client.resume();
    expect(await waitFor(() => answers >= QUERIES, 180_000, 100)).toBe(true);
    client.destroy();
    expect(answers).toBe(QUERIES);
    expect(gateway.stderr()).not.toContain('MaxListenersExceededWarning');
    expect((await askOnce(gateway.dnsPort!, 'api.flood.test', 60_000)).rcode).toBe('NOERROR');
    process.stderr.write(`[dns-flood] unix socket: ${QUERIES} queries answered; gateway RSS ${before} MiB before, ${rssMiB(gateway.pid)} MiB after\n`);
  });
});
