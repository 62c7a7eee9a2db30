// The fakes the other e2e tests lean on speak the real protocols: checked here directly, without the
// gateway, so a red gateway test is never a broken upstream in disguise.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startDnsLogServer, type DnsLogServer } from '../support/dns-log-server.js';
import { cleanEnv } from '../support/gateway-process.js';
import { connectRaw, RawConnection } from '../support/raw-tunnel.js';
import { createTestPki, type TestPki, type TestServerCert } from '../support/test-pki.js';
import { expectedBytesSha256, startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';
import { encodeFrame, newWebsocketKey, OPCODE, websocketAccept } from '../support/websocket-frames.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'), missingCommand('dig'));

async function run(command: string, args: string[], input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn(command, args, { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(input ?? '');
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  return { code, stdout: Buffer.concat(out), stderr };
}

describe.skipIf(skip !== null)('test support: the fakes speak the real protocols', () => {
  let pki: TestPki;
  let upstream: Upstream;
  let plain: Upstream;
  let dns: DnsLogServer;

  beforeAll(async () => {
    pki = createTestPki(['api.example.test']);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: ['api.example.test'] });
    plain = await startUpstream({ plain: true, names: ['api.example.test'] });
    dns = await startDnsLogServer({ 'known.example.test': '127.0.0.7', 'dual.example.test': ['127.0.0.8', '::8', '127.0.0.9'] });
  });

  afterAll(async () => {
    await upstream?.close();
    await plain?.close();
    await dns?.close();
    pki?.cleanup();
  });

  const curlDirect = (...args: string[]) =>
    run('curl', ['-sS', '--noproxy', '*', '--cacert', pki.ca.certPath, '--resolve', `api.example.test:${upstream.port}:127.0.0.1`, ...args]);

  it('the HTTPS upstream echoes a request over HTTP/1.1 and HTTP/2 with the SNI it saw', async () => {
    for (const [flag, version] of [['--http1.1', '1.1'], ['--http2', '2.0']] as const) {
      const result = await curlDirect(flag, upstream.url('/echo?x=1'));
      expect(result.stderr).toBe('');
      const echo = JSON.parse(result.stdout.toString()) as EchoResponse;
      expect(echo).toMatchObject({ method: 'GET', path: '/echo?x=1', httpVersion: version, servername: 'api.example.test', bodyBytes: 0 });
    }
    expect(upstream.received.map((r) => r.httpVersion)).toEqual(['1.1', '2.0']);
  });

  it('the upstream hashes request bodies and streams /bytes', async () => {
    const body = randomBytes(50_000);
    const withBody = await run(
      'curl',
      ['-sS', '--noproxy', '*', '--cacert', pki.ca.certPath, '--resolve', `api.example.test:${upstream.port}:127.0.0.1`, '--data-binary', '@-', upstream.url('/upload')],
      body,
    );
    const echo = JSON.parse(withBody.stdout.toString()) as EchoResponse;
    expect(echo.bodyBytes).toBe(body.length);
    expect(echo.bodySha256).toBe(createHash('sha256').update(body).digest('hex'));
    const bytes = await curlDirect(upstream.url('/bytes?n=300000'));
    expect(bytes.stdout.length).toBe(300_000);
    expect(createHash('sha256').update(bytes.stdout).digest('hex')).toBe(expectedBytesSha256(300_000));
  });

  it('the certificates: the trusted CA verifies the server cert, not the untrusted, expired or wrong-name ones', async () => {
    const check = (server: TestServerCert) =>
      new Promise<string | null>((resolve) => {
        const listener = tls.createServer({ cert: server.cert, key: server.key }, (s) => s.end());
        listener.listen(0, '127.0.0.1', () => {
          const { port } = listener.address() as AddressInfo;
          const client = tls.connect({ port, host: '127.0.0.1', servername: 'api.example.test', ca: pki.ca.cert });
          client.on('secureConnect', () => {
            client.destroy();
            listener.close();
            resolve(null);
          });
          client.on('error', (error: NodeJS.ErrnoException) => {
            listener.close();
            resolve(error.code ?? error.message);
          });
        });
      });
    expect(await check(pki.server)).toBeNull();
    expect(await check(pki.untrustedServer)).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
    expect(await check(pki.expiredServer)).toBe('CERT_HAS_EXPIRED');
    expect(await check(pki.wrongNameServer)).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('the upstream completes a WebSocket handshake on /ws and echoes masked frames unmasked', async () => {
    const socket = tls.connect({ port: upstream.port, host: '127.0.0.1', servername: 'api.example.test', ca: pki.ca.cert, ALPNProtocols: ['http/1.1'] });
    await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    const conn = new RawConnection(socket);
    const key = newWebsocketKey();
    conn.write(`GET /ws HTTP/1.1\r\nHost: api.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const response = await conn.readResponse();
    expect(response.status).toBe(101);
    expect(response.headers['sec-websocket-accept']).toBe(websocketAccept(key));
    conn.write(encodeFrame(OPCODE.text, Buffer.from('hello'), true));
    const frame = await conn.readFrame();
    expect(frame).toMatchObject({ opcode: OPCODE.text, masked: false });
    expect(frame.payload.toString()).toBe('hello');
    conn.destroy();
  });

  it("the plain upstream answers HTTP/1.1 and node's HTTP/2 client reaches the TLS one", async () => {
    const conn = await connectRaw(plain.port);
    conn.write('GET /plain HTTP/1.1\r\nHost: api.example.test\r\n\r\n');
    const response = await conn.readResponse();
    expect(response.status).toBe(200);
    expect((JSON.parse(response.text) as EchoResponse).servername).toBeNull();
    conn.destroy();

    const session = http2.connect(`https://127.0.0.1:${upstream.port}`, { ca: pki.ca.cert, servername: 'api.example.test' });
    const stream = session.request({ ':path': '/h2', ':authority': 'api.example.test' });
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((resolve) => stream.on('end', resolve));
    session.close();
    expect((JSON.parse(Buffer.concat(chunks).toString()) as EchoResponse).headers[':authority']).toBe('api.example.test');
  });

  it('the DNS log server answers known names, NXDOMAINs others and logs both', async () => {
    const known = await run('dig', ['+short', '+tries=1', '+time=2', '-p', String(dns.port), '@127.0.0.1', 'Known.Example.Test', 'A']);
    expect(known.stdout.toString().trim()).toBe('127.0.0.7');
    const unknown = await run('dig', ['+tries=1', '+time=2', '-p', String(dns.port), '@127.0.0.1', 'nope.example.test', 'A']);
    expect(unknown.stdout.toString()).toContain('NXDOMAIN');
    expect(dns.queriedNames()).toEqual(['known.example.test', 'nope.example.test']);
  });

  it('the DNS log server answers A with the IPv4 and AAAA with the IPv6 addresses of a mixed list', async () => {
    dns.reset();
    const dig = async (type: string) =>
      (await run('dig', ['+noall', '+answer', '+tries=1', '+time=2', '-p', String(dns.port), '@127.0.0.1', 'dual.example.test', type])).stdout
        .toString()
        .trim()
        .split('\n')
        .map((line) => line.split(/\s+/).join(' '));
    expect(await dig('A')).toEqual(['dual.example.test. 5 IN A 127.0.0.8', 'dual.example.test. 5 IN A 127.0.0.9']);
    expect(await dig('AAAA')).toEqual(['dual.example.test. 5 IN AAAA ::8']);
    expect(await dig('TXT')).toEqual(['']);
    expect(dns.queries).toEqual([
      { name: 'dual.example.test', type: 'A' },
      { name: 'dual.example.test', type: 'AAAA' },
      { name: 'dual.example.test', type: 'TXT' },
    ]);
  });
});
