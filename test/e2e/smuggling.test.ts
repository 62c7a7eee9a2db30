// Request smuggling and header tricks are refused: a request the gateway and an upstream could read
// two ways (Content-Length with Transfer-Encoding, two Host headers, absolute-form host vs Host,
// oversized headers) gets 400 (431 for size), the connection closes, and nothing reaches the upstream.
import http2 from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { connectRaw, connectTunnel, openTlsTunnel, RawConnection, tlsOverTunnel } from '../support/raw-tunnel.js';
import type { Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('openssl'));

const API = 'api.example.test';
const OTHER = 'other.test';

const POLICY = `
version: 1
rules:
  - id: api-all
    host: ${API}
  - id: other-all
    host: ${OTHER}
`;

/**
 * Raw requests, built for a request-target prefix (`""` inside the TLS tunnel where requests are
 * origin-form, `http://host:port` on the plain proxy) and the authority under test.
 */
const inner = (host: string): string => `GET /smuggle/inner HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
const CASES: { name: string; raw: (target: string, host: string) => string; statuses: number[] }[] = [
  {
    // CL.TE: a front end reading Content-Length forwards the inner request as body; a back end
    // reading chunked sees it as a second request.
    name: 'Content-Length together with Transfer-Encoding',
    raw: (target, host) => {
      const body = `0\r\n\r\n${inner(host)}`;
      return `POST ${target}/smuggle/cl-te HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body}`;
    },
    statuses: [400],
  },
  {
    // TE.CL: the reverse; the chunk carries the inner request, Content-Length covers only its size line.
    name: 'Transfer-Encoding together with Content-Length (TE first)',
    raw: (target, host) => {
      const chunk = inner(host);
      const sizeLine = `${chunk.length.toString(16)}\r\n`;
      return (
        `POST ${target}/smuggle/te-cl HTTP/1.1\r\nHost: ${host}\r\nTransfer-Encoding: chunked\r\nContent-Length: ${sizeLine.length}\r\n\r\n` +
        `${sizeLine}${chunk}\r\n0\r\n\r\n`
      );
    },
    statuses: [400],
  },
  {
    name: 'two different Content-Length headers',
    raw: (target, host) =>
      `POST ${target}/smuggle/two-cl HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 0\r\nContent-Length: ${inner(host).length}\r\n\r\n${inner(host)}`,
    statuses: [400],
  },
  {
    name: 'two Host headers',
    raw: (target, host) => `GET ${target}/smuggle/two-hosts HTTP/1.1\r\nHost: ${host}\r\nHost: ${OTHER}\r\n\r\n`,
    statuses: [400],
  },
  {
    name: 'a 20 KiB header',
    raw: (target, host) => `GET ${target}/smuggle/big-header HTTP/1.1\r\nHost: ${host}\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`,
    statuses: [400, 431],
  },
];

describe.skipIf(skip !== null)('request smuggling through the gateway is refused', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let gateway: GatewayProcess;
  let gatewayCa: string;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API, OTHER], plainUpstream: true });
    ({ upstream, gateway, gatewayCa } = fixture);
    plainUpstream = fixture.plainUpstream!;
  });

  afterAll(async () => {
    await fixture?.close();
  });

  async function expectRefusedAndClosed(conn: RawConnection, raw: string, statuses: number[]): Promise<void> {
    conn.write(raw);
    const response = await conn.readResponse();
    expect(statuses).toContain(response.status);
    expect(await conn.waitForClose(5_000)).toBe(true);
    // Nothing after the refusal: no second response to a smuggled inner request.
    expect(conn.pending.toString('latin1')).toBe('');
  }

  describe('inside a CONNECT tunnel (TLS, origin-form)', () => {
    it.each(CASES)('$name → refused, connection closed, upstream untouched', async ({ raw, statuses }) => {
      const authority = `${API}:${upstream.port}`;
      const conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: gatewayCa });
      try {
        await expectRefusedAndClosed(conn, raw('', authority), statuses);
      } finally {
        conn.destroy();
      }
      expect(upstream.received.filter((r) => r.path.startsWith('/smuggle'))).toEqual([]);
    });
  });

  describe('on the plain proxy port (absolute-form)', () => {
    it.each(CASES)('$name → refused, connection closed, upstream untouched', async ({ raw, statuses }) => {
      const authority = `${API}:${plainUpstream.port}`;
      const conn = await connectRaw(gateway.proxyPort);
      try {
        await expectRefusedAndClosed(conn, raw(`http://${authority}`, authority), statuses);
      } finally {
        conn.destroy();
      }
      expect(plainUpstream.received.filter((r) => r.path.startsWith('/smuggle'))).toEqual([]);
    });

    it.each([
      ['a different allowed host', OTHER],
      ['the same host on another port', `${API}:1`],
    ])('absolute-form host with Host naming %s → 400, connection closed, upstream untouched', async (_label, host) => {
      const conn = await connectRaw(gateway.proxyPort);
      try {
        await expectRefusedAndClosed(conn, `GET http://${API}:${plainUpstream.port}/smuggle/abs-vs-host HTTP/1.1\r\nHost: ${host}\r\n\r\n`, [400]);
      } finally {
        conn.destroy();
      }
      expect(plainUpstream.received.filter((r) => r.path.startsWith('/smuggle'))).toEqual([]);
    });

    it('a well-formed absolute-form request on the same kind of connection is forwarded (control)', async () => {
      const authority = `${API}:${plainUpstream.port}`;
      const conn = await connectRaw(gateway.proxyPort);
      try {
        conn.write(`GET http://${authority}/control HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
        expect((await conn.readResponse()).status).toBe(200);
      } finally {
        conn.destroy();
      }
      expect(plainUpstream.received.map((r) => r.path)).toEqual(['/control']);
    });
  });

  describe('CONNECT inside a tunnel', () => {
    const refusal = 'CONNECT inside a tunnel is not supported';
    const connectLine = (protocol: string) => (line: Record<string, unknown>) =>
      line.kind === 'request' && line.method === 'CONNECT' && line.protocol === protocol && line.decision === 'deny' && line.reason === refusal;

    it.each([
      { tunnel: 'TLS', tls: true },
      { tunnel: 'plain', tls: false },
    ])('HTTP/1.1 in a $tunnel tunnel → 400 with the reason, connection closed, one audit line', async ({ tls }) => {
      const port = tls ? upstream.port : plainUpstream.port;
      const authority = `${API}:${port}`;
      const ours = (line: Record<string, unknown>) => connectLine('http/1.1')(line) && line.port === port && line.status === 400;
      let conn: RawConnection;
      if (tls) {
        conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: gatewayCa });
      } else {
        const tunnel = await connectTunnel(gateway.proxyPort, authority);
        expect(tunnel.status).toBe(200);
        conn = new RawConnection(tunnel.socket);
        tunnel.socket.resume(); // connectTunnel hands it over paused
      }
      try {
        conn.write(`CONNECT ${OTHER}:443 HTTP/1.1\r\nHost: ${OTHER}:443\r\n\r\n`);
        const response = await conn.readResponse();
        expect(response.status).toBe(400);
        expect(response.headers['x-srt-gw-reason']).toBe(refusal);
        expect(JSON.parse(response.text)).toMatchObject({ reason: refusal });
        expect(await conn.waitForClose(5_000)).toBe(true);
      } finally {
        conn.destroy();
      }
      await gateway.waitForAudit(ours);
      expect((await gateway.auditLines()).filter(ours)).toHaveLength(1);
    });

    it('an HTTP/2 CONNECT stream → 400 with the reason and one audit line; the session serves the next request', async () => {
      const authority = `${API}:${upstream.port}`;
      const tunnel = await connectTunnel(gateway.proxyPort, authority);
      expect(tunnel.status).toBe(200);
      const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: gatewayCa, alpn: ['h2'] });
      const session = http2.connect(`https://${authority}`, { createConnection: () => tlsSocket });
      session.on('error', () => undefined);
      try {
        const ask = (headers: http2.OutgoingHttpHeaders) =>
          new Promise<{ status: number; reason: unknown }>((resolve, reject) => {
            // A CONNECT stream stays open for data until the server answers it.
            const stream = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' });
            stream.on('response', (responseHeaders) => {
              resolve({ status: Number(responseHeaders[':status']), reason: responseHeaders['x-srt-gw-reason'] });
              stream.close();
            });
            stream.on('error', reject);
            stream.on('close', () => reject(new Error(`stream closed without a response (code ${stream.rstCode})`)));
            stream.resume();
          });
        expect(await ask({ ':method': 'CONNECT', ':authority': `${OTHER}:443` })).toEqual({ status: 400, reason: refusal });
        expect((await ask({ ':method': 'GET', ':path': '/after-connect', ':authority': authority, ':scheme': 'https' })).status).toBe(200);
      } finally {
        session.destroy();
      }
      await gateway.waitForAudit((line) => connectLine('h2')(line) && line.status === 400);
    });
  });

  it('after all of the above, neither upstream ever saw a /smuggle request', () => {
    expect([...upstream.received, ...plainUpstream.received].filter((r) => r.path.startsWith('/smuggle'))).toEqual([]);
  });
});
