import { describe, expect, it, vi } from 'vitest';
import { dnsReasonCode, type DnsQueryEvent } from '../dns/query-events.js';
import { DecisionHub, type Decision } from './decisions.js';
import { GatewayEvents, type ConnectEvent, type RequestEvent } from './events.js';

const request = (path: string): RequestEvent => ({
  kind: 'request',
  conn: 'c1',
  protocol: 'http/1.1',
  method: 'GET',
  host: 'api.example.test',
  port: 443,
  path,
  decision: 'allow',
  rule: 'api-read',
  reason: 'allowed by rule api-read',
  code: 'allowed-by-rule',
  step: 'policy',
  status: 200,
  bytesIn: 0,
  bytesOut: 10,
  durationMs: 1,
});
const connect: ConnectEvent = {
  kind: 'connect',
  conn: 'c2',
  client: '127.0.0.1:5000',
  host: 'evil.test',
  port: 443,
  decision: 'deny',
  rule: 'default-deny',
  reason: 'no rule allows host evil.test on port 443',
  code: 'host-not-allowed',
};
const dns = (name: string, decision: DnsQueryEvent['decision']): DnsQueryEvent => ({
  client: 'jail',
  transport: 'tcp',
  name,
  qtype: 'A',
  decision,
  code: dnsReasonCode(decision),
  rcode: decision === 'synthetic' ? 'NOERROR' : 'NXDOMAIN',
  tunnelSignals: [],
});

async function take(iterator: AsyncIterator<Decision>, n: number): Promise<Decision[]> {
  const out: Decision[] = [];
  for (let i = 0; i < n; i++) {
    const next = await iterator.next();
    if (next.done) break;
    out.push(next.value);
  }
  return out;
}

describe('DecisionHub', () => {
  it('turns request, connect and dns events into typed records, in order', async () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const stream = hub.stream();
    events.emit('request', request('/v1/a'));
    events.emit('connect', connect);
    events.emit('dns', dns('evil.test', 'denied'));
    events.emit('dns', dns('api.example.test', 'synthetic'));
    events.emit('tls', { kind: 'tls', conn: 'c3', host: 'x', outcome: 'failed', reason: 'handshake failed', code: 'tls-handshake-failed' }); // not a decision
    const got = await take(stream, 4);
    expect(got).toEqual([
      { ...request('/v1/a'), time: expect.any(Number) },
      { ...connect, time: expect.any(Number) },
      expect.objectContaining({ kind: 'dns', host: 'evil.test', decision: 'deny', outcome: 'denied', rule: null, reason: 'no rule allows evil.test, so the name was not resolved', code: 'host-not-allowed' }),
      expect.objectContaining({ kind: 'dns', host: 'api.example.test', decision: 'allow', outcome: 'synthetic' }),
    ]);
    expect(Object.isFrozen(got[0])).toBe(true);
  });

  it('gives every iterator every decision', async () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const a = hub.stream();
    const b = hub.stream();
    for (const path of ['/1', '/2', '/3']) events.emit('request', request(path));
    const paths = (list: Decision[]) => list.map((d) => (d.kind === 'request' ? d.path : '?'));
    expect(paths(await take(a, 3))).toEqual(['/1', '/2', '/3']);
    expect(paths(await take(b, 3))).toEqual(['/1', '/2', '/3']);
  });

  it('keeps at most bufferSize decisions for a consumer that does not read, dropping the oldest', async () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const stream = hub.stream({ bufferSize: 5 });
    for (let i = 0; i < 1000; i++) events.emit('request', request(`/${i}`));
    expect(stream.buffered).toBe(5);
    expect(stream.dropped).toBe(995);
    const got = await take(stream, 5);
    expect(got.map((d) => (d.kind === 'request' ? d.path : '?'))).toEqual(['/995', '/996', '/997', '/998', '/999']);
  });

  it('a waiting consumer is woken by the next decision', async () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const stream = hub.stream();
    const next = stream.next();
    events.emit('connect', connect);
    expect(await next).toEqual({ done: false, value: expect.objectContaining({ kind: 'connect' }) });
  });

  it('ends every iterator when the gateway closes, after what they hold', async () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const holding = hub.stream();
    const waiting = hub.stream();
    events.emit('request', request('/last'));
    await waiting.next();
    const pending = waiting.next();
    hub.end();
    expect(await pending).toEqual({ done: true, value: undefined });
    expect(await take(holding, 10)).toHaveLength(1);
    expect(await holding.next()).toEqual({ done: true, value: undefined });
    expect(await hub.stream().next()).toEqual({ done: true, value: undefined });
  });

  it('break in for await detaches the iterator', async () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const stream = hub.stream();
    events.emit('request', request('/1'));
    for await (const decision of stream) {
      expect(decision.kind).toBe('request');
      break;
    }
    events.emit('request', request('/2'));
    expect(stream.buffered).toBe(0);
    expect(await stream.next()).toEqual({ done: true, value: undefined });
  });

  it('on(kind) calls typed listeners for that kind only; unsubscribes; a throwing listener is a warning', () => {
    const events = new GatewayEvents('t');
    const hub = new DecisionHub(events);
    const all: string[] = [];
    const dnsHosts: string[] = [];
    hub.on('decision', (d) => all.push(d.kind));
    const stop = hub.on('dns', (d) => dnsHosts.push(d.host));
    hub.on('request', () => {
      throw new Error('listener bug');
    });
    const warning = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      events.emit('dns', dns('a.test', 'denied'));
      events.emit('request', request('/x'));
      stop();
      events.emit('dns', dns('b.test', 'denied'));
      expect(warning).toHaveBeenCalledWith(expect.stringContaining('listener bug'));
    } finally {
      warning.mockRestore();
    }
    expect(all).toEqual(['dns', 'request', 'dns']);
    expect(dnsHosts).toEqual(['a.test']);
  });

  it('rejects a buffer size that is not a positive integer', () => {
    const hub = new DecisionHub(new GatewayEvents('t'));
    expect(() => hub.stream({ bufferSize: 0 })).toThrow(/bufferSize/);
  });
});
