// UpstreamClient against a real local upstream: kept-alive connections are reused per origin, and
// when maxOrigins is reached the least recently used origin's pool is the one closed; the response
// head reaches the sink as the client should see it; a response ends at once when alone, at the
// end of the loop turn beside others of the same gateway, and at once whatever another gateway in
// the process has in flight; a sink that is full pauses the upstream.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settledCount } from '../../test/support/settled-count.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { ResponseEnds } from './response-ends.js';
import { UpstreamClient, type LookupFunction, type ResponseSink } from './upstream-client.js';

let upstream: Upstream;
let client: UpstreamClient;

/** Every test name is this one loopback upstream: only the origin (the pool) differs. */
const lookup: LookupFunction = (_hostname, options, callback) => {
  if ((options as { all?: boolean }).all) (callback as (error: null, addresses: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else (callback as (error: null, address: string, family: number) => void)(null, '127.0.0.1', 4);
};

/** Collects a response the way the gateway's client response would take it. */
interface CollectingSink extends ResponseSink {
  status: number;
  headers: Record<string, string | string[]>;
  bytes: number;
  /** What write() answers: false = "my buffer is full", as a client that stops reading makes it. */
  accepting: boolean;
  /** Emits 'drain' to whoever waits for it. */
  drain(): void;
}

function collectingSink(): CollectingSink {
  let headersSent = false;
  let finished = false;
  const drainListeners: (() => void)[] = [];
  const sink: CollectingSink = {
    status: 0,
    headers: {},
    bytes: 0,
    accepting: true,
    get headersSent() {
      return headersSent;
    },
    get writableFinished() {
      return finished;
    },
    writeHead(status, headers) {
      sink.status = status;
      sink.headers = headers;
      headersSent = true;
    },
    write(chunk) {
      sink.bytes += chunk.length;
      return sink.accepting;
    },
    end() {
      finished = true;
    },
    destroy() {
      finished = true;
    },
    once(event, listener) {
      if (event === 'drain') drainListeners.push(listener);
      return sink;
    },
    drain() {
      for (const listener of drainListeners.splice(0)) listener();
    },
  };
  return sink;
}

async function get(host: string): Promise<number> {
  const sink = collectingSink();
  const result = await client.forward({ scheme: 'http', host, port: upstream.port }, { method: 'GET', path: '/small', headers: ['host', `${host}:${upstream.port}`], body: null }, sink);
  expect(result.ok).toBe(true);
  return sink.status;
}

beforeAll(async () => {
  upstream = await startUpstream({ plain: true });
  client = new UpstreamClient({ trustedCa: [], lookup, maxOrigins: 2 });
});

afterAll(async () => {
  await client.close();
  await upstream.close();
});

describe('UpstreamClient pools', () => {
  it('reuses a kept-alive connection per origin, and evicts the least recently used origin', async () => {
    expect(await get('a.test')).toBe(200);
    expect(await get('b.test')).toBe(200);
    expect(await get('a.test')).toBe(200); // a.test is now the most recently used
    expect(upstream.connections).toBe(2);
    // A third origin with room for two: b.test (used least recently) goes, a.test stays.
    expect(await get('c.test')).toBe(200);
    expect(await get('a.test')).toBe(200);
    expect(upstream.connections).toBe(3);
    // b.test's pool was closed: it needs a new connection.
    expect(await get('b.test')).toBe(200);
    expect(upstream.connections).toBe(4);
    expect(upstream.received.map((request) => request.authority)).toEqual(
      ['a.test', 'b.test', 'a.test', 'c.test', 'a.test', 'b.test'].map((host) => `${host}:${upstream.port}`),
    );
  });
});

describe('UpstreamClient responses', () => {
  it('hands the sink the head as received, less the hop-by-hop headers', async () => {
    const head =
      'HTTP/1.1 201 Created\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nX-Mixed-Case: V\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nSet-Cookie: b=2\r\n\r\nok';
    const server = net.createServer((socket) => socket.once('data', () => socket.write(head)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const own = new UpstreamClient({ trustedCa: [], lookup });
    try {
      const sink = collectingSink();
      const result = await own.forward({ scheme: 'http', host: 'raw.test', port }, { method: 'GET', path: '/', headers: ['host', `raw.test:${port}`], body: null }, sink);
      expect(result).toMatchObject({ ok: true, status: 201, bytesOut: 2 });
      expect(sink.headers).toEqual({ 'content-length': '2', 'set-cookie': ['a=1', 'b=2'], 'x-mixed-case': 'V' });
    } finally {
      await own.close();
      server.close();
    }
  });

  it('a response that completes alone is ended at once; one that completes beside others waits for the end of the loop turn', async () => {
    const target = { scheme: 'http', host: 'a.test', port: upstream.port } as const;
    const request = (path: string) => ({ method: 'GET', path, headers: ['host', `a.test:${upstream.port}`], body: null });
    const alone = collectingSink();
    expect(await client.forward(target, request('/small'), alone)).toMatchObject({ ok: true });
    expect(alone.writableFinished).toBe(true); // ended before forward() resolved

    // An upstream that answers when the test says so: that exchange is in flight below for sure.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let asked!: () => void;
    const askedHeld = new Promise<void>((resolve) => (asked = resolve));
    const held = net.createServer((socket) =>
      socket.once('data', () => {
        asked();
        void released.then(() => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
      }),
    );
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve));
    const heldPort = (held.address() as net.AddressInfo).port;
    try {
      const slowSink = collectingSink();
      const slow = client.forward({ scheme: 'http', host: 'a.test', port: heldPort }, { method: 'GET', path: '/held', headers: ['host', `a.test:${heldPort}`], body: null }, slowSink);
      await askedHeld;
      const beside = collectingSink();
      expect(await client.forward(target, request('/small'), beside)).toMatchObject({ ok: true });
      expect(beside.writableFinished).toBe(false); // queued with the turn's other ends
      await new Promise((resolve) => setImmediate(resolve));
      expect(beside.writableFinished).toBe(true);
      release();
      expect(await slow).toMatchObject({ ok: true });
      expect(slowSink.writableFinished).toBe(true);
    } finally {
      release();
      held.close();
    }
  });

  it('two gateways in one process count their exchanges apart: one\'s held exchange does not delay the other\'s lone response', async () => {
    // What startGateway does for each gateway: its own ResponseEnds, handed to its upstream client.
    const endsA = new ResponseEnds();
    const endsB = new ResponseEnds();
    const clientA = new UpstreamClient({ trustedCa: [], lookup, responseEnds: endsA });
    const clientB = new UpstreamClient({ trustedCa: [], lookup, responseEnds: endsB });
    const held = await heldUpstream();
    try {
      const slowSink = collectingSink();
      const slow = clientA.forward({ scheme: 'http', host: 'a.test', port: held.port }, { method: 'GET', path: '/held', headers: ['host', `a.test:${held.port}`], body: null }, slowSink);
      await held.asked;
      expect(endsA.inFlight).toBe(1);
      expect(endsB.inFlight).toBe(0);
      const alone = collectingSink();
      const result = await clientB.forward({ scheme: 'http', host: 'b.test', port: upstream.port }, { method: 'GET', path: '/small', headers: ['host', `b.test:${upstream.port}`], body: null }, alone);
      expect(result).toMatchObject({ ok: true });
      // Alone in its own gateway: ended before forward() resolved, not queued behind gateway A.
      expect(alone.writableFinished).toBe(true);
      expect(endsB.queued).toBe(0);
      expect(endsA.inFlight).toBe(1);
      held.release();
      expect(await slow).toMatchObject({ ok: true });
      expect(endsA.inFlight).toBe(0);
    } finally {
      held.release();
      held.server.close();
      await Promise.all([clientA.close(), clientB.close()]);
    }
  });

  // The 30 s deadline of settledCount, not the unit tests' 5 s, is the one that catches a hang.
  it('stops reading from the upstream while the sink is full, and reads on after its drain', { timeout: 60_000 }, async () => {
    const total = 32 * 1024 * 1024;
    const sink = collectingSink();
    sink.accepting = false;
    const forwarded = client.forward({ scheme: 'http', host: 'a.test', port: upstream.port }, { method: 'GET', path: `/bytes?n=${total}`, headers: ['host', `a.test:${upstream.port}`], body: null }, sink);
    // A few socket reads at most, then nothing; without the pause all 32 MiB would come in.
    expect(await settledCount(() => sink.bytes)).toBeLessThan(1024 * 1024);
    sink.accepting = true;
    sink.drain();
    const result = await forwarded;
    expect(result).toMatchObject({ ok: true, status: 200, bytesOut: total });
    expect(sink.bytes).toBe(total);
  });
});

/** An upstream that answers its first request only when the test says so. */
async function heldUpstream(): Promise<{ port: number; asked: Promise<void>; release: () => void; server: net.Server }> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let markAsked!: () => void;
  const asked = new Promise<void>((resolve) => (markAsked = resolve));
  const server = net.createServer((socket) =>
    socket.once('data', () => {
      markAsked();
      void released.then(() => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok'));
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as net.AddressInfo).port, asked, release, server };
}
