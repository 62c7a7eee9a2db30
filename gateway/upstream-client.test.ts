// UpstreamClient against a real local upstream: kept-alive connections are reused per origin, and
// when maxOrigins is reached the least recently used origin's pool is the one closed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type Upstream } from '../test/support/upstream.js';
import { UpstreamClient, type LookupFunction, type ResponseSink } from './upstream-client.js';

let upstream: Upstream;
let client: UpstreamClient;

/** Every test name is this one loopback upstream: only the origin (the pool) differs. */
const lookup: LookupFunction = (_hostname, options, callback) => {
  if ((options as { all?: boolean }).all) (callback as (error: null, addresses: { address: string; family: number }[]) => void)(null, [{ address: '127.0.0.1', family: 4 }]);
  else (callback as (error: null, address: string, family: number) => void)(null, '127.0.0.1', 4);
};

/** Collects a response the way the gateway's client response would take it. */
function collectingSink(): ResponseSink & { status: number } {
  let headersSent = false;
  let finished = false;
  const sink = {
    status: 0,
    get headersSent() {
      return headersSent;
    },
    get writableFinished() {
      return finished;
    },
    writeHead(status: number) {
      sink.status = status;
      headersSent = true;
    },
    write() {
      return true;
    },
    end() {
      finished = true;
    },
    destroy() {
      finished = true;
    },
    once() {
      return sink;
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
