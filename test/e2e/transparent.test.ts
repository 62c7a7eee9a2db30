// The transparent path the Linux jail uses: a unix socket where each connection starts with a
// PROXY v2 header naming the address the sandboxed program dialled. A synthetic address (from
// the gateway's DNS) stands for its name; any other address is an IP literal that a rule must
// name; other TCP passes only for an explicit tcp rule. The redirector is played here by a
// test client that writes the header, as the native helper will.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import proxyProtocol from 'proxy-protocol-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { RawConnection, tlsOverTunnel } from '../support/raw-tunnel.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('dig'), missingCommand('openssl'));

const API = 'api.example.test';
const SSH = 'git.example.test';

function proxyHeader(destination: string, port: number): Buffer {
  const octets = destination.split('.').map(Number);
  return Buffer.from(
    new proxyProtocol.V2ProxyProtocol(
      proxyProtocol.Command.PROXY,
      proxyProtocol.TransportProtocol.STREAM,
      new proxyProtocol.IPv4ProxyAddress(proxyProtocol.IPv4Address.createFrom([10, 0, 0, 2]), 40000, proxyProtocol.IPv4Address.createFrom(octets), port),
    ).build(),
  );
}

/** Connects to the transparent socket as the redirector would, writing the header first. */
function dial(socketPath: string, header: Buffer | null): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath, () => {
      if (header) socket.write(header);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function waitClosed(socket: net.Socket, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}

describe.skipIf(skip !== null)('transparent connections from the jail (PROXY v2 over a unix socket)', () => {
  let pki: TestPki;
  let upstream: Upstream;
  let tcpEcho: net.Server;
  let tcpEchoPort: number;
  let gateway: GatewayProcess;
  let socketDir: string;
  let socketPath: string;
  let dnsSocketPath: string;
  let gatewayCa: Buffer;

  const lookup = (name: string): string =>
    execFileSync('dig', ['@127.0.0.1', '-p', String(gateway.dnsPort), '+short', '+tries=1', '+time=2', name, 'A'], { encoding: 'utf8' }).trim();

  beforeAll(async () => {
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    tcpEcho = net.createServer((socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => tcpEcho.listen(0, '127.0.0.1', resolve));
    tcpEchoPort = (tcpEcho.address() as net.AddressInfo).port;
    socketDir = mkdtempSync(join(tmpdir(), 'srt-gw-transparent-'));
    socketPath = join(socketDir, 'gateway.sock');
    dnsSocketPath = join(socketDir, 'dns.sock');
    gateway = await startGatewayProcess({
      policyYaml: `
version: 1
rules:
  - id: api
    host: ${API}
    paths: ["/v1/**"]
  - id: git-ssh
    host: ${SSH}
    port: ${tcpEchoPort}
    protocol: tcp
`,
      args: [
        '--dns', '127.0.0.1:0',
        '--transparent', socketPath,
        '--dns-socket', dnsSocketPath,
        '--upstream-ca', pki.ca.certPath,
        '--resolve', `${API}=127.0.0.1`,
        '--resolve', `${SSH}=127.0.0.1`,
      ],
    });
    gatewayCa = readFileSync(gateway.caPath);
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await new Promise<void>((resolve) => (tcpEcho ? tcpEcho.close(() => resolve()) : resolve()));
    pki?.cleanup();
    rmSync(socketDir, { recursive: true, force: true });
  });

  it('the socket is private to the gateway user (mode 0600)', () => {
    expect(statSync(socketPath).mode & 0o777).toBe(0o600);
  });

  it('DNS over the unix socket (the jail forwarder\'s path) answers from the same map as UDP', async () => {
    expect(statSync(dnsSocketPath).mode & 0o777).toBe(0o600);
    const ask = (name: string, id: number) => {
      const query = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] });
      const framed = Buffer.alloc(2 + query.length);
      framed.writeUInt16BE(query.length, 0);
      query.copy(framed, 2);
      return framed;
    };
    const socket = await dial(dnsSocketPath, Buffer.concat([ask(API, 1), ask('exfil-data.attacker.test', 2)]));
    const answers: dnsPacket.DecodedPacket[] = [];
    let buffered = Buffer.alloc(0);
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
          answers.push(dnsPacket.decode(buffered.subarray(2, 2 + buffered.readUInt16BE(0))));
          buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        }
        if (answers.length === 2) resolve();
      });
      socket.once('error', reject);
    });
    socket.destroy();
    const byId = new Map(answers.map((a) => [a.id, a]));
    expect(byId.get(1)?.answers?.[0]).toMatchObject({ type: 'A', data: lookup(API) });
    expect(byId.get(2)?.answers ?? []).toEqual([]);
    expect(byId.get(2)?.flags !== undefined && (byId.get(2)!.flags! & 0xf)).toBe(3); // NXDOMAIN
  });

  it('HTTPS to the synthetic address of an allowed name is terminated, checked and forwarded', async () => {
    upstream.reset();
    const address = lookup(API);
    expect(address).toMatch(/^198\.1[89]\./);
    const socket = await dial(socketPath, proxyHeader(address, upstream.port));
    const conn = new RawConnection(await tlsOverTunnel(socket, { servername: API, ca: gatewayCa }));
    conn.write(`GET /v1/transparent HTTP/1.1\r\nHost: ${API}:${upstream.port}\r\n\r\n`);
    const response = await conn.readResponse();
    expect(response.status).toBe(200);
    expect((JSON.parse(response.text) as EchoResponse).servername).toBe(API);
    conn.write(`GET /admin HTTP/1.1\r\nHost: ${API}:${upstream.port}\r\n\r\n`);
    expect((await conn.readResponse()).status).toBe(403);
    conn.destroy();
    expect(upstream.received.map((r) => r.path)).toEqual(['/v1/transparent']);
  });

  it('a TLS name other than the one the synthetic address stands for is refused', async () => {
    upstream.reset();
    const socket = await dial(socketPath, proxyHeader(lookup(API), upstream.port));
    await expect(tlsOverTunnel(socket, { servername: 'other.test', verifyHost: API, ca: gatewayCa })).rejects.toThrow();
    expect(upstream.received).toEqual([]);
  });

  it('an address the gateway did not hand out (a real IP no rule names) is closed without a byte', async () => {
    const socket = await dial(socketPath, proxyHeader('203.0.113.9', 443));
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    expect(await waitClosed(socket)).toBe(true);
    expect(received).toBe(0);
    const line = await gateway.waitForAudit((l) => l.kind === 'connect' && l.host === '203.0.113.9');
    expect(line.decision).toBe('deny');
  });

  it('a connection without a PROXY header is closed', async () => {
    const socket = await dial(socketPath, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    expect(await waitClosed(socket)).toBe(true);
  });

  it('plain TCP passes for a tcp rule, to the address the gateway resolved itself', async () => {
    const address = lookup(SSH);
    expect(address).toMatch(/^198\.1[89]\./);
    const socket = await dial(socketPath, proxyHeader(address, tcpEchoPort));
    socket.write('SSH-2.0-test\r\n');
    const echoed = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    expect(echoed).toBe('SSH-2.0-test\r\n');
    socket.destroy();
  });

  it('plain TCP to a port the tcp rule does not name is closed', async () => {
    const socket = await dial(socketPath, proxyHeader(lookup(SSH), tcpEchoPort + 1));
    expect(await waitClosed(socket)).toBe(true);
    const line = await gateway.waitForAudit((l) => l.kind === 'connect' && l.host === SSH && l.decision === 'deny');
    expect(line.reason).toMatch(/not port/);
  });

  it('plain TCP to a real IP is closed even on the tcp rule\'s port: rules name hosts, not addresses', async () => {
    const socket = await dial(socketPath, proxyHeader('127.0.0.1', tcpEchoPort));
    expect(await waitClosed(socket)).toBe(true);
  });
});
