// The time limits of connections inside tunnels (README "Bounds": 30 s keep-alive idle, 120 s
// socket idle), here 1 s and 2.5 s on a clock the test moves (real time never closes anything
// here, so a busy machine changes nothing). Keep-alive: an HTTP/1.1 connection that waits longer for its
// next request is closed; one that keeps asking, one whose response is slow, and one upgraded to
// a WebSocket are not. Idle: a connection where no byte moves for the limit is closed, an HTTP/1.1
// request waiting on its upstream or an HTTP/2 session alike; not an upgraded one (as before:
// node stops timing a socket it hands over for an upgrade). The gateway enforces both with one
// sweep over its connections instead of node's timers (gateway/http/connection-sweeper.ts); a sweep
// closes a connection synchronously, so a request answered after the clock moved proves the
// connection was still open at that time.
import { mkdtempSync, rmSync } from 'node:fs';
import http2, { type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy, startGateway, type Gateway } from '../../index.js';
import type { SweepClock } from '../../gateway/http/connection-sweeper.js';
import { sweepIntervalFor } from '../../gateway/sweep-timing.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { connectTunnel, openTlsTunnel, tlsOverTunnel, type RawConnection } from '../support/raw-tunnel.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { encodeFrame, newWebsocketKey, OPCODE } from '../support/websocket-frames.js';

const skip = capabilityGate(missingCommand('openssl'));
const API = 'api.example.test';
const KEEP_ALIVE_MS = 1000;
const IDLE_MS = 2500;
const SWEEP_MS = sweepIntervalFor(KEEP_ALIVE_MS, IDLE_MS);
/** Real time an answer the upstream holds back takes: the clock moves while it is on its way. */
const HELD_MS = 500;
/** Only a hang takes this long (real time). */
const CLOSE_DEADLINE_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The gateway's sweep clock, moved by the test: time stands still until advance(), which runs the
 * sweeps due on the way, as the real timer would.
 */
class ManualSweepClock implements SweepClock {
  #now = 0;
  readonly #timers = new Set<{ intervalMs: number; sweep: () => void; next: number }>();

  now = (): number => this.#now;

  every = (intervalMs: number, sweep: () => void): (() => void) => {
    const timer = { intervalMs, sweep, next: this.#now + intervalMs };
    this.#timers.add(timer);
    return () => this.#timers.delete(timer);
  };

  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let due: { intervalMs: number; sweep: () => void; next: number } | undefined;
      for (const timer of this.#timers) if (timer.next <= end && (due === undefined || timer.next < due.next)) due = timer;
      if (due === undefined) break;
      this.#now = due.next;
      due.next += due.intervalMs;
      due.sweep();
    }
    this.#now = end;
  }
}

describe.skipIf(skip !== null)('connection limits inside a tunnel (keep-alive 1 s, idle 2.5 s here)', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: Upstream;
  let gateway: Gateway;
  let authority: string;
  const clock = new ManualSweepClock();

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
      limits: { keepAliveTimeoutMs: KEEP_ALIVE_MS, idleTimeoutMs: IDLE_MS, sweepClock: clock },
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
  /** Waits until the upstream has the request: the gateway is waiting for its answer from then on. */
  const upstreamHas = async (path: string): Promise<void> => {
    const deadline = Date.now() + CLOSE_DEADLINE_MS;
    while (!upstream.received.some((request) => request.path === path)) {
      if (Date.now() > deadline) throw new Error(`the upstream never received ${path}`);
      await sleep(10);
    }
  };

  it('an idle connection is closed after the limit, not before', async () => {
    const conn = await open();
    get(conn, '/first');
    expect((await conn.readResponse()).status).toBe(200);
    clock.advance(KEEP_ALIVE_MS - 1);
    get(conn, '/still-open');
    expect((await conn.readResponse()).status).toBe(200);
    clock.advance(KEEP_ALIVE_MS + 2 * SWEEP_MS);
    expect(await conn.waitForClose(CLOSE_DEADLINE_MS)).toBe(true);
  });

  it('a connection that asks again before the limit stays open for longer than the limit', async () => {
    const conn = await open();
    for (let i = 0; i < 8; i++) {
      get(conn, `/again/${i}`);
      expect((await conn.readResponse()).status).toBe(200);
      clock.advance(KEEP_ALIVE_MS / 2);
    }
    // 4 limits' worth of time since the first request
    expect(conn.closed).toBe(false);
    conn.destroy();
  });

  it('a response that takes longer than the limit arrives, and the limit counts from its end', async () => {
    const conn = await open();
    const path = `/delay?ms=${HELD_MS}`;
    get(conn, path);
    await upstreamHas(path);
    clock.advance(KEEP_ALIVE_MS * 2);
    const response = await conn.readResponse(CLOSE_DEADLINE_MS);
    expect(response.status).toBe(200);
    expect(JSON.parse(response.text).path).toBe(path);
    clock.advance(KEEP_ALIVE_MS - 1);
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
    clock.advance(IDLE_MS * 2);
    conn.write(encodeFrame(OPCODE.text, Buffer.from('still here'), true));
    expect((await conn.readFrame()).payload.toString()).toBe('still here');
    conn.destroy();
  });

  it('a request whose upstream sends nothing for the idle limit loses its connection, not before', async () => {
    const conn = await open();
    // Nothing moves for just under the limit: the answer still comes.
    const held = `/delay?ms=${HELD_MS}&under-the-limit`;
    get(conn, held);
    await upstreamHas(held);
    clock.advance(IDLE_MS - 1);
    expect((await conn.readResponse(CLOSE_DEADLINE_MS)).status).toBe(200);
    // Nothing moves for the limit: the connection goes, and no answer comes.
    get(conn, '/slow');
    await upstreamHas('/slow');
    clock.advance(IDLE_MS + 2 * SWEEP_MS);
    expect(await conn.waitForClose(CLOSE_DEADLINE_MS)).toBe(true);
    expect(conn.pending.length).toBe(0);
  });

  it('an HTTP/2 session is not under the keep-alive limit, and is closed after the idle limit', async () => {
    const tunnel = await connectTunnel(gateway.address.port, authority);
    expect(tunnel.status).toBe(200);
    const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: API, ca: gateway.ca.certPem, alpn: ['h2'] });
    expect(tlsSocket.alpnProtocol).toBe('h2');
    const session: ClientHttp2Session = http2.connect(`https://${authority}`, { createConnection: () => tlsSocket });
    session.on('error', () => undefined);
    const closed = new Promise<boolean>((resolve) => session.once('close', () => resolve(true)));
    const request = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'GET', ':path': path }, { endStream: true });
        stream.on('response', (headers) => resolve(Number(headers[':status'])));
        stream.on('error', reject);
        stream.on('close', () => reject(new Error(`${path}: the stream closed without a response`)));
        stream.resume();
      });
    try {
      expect(await request('/h2-idle')).toBe(200);
      clock.advance(IDLE_MS - 1); // more than twice the keep-alive limit
      expect(await request('/h2-still-open')).toBe(200);
      clock.advance(IDLE_MS + 2 * SWEEP_MS);
      expect(await Promise.race([closed, sleep(CLOSE_DEADLINE_MS).then(() => false)])).toBe(true);
    } finally {
      session.destroy();
    }
  });
});
