// Domain fronting is closed: after CONNECT to an allowed host, the TLS SNI and every request's
// Host / :authority on that connection (HTTP/1.1 keep-alive requests, HTTP/2 streams) must name
// that same host, else the handshake is refused or the request gets 421 and goes nowhere.
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel, openTlsTunnel, RawConnection, tlsOverTunnel } from '../support/raw-tunnel.js';
import type { EchoResponse, Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('openssl'));

const API = 'api.example.test';
const OTHER_ALLOWED = 'other.test';
const EVIL = 'evil.test';

// other.test is allowed too: fronting from one allowed name to another must fail just the same.
const POLICY = `
version: 1
rules:
  - id: api-all
    host: ${API}
  - id: other-all
    host: ${OTHER_ALLOWED}
`;

function get(path: string, host: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
}

async function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders): Promise<{ status: number; body: string }> {
  const stream = session.request({ ':method': 'GET', ...headers }, { endStream: true });
  return new Promise((resolve, reject) => {
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (responseHeaders) => (status = Number(responseHeaders[':status'])));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
  });
}

describe.skipIf(skip !== null)('domain fronting through the gateway is refused', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let gatewayCa: string;
  let apiAuthority: string;

  beforeAll(async () => {
    // Every name resolves to the upstream, so a gateway that followed the wrong name would be caught
    // by upstream.received rather than by a connection error.
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API, OTHER_ALLOWED, EVIL] });
    ({ upstream, gateway, gatewayCa } = fixture);
    apiAuthority = `${API}:${upstream.port}`;
  });

  afterAll(async () => {
    await fixture?.close();
  });

  describe('SNI must equal the CONNECT host', () => {
    it.each([
      ['another allowed host', OTHER_ALLOWED],
      ['a host no rule allows', EVIL],
    ])('a ClientHello with the SNI of %s is refused and the upstream gets nothing', async (_label, sni) => {
      upstream.reset();
      const tunnel = await connectTunnel(gateway.proxyPort, apiAuthority);
      expect(tunnel.status).toBe(200);
      await expect(tlsOverTunnel(tunnel.socket, { servername: sni, ca: gatewayCa })).rejects.toThrow();
      tunnel.socket.destroy();
      expect(upstream.connections).toBe(0);
      expect(upstream.received).toEqual([]);
    });

    it('a ClientHello without SNI is accepted, and Host is still checked', async () => {
      upstream.reset();
      const tunnel = await connectTunnel(gateway.proxyPort, apiAuthority);
      expect(tunnel.status).toBe(200);
      const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: '', verifyHost: API, ca: gatewayCa });
      const conn = new RawConnection(tlsSocket);
      conn.write(get('/no-sni/ok', apiAuthority));
      expect((await conn.readResponse()).status).toBe(200);
      conn.write(get('/no-sni/evil', EVIL));
      expect((await conn.readResponse()).status).toBe(421);
      conn.destroy();
      expect(upstream.received.map((r) => r.path)).toEqual(['/no-sni/ok']);
    });
  });

  describe('HTTP/1.1: every keep-alive request must carry the CONNECT host', () => {
    it('two good requests on one connection, with and without the port in Host, both reach the upstream', async () => {
      upstream.reset();
      const conn = await openTlsTunnel(gateway.proxyPort, apiAuthority, { ca: gatewayCa });
      conn.write(get('/keepalive/first', apiAuthority));
      const first = await conn.readResponse();
      expect(first.status).toBe(200);
      expect((JSON.parse(first.text) as EchoResponse).servername).toBe(API);
      conn.write(get('/keepalive/second', API));
      expect((await conn.readResponse()).status).toBe(200);
      conn.destroy();
      expect(upstream.received.map((r) => r.path)).toEqual(['/keepalive/first', '/keepalive/second']);
    });

    it.each([
      ['a host no rule allows', EVIL],
      ['another allowed host', OTHER_ALLOWED],
      ['another allowed host with the CONNECT port', `${OTHER_ALLOWED}:PORT`],
      ['the CONNECT host with a different port', `${API}:1`],
      ['a name that merely starts with the CONNECT host', `${API}.${EVIL}`],
    ])('a second request whose Host is %s gets 421 and never reaches the upstream', async (_label, hostTemplate) => {
      upstream.reset();
      const host = hostTemplate.replace('PORT', String(upstream.port));
      const conn = await openTlsTunnel(gateway.proxyPort, apiAuthority, { ca: gatewayCa });
      conn.write(get('/fronting/ok', apiAuthority));
      expect((await conn.readResponse()).status).toBe(200);
      conn.write(get('/fronting/evil', host));
      expect((await conn.readResponse()).status).toBe(421);
      conn.destroy();
      expect(upstream.received.map((r) => r.path)).toEqual(['/fronting/ok']);
      expect(upstream.received.filter((r) => r.authority !== null && !r.authority.startsWith(API))).toEqual([]);
    });
  });

  it('each refused fronting attempt is in the audit log as a 421 that was not allowed', async () => {
    // The log is written asynchronously after the response: wait for all six lines
    // (one per it.each case above, plus the no-SNI one).
    const refusals = async () => (await gateway.auditLines()).filter((l) => l.kind === 'request' && l.status === 421);
    const deadline = Date.now() + 5_000;
    while ((await refusals()).length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const lines = await refusals();
    expect(lines.length).toBeGreaterThanOrEqual(6);
    expect(lines.every((l) => l.decision !== 'allow' && typeof l.reason === 'string' && l.reason !== '')).toBe(true);
  });

  describe('HTTP/2: every stream must carry the CONNECT host in :authority', () => {
    it('a stream with a foreign :authority gets 421; good streams on the same session get 200', async () => {
      upstream.reset();
      const tunnel = await connectTunnel(gateway.proxyPort, apiAuthority);
      expect(tunnel.status).toBe(200);
      const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: gatewayCa, alpn: ['h2'] });
      expect(tlsSocket.alpnProtocol).toBe('h2');
      const session = http2.connect(`https://${apiAuthority}`, { createConnection: () => tlsSocket });
      session.on('error', () => undefined);
      try {
        const good = await h2Request(session, { ':authority': apiAuthority, ':path': '/h2/good' });
        expect(good.status).toBe(200);
        expect(JSON.parse(good.body) as EchoResponse).toMatchObject({ path: '/h2/good', servername: API });

        const evil = await h2Request(session, { ':authority': EVIL, ':path': '/h2/evil' });
        expect(evil.status).toBe(421);
        const other = await h2Request(session, { ':authority': `${OTHER_ALLOWED}:${upstream.port}`, ':path': '/h2/other' });
        expect(other.status).toBe(421);

        const again = await h2Request(session, { ':authority': API, ':path': '/h2/again' });
        expect(again.status).toBe(200);
        expect(session.destroyed).toBe(false);

        // A host header beside a good :authority must not smuggle another name to the upstream:
        // refused, or forwarded with the CONNECT host only.
        const hostHeader = await h2Request(session, { ':authority': apiAuthority, ':path': '/h2/host-header', host: EVIL });
        if (hostHeader.status === 200) {
          const seen = upstream.received.find((r) => r.path === '/h2/host-header');
          expect(JSON.stringify(seen?.headers)).not.toContain(EVIL);
        } else {
          expect([400, 421]).toContain(hostHeader.status);
        }
      } finally {
        session.destroy();
      }
      expect(upstream.received.map((r) => r.path).filter((p) => p !== '/h2/host-header')).toEqual(['/h2/good', '/h2/again']);
    });
  });
});
