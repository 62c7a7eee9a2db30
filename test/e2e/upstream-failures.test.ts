// When the upstream cannot be reached safely the client gets a 502 that says why: a certificate
// the gateway does not trust (untrusted CA, expired, wrong name), a refused connection. Trust
// comes from the system store plus --upstream-ca, and nothing else.
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { curlThroughProxy, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel, openTlsTunnel, tlsOverTunnel } from '../support/raw-tunnel.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));

const API = 'api.example.test';

const POLICY = `
version: 1
rules:
  - id: api-all
    host: ${API}
`;

interface UpstreamFailureBody {
  error: string;
  reason: string;
}

/** A port on 127.0.0.1 that nothing listens on (bound once, then closed). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.skipIf(skip !== null)('upstream failures become 502 with the reason', () => {
  let pki: TestPki;
  let trusted: Upstream;
  let untrusted: Upstream;
  let expired: Upstream;
  let wrongName: Upstream;
  let deadPort: number;
  let gateway: GatewayProcess;
  let gatewayWithoutExtraCa: GatewayProcess;
  let impatientGateway: GatewayProcess;

  beforeAll(async () => {
    pki = createTestPki([API]);
    trusted = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    untrusted = await startUpstream({ cert: pki.untrustedServer.cert, key: pki.untrustedServer.key, names: [API] });
    expired = await startUpstream({ cert: pki.expiredServer.cert, key: pki.expiredServer.key, names: [API] });
    wrongName = await startUpstream({ cert: pki.wrongNameServer.cert, key: pki.wrongNameServer.key, names: [API] });
    deadPort = await closedPort();
    const resolve = ['--resolve', `${API}=127.0.0.1`];
    gateway = await startGatewayProcess({ policyYaml: POLICY, args: ['--upstream-ca', pki.ca.certPath, ...resolve] });
    gatewayWithoutExtraCa = await startGatewayProcess({ policyYaml: POLICY, args: resolve });
    impatientGateway = await startGatewayProcess({ policyYaml: POLICY, args: ['--upstream-ca', pki.ca.certPath, '--upstream-timeout', '1', ...resolve] });
  });

  afterAll(async () => {
    await gateway?.stop();
    await gatewayWithoutExtraCa?.stop();
    await impatientGateway?.stop();
    for (const upstream of [trusted, untrusted, expired, wrongName]) await upstream?.close();
    pki?.cleanup();
  });

  it('an upstream whose certificate chains to a CA given with --upstream-ca is reached (200)', async () => {
    const res = await curlThroughProxy(gateway, [trusted.url('/ok')]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(res.json<EchoResponse>()).toMatchObject({ path: '/ok', servername: API });
  });

  it.each([
    ['signed by a CA nobody configured', () => untrusted],
    ['expired', () => expired],
    ['issued for another name', () => wrongName],
  ])('an upstream certificate %s → 502 naming the certificate, and no request is sent', async (_label, pick) => {
    const upstream = pick();
    const res = await curlThroughProxy(gateway, [upstream.url('/secret-upload')]);
    expect(res.exitCode).toBe(0);
    expect(res.status).toBe(502);
    const body = res.json<UpstreamFailureBody>();
    expect(body.error).toBe('upstream');
    expect(body.reason).toMatch(/certificate/i);
    expect(upstream.received).toEqual([]);
  });

  it('without --upstream-ca the same trusted-by-test-CA upstream is refused: 502 naming the certificate', async () => {
    const before = trusted.received.length;
    const res = await curlThroughProxy(gatewayWithoutExtraCa, [trusted.url('/needs-extra-ca')]);
    expect(res.status).toBe(502);
    expect(res.json<UpstreamFailureBody>()).toMatchObject({ error: 'upstream', reason: expect.stringMatching(/certificate/i) });
    expect(trusted.received.length).toBe(before);
  });

  it('an upstream that never answers → 502 saying it did not answer in time (--upstream-timeout 1)', async () => {
    const started = Date.now();
    const res = await curlThroughProxy(impatientGateway, [trusted.url('/slow')]);
    expect(res.status).toBe(502);
    expect(res.json<UpstreamFailureBody>()).toMatchObject({ error: 'upstream', reason: expect.stringMatching(/did not answer in time/) });
    expect(Date.now() - started).toBeLessThan(10_000);
    const line = await impatientGateway.waitForAudit((l) => l.kind === 'request' && l.path === '/slow');
    expect(line).toMatchObject({ decision: 'error', step: 'upstream', upstreamError: 'timeout', status: 502 });
  });

  it('a body that stops arriving is cut after the between-chunks limit, and logged as a timeout (--upstream-timeout 1)', async () => {
    const started = Date.now();
    const res = await curlThroughProxy(impatientGateway, [trusted.url('/stall-body')]);
    expect(res.status).toBe(200); // the head had been relayed; the body ends short
    expect(res.body.length).toBe(100);
    expect(res.exitCode).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
    const line = await impatientGateway.waitForAudit((l) => l.kind === 'request' && l.path === '/stall-body');
    expect(line).toMatchObject({ decision: 'error', step: 'upstream', upstreamError: 'timeout', bytesOut: 100 });
  });

  it('a body slower in total than the limit, but never silent for that long, arrives whole (--upstream-timeout 1)', async () => {
    const res = await curlThroughProxy(impatientGateway, [trusted.url('/drip?n=6&ms=400')]);
    expect(res.exitCode).toBe(0);
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(60);
  });

  it('a client that stops reading for longer than the limit is not cut off: backpressure stops the clock (--upstream-timeout 1)', async () => {
    const authority = `${API}:${trusted.port}`;
    const total = 16 * 1024 * 1024;
    const tunnel = await connectTunnel(impatientGateway.proxyPort, authority);
    const socket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: readFileSync(impatientGateway.caPath) });
    try {
      socket.write(`GET /bytes?n=${total} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
      socket.pause(); // read nothing: the gateway's write buffer fills and it pauses the upstream
      await new Promise((resolve) => setTimeout(resolve, 3000));
      let received = 0;
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.resume();
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const headEnd = 200; // the head is well under this; the body is all that is left
      expect(received).toBeGreaterThan(total);
      expect(received).toBeLessThan(total + headEnd);
    } finally {
      socket.destroy();
    }
    const line = await impatientGateway.waitForAudit((l) => l.kind === 'request' && l.path === '/bytes');
    expect(line).toMatchObject({ decision: 'allow', status: 200, bytesOut: total });
  });

  it('a WebSocket upgrade the upstream never answers → 502 saying it did not answer in time (--upstream-timeout 1)', async () => {
    const authority = `${API}:${trusted.port}`;
    const started = Date.now();
    const conn = await openTlsTunnel(impatientGateway.proxyPort, authority, { ca: readFileSync(impatientGateway.caPath) });
    try {
      conn.write(
        `GET /ws-silent HTTP/1.1\r\nHost: ${authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      const response = await conn.readResponse(10_000);
      expect(response.status).toBe(502);
      expect(response.text).toMatch(/did not answer in time/);
    } finally {
      conn.destroy();
    }
    expect(Date.now() - started).toBeLessThan(10_000);
    const line = await impatientGateway.waitForAudit((l) => l.kind === 'request' && l.path === '/ws-silent');
    expect(line).toMatchObject({ decision: 'error', step: 'upstream', upstreamError: 'timeout', status: 502 });
  });

  it('a name resolving to a closed port → 502 saying the connection was refused (HTTPS)', async () => {
    const res = await curlThroughProxy(gateway, [`https://${API}:${deadPort}/anything`]);
    expect(res.status).toBe(502);
    expect(res.json<UpstreamFailureBody>()).toMatchObject({ error: 'upstream', reason: expect.stringMatching(/refused/i) });
  });

  it('a name resolving to a closed port → 502 saying the connection was refused (plain absolute-form)', async () => {
    const res = await curlThroughProxy(gateway, [`http://${API}:${deadPort}/anything`]);
    expect(res.status).toBe(502);
    expect(res.json<UpstreamFailureBody>()).toMatchObject({ error: 'upstream', reason: expect.stringMatching(/refused/i) });
  });
});
