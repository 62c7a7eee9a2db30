// The time limits of connections inside tunnels (README "Bounds": 30 s keep-alive idle, 120 s
// socket idle), here 1 s and 2.5 s. Keep-alive: an HTTP/1.1 connection that waits longer for its
// next request is closed; one that keeps asking, one whose response is slow, and one upgraded to
// a WebSocket are not. Idle: a connection where no byte moves for the limit is closed, an HTTP/1.1
// request waiting on its upstream or an HTTP/2 session alike; not an upgraded one (as before:
// node stops timing a socket it hands over for an upgrade). The gateway enforces both with one
// sweep over its connections instead of node's timers (gateway/connection-sweeper.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import http2, { type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy, startGateway, type Gateway } from '../../index.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { connectTunnel, openTlsTunnel, tlsOverTunnel, type RawConnection } from '../support/raw-tunnel.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { encodeFrame, newWebsocketKey, OPCODE } from '../support/websocket-frames.js';

const skip = capabilityGate(missingCommand('openssl'));
const API = 'api.example.test';
const KEEP_ALIVE_MS = 1000;
const IDLE_MS = 2500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(skip !== null)('connection limits inside a tunnel (keep-alive 1 s, idle 2.5 s here)', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: Upstream;
  let gateway: Gateway;
  let authority: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-keep-alive-'));
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    authority = `${API}:${upstream.port}`;
    gateway = await startGateway({
      policy: parsePolicy(`version: 1\nrules:\n  - id: api\n    host: ${API}\n`),
      caDir: join(dir, 'ca'),
      upstreamCaFiles: [pki.ca.certPath],
      resolve: { [API]: '127.0.0.1' },
      auditLog: false,
      limits: { keepAliveTimeoutMs: KEEP_ALIVE_MS, idleTimeoutMs: IDLE_MS },
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const open = () => openTlsTunnel(gateway.address.port, authority, { ca: gateway.ca.certPem });
  const get = (conn: RawConnection, path: string) => conn.write(`GET ${path} HTTP/1.1\r\nHost: ${API}\r\n\r\n`);

  it('an idle connection is closed after the limit, not before', async () => {
    const conn = await open();
    get(conn, '/first');
    expect((await conn.readResponse()).status).toBe(200);
    const idleFrom = Date.now();
    expect(await conn.waitForClose(KEEP_ALIVE_MS - 200)).toBe(false);
    expect(await conn.waitForClose(3000)).toBe(true);
    const closedAfter = Date.now() - idleFrom;
    // the limit plus at most one sweep (100 ms at this limit) and scheduling slack
    expect(closedAfter).toBeGreaterThanOrEqual(KEEP_ALIVE_MS - 50);
    expect(closedAfter).toBeLessThan(KEEP_ALIVE_MS + 1000);
  });

  it('a connection that asks again before the limit stays open for longer than the limit', async () => {
    const conn = await open();
    for (let i = 0; i < 8; i++) {
      get(conn, `/again/${i}`);
      expect((await conn.readResponse()).status).toBe(200);
      await sleep(KEEP_ALIVE_MS / 3);
    }
    expect(conn.closed).toBe(false);
    conn.destroy();
  });

  it('a response that takes longer than the limit arrives, and the limit counts from its end', async () => {
    const conn = await open();
    get(conn, `/delay?ms=${KEEP_ALIVE_MS * 2}`);
    const response = await conn.readResponse(KEEP_ALIVE_MS * 5);
    expect(response.status).toBe(200);
    expect(JSON.parse(response.text).path).toBe(`/delay?ms=${KEEP_ALIVE_MS * 2}`);
    expect(await conn.waitForClose(KEEP_ALIVE_MS - 200)).toBe(false);
    get(conn, '/after-the-slow-one');
    expect((await conn.readResponse()).status).toBe(200);
    conn.destroy();
  });

  it('a connection upgraded to a WebSocket is closed by neither limit', async () => {
    const conn = await open();
    get(conn, '/before-the-upgrade'); // the connection is known to the sweeper before it upgrades
    expect((await conn.readResponse()).status).toBe(200);
    conn.write(
      `GET /ws HTTP/1.1\r\nHost: ${API}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${newWebsocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect((await conn.readResponse()).status).toBe(101);
    expect(await conn.waitForClose(IDLE_MS + 1000)).toBe(false);
    conn.write(encodeFrame(OPCODE.text, Buffer.from('still here'), true));
    expect((await conn.readFrame()).payload.toString()).toBe('still here');
    conn.destroy();
  });
  it('a request whose upstream sends nothing for the idle limit loses its connection', async () => {
    const conn = await open();
    const asked = Date.now();
    get(conn, `/delay?ms=${IDLE_MS * 3}`);
    expect(await conn.waitForClose(IDLE_MS * 2)).toBe(true);
    const closedAfter = Date.now() - asked;
    expect(closedAfter).toBeGreaterThanOrEqual(IDLE_MS - 50);
    expect(closedAfter).toBeLessThan(IDLE_MS + 1000);
    expect(conn.pending.length).toBe(0); // no response came before the close
  });

  it('an HTTP/2 session is not under the keep-alive limit, and is closed after the idle limit', async () => {
    const tunnel = await connectTunnel(gateway.address.port, authority);
    expect(tunnel.status).toBe(200);
    const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: gateway.ca.certPem, alpn: ['h2'] });
    expect(tlsSocket.alpnProtocol).toBe('h2');
    const session: ClientHttp2Session = http2.connect(`https://${authority}`, { createConnection: () => tlsSocket });
    session.on('error', () => undefined);
    const closed = new Promise<number>((resolve) => session.once('close', () => resolve(Date.now())));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': '/h2-idle' }, { endStream: true });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
      expect(status).toBe(200);
      const idleFrom = Date.now();
      const closedAt = await Promise.race([closed, sleep(IDLE_MS + 1500).then(() => null)]);
      expect(closedAt).not.toBeNull();
      expect(closedAt! - idleFrom).toBeGreaterThanOrEqual(IDLE_MS - 300);
    } finally {
      session.destroy();
    }
  });
});
