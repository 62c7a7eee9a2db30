import { describe, expect, it } from 'vitest';
import { GatewayEvents, type ConnectEvent, type RequestEvent } from '../gateway/audit/events.js';
import type { DnsQueryEvent } from '../gateway/dns/query-events.js';
import { DenialCollector, formatDenialSummary } from './denial-summary.js';

const request = (overrides: Partial<RequestEvent>): RequestEvent => ({
  kind: 'request',
  conn: 'c1',
  protocol: 'http/1.1',
  method: 'POST',
  host: 'api.example.test',
  port: 443,
  path: '/v1/upload',
  decision: 'deny',
  rule: 'no-uploads',
  reason: 'uploads are not allowed',
  code: 'denied-by-rule',
  step: 'policy',
  status: 403,
  bytesIn: 0,
  bytesOut: 0,
  durationMs: 1,
  ...overrides,
});
const connect = (overrides: Partial<ConnectEvent>): ConnectEvent => ({
  kind: 'connect',
  conn: 'c2',
  client: 'jail:127.0.0.1:1',
  host: '203.0.113.9',
  port: 443,
  decision: 'deny',
  rule: 'default-deny',
  reason: 'no rule allows host 203.0.113.9',
  code: 'host-not-allowed',
  ...overrides,
});
const dns = (overrides: Partial<DnsQueryEvent>): DnsQueryEvent => ({
  client: 'jail',
  transport: 'tcp',
  name: 'evil.test',
  qtype: 'A',
  decision: 'denied',
  code: 'host-not-allowed',
  rcode: 'NXDOMAIN',
  tunnelSignals: [],
  ...overrides,
});

describe('DenialCollector', () => {
  it('groups repeats with a count and ignores allowed traffic', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events);
    events.emit('request', request({}));
    events.emit('request', request({ path: '/v1/upload/2' }));
    events.emit('request', request({ decision: 'allow', rule: 'read', status: 200 }));
    events.emit('connect', connect({}));
    events.emit('connect', connect({ decision: 'allow' }));
    events.emit('dns', dns({}));
    events.emit('dns', dns({ name: 'api.example.test', decision: 'synthetic' }));
    const { denials } = collector.denials();
    expect(denials).toEqual([
      expect.objectContaining({ kind: 'request', host: 'api.example.test', example: 'POST /v1/upload', rule: 'no-uploads', count: 2 }),
      expect.objectContaining({ kind: 'connection', host: '203.0.113.9', count: 1 }),
      expect.objectContaining({ kind: 'dns', host: 'evil.test', count: 1 }),
    ]);
  });

  it('collects allowed requests the upstream failed, apart from denials', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events);
    const failed = { decision: 'error' as const, rule: 'api', step: 'upstream' as const, status: 502, method: 'GET', path: '/v1/models' };
    events.emit('request', request({ ...failed, reason: 'api.example.test did not resolve (ENOTFOUND)' }));
    events.emit('request', request({ ...failed, reason: 'api.example.test did not resolve (ENOTFOUND)' }));
    events.emit('request', request({ ...failed, host: 'cert.example.test', reason: 'the certificate of cert.example.test did not verify' }));
    expect(collector.denials().denials).toEqual([
      expect.objectContaining({ kind: 'upstream', host: 'api.example.test', example: 'GET /v1/models', rule: 'api', count: 2 }),
      expect.objectContaining({ kind: 'upstream', host: 'cert.example.test', count: 1 }),
    ]);
  });

  it('counts requests that --monitor let through as would-be denials', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events);
    events.emit('request', request({ decision: 'allow', monitored: true }));
    expect(collector.denials().denials).toEqual([expect.objectContaining({ monitored: true, count: 1 })]);
  });

  it('is bounded: groups beyond the limit are counted, not kept', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events, { maxGroups: 3 });
    for (let i = 0; i < 10; i++) events.emit('dns', dns({ name: `n${i}.evil.test` }));
    expect(collector.denials()).toEqual({ denials: expect.any(Array), omitted: 7 });
    expect(collector.denials().denials).toHaveLength(3);
  });

  it('on a shared gateway keeps only its own jail\'s denials: its DNS, its connections and the requests on them', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events, { clientLabel: 'jail-1' });
    events.emit('dns', dns({ client: 'jail-1', name: 'ours.test' }));
    events.emit('dns', dns({ client: 'jail-2', name: 'theirs.test' }));
    events.emit('connect', connect({ conn: 'c10', client: 'jail-1:127.0.0.1:5', host: 'ours-ip.test' }));
    events.emit('connect', connect({ conn: 'c11', client: 'jail-2:127.0.0.1:5', host: 'theirs-ip.test' }));
    events.emit('connect', connect({ conn: 'c12', client: 'jail-1:127.0.0.1:6', decision: 'allow', rule: null }));
    events.emit('connect', connect({ conn: 'c13', client: 'jail-2:127.0.0.1:6', decision: 'allow', rule: null }));
    events.emit('request', request({ conn: 'c12', path: '/ours' }));
    events.emit('request', request({ conn: 'c13', path: '/theirs' }));
    events.emit('request', request({ conn: 'c99', path: '/explicit-proxy' }));
    expect(collector.denials().denials.map((d) => d.example ?? d.host)).toEqual(['ours.test', 'ours-ip.test', 'POST /ours']);
  });

  it('counts names --monitor resolved as would-be denials, apart from the names it refused', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events);
    events.emit('dns', dns({ name: 'unlisted.test', rcode: 'NOERROR', monitored: true }));
    events.emit('dns', dns({ name: 'unlisted.test', qtype: 'AAAA', rcode: 'NOERROR', monitored: true }));
    events.emit('dns', dns({ name: 'odd.test' }));
    expect(collector.denials().denials).toEqual([
      { kind: 'dns', host: 'unlisted.test', rule: null, reason: 'no rule allows unlisted.test', count: 2, monitored: true },
      { kind: 'dns', host: 'odd.test', rule: null, reason: 'no rule allows odd.test, so the name was not resolved', count: 1, monitored: false },
    ]);
  });

  it('stops listening when stopped', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events);
    collector.stop();
    events.emit('dns', dns({}));
    expect(collector.denials().denials).toEqual([]);
  });
});

describe('formatDenialSummary', () => {
  it('says nothing when nothing was denied', () => {
    expect(formatDenialSummary([])).toBe('');
  });

  it('lists host, what, count, rule and reason, and folds a DNS denial into the same host\'s other denial', () => {
    const text = formatDenialSummary([
      { kind: 'dns', host: 'api.example.test', rule: null, reason: 'x', count: 1, monitored: false },
      { kind: 'request', host: 'api.example.test', port: 443, example: 'POST /v1/upload', rule: 'no-uploads', reason: 'uploads are not allowed', count: 3, monitored: false },
      { kind: 'dns', host: 'evil.test', rule: null, reason: 'no rule allows evil.test, so the name was not resolved', count: 1, monitored: false },
    ]);
    expect(text).toBe(
      'srt-gw: denied during this run:\n' +
        '  api.example.test:443  POST /v1/upload (3x)  [no-uploads] uploads are not allowed\n' +
        '  evil.test  DNS lookup  [no rule] no rule allows evil.test, so the name was not resolved\n' +
        '  To allow a host, add a rule to the policy (srt-gw policy explain shows which rule decides).\n',
    );
  });

  it('lists upstream failures beside the denials, under their own heading', () => {
    const text = formatDenialSummary([
      { kind: 'upstream', host: 'api.example.test', port: 443, example: 'GET /v1/models', rule: 'api', reason: 'api.example.test refused the connection', count: 2, monitored: false },
      { kind: 'dns', host: 'evil.test', rule: null, reason: 'no rule allows evil.test, so the name was not resolved', count: 1, monitored: false },
    ]);
    expect(text).toBe(
      'srt-gw: allowed, but the upstream failed:\n' +
        '  api.example.test:443  GET /v1/models (2x)  [api] api.example.test refused the connection\n' +
        'srt-gw: denied during this run:\n' +
        '  evil.test  DNS lookup  [no rule] no rule allows evil.test, so the name was not resolved\n' +
        '  To allow a host, add a rule to the policy (srt-gw policy explain shows which rule decides).\n',
    );
    expect(formatDenialSummary([{ kind: 'upstream', host: 'h.test', port: 443, example: 'GET /', rule: 'h', reason: 'timed out', count: 1, monitored: false }])).toBe(
      'srt-gw: allowed, but the upstream failed:\n  h.test:443  GET /  [h] timed out\n',
    );
  });

  it('in monitor mode lists what was let through as "would be denied", and what was still refused apart', () => {
    const text = formatDenialSummary([
      { kind: 'dns', host: 'api.example.test', rule: null, reason: 'no rule allows api.example.test', count: 2, monitored: true },
      { kind: 'request', host: 'api.example.test', port: 443, example: 'GET /v1/models', rule: 'default-deny', reason: 'no rule allows it', count: 1, monitored: true },
      { kind: 'dns', host: 'only-looked-up.test', rule: null, reason: 'no rule allows only-looked-up.test', count: 1, monitored: true },
      { kind: 'request', host: 'h.test', port: 443, example: 'GET /', rule: null, reason: 'Host differs from the TLS server name', count: 1, monitored: false },
    ]);
    expect(text).toBe(
      'srt-gw: --monitor: these would have been denied (they were let through):\n' +
        '  api.example.test:443  GET /v1/models  would be denied  [default-deny] no rule allows it\n' +
        '  only-looked-up.test  DNS lookup  would be denied  [no rule] no rule allows only-looked-up.test\n' +
        'srt-gw: denied during this run:\n' +
        '  h.test:443  GET /  [no rule] Host differs from the TLS server name\n' +
        '  To allow a host, add a rule to the policy (srt-gw policy explain shows which rule decides).\n' +
        '  srt-gw run --monitor --write-policy FILE drafts a policy from what a run did.\n',
    );
  });

  it('says "would have been denied" in monitor mode and points at the log for what was cut', () => {
    const text = formatDenialSummary([{ kind: 'request', host: 'h.test', port: 443, example: 'GET /', rule: 'default-deny', reason: 'r', count: 1, monitored: true }], 5);
    expect(text).toContain('--monitor: these would have been denied');
    expect(text).toContain('... and 5 more (see the audit log: --log FILE)');
  });

  it('ends with the advice it is given instead of the local policy hint (a run through a remote gateway)', () => {
    const text = formatDenialSummary([{ kind: 'connection', host: 'h.test', port: 443, rule: 'default-deny', reason: 'r', count: 1, monitored: false }], 0, 'The gateway https://gw:1 decided.');
    expect(text.trimEnd().split('\n').at(-1)).toBe('  The gateway https://gw:1 decided.');
    expect(text).not.toContain('add a rule to the policy');
  });
});

describe('names under wildcard rules', () => {
  const use = (names: number, firstSeen: boolean, capped: boolean) => ({ rule: 'wild', pattern: '*.example.test', names, cap: 3, firstSeen, capped });

  it('one line per rule that hit its cap or saw tunnel-like names, instead of a line per refused name', () => {
    const events = new GatewayEvents('t');
    const collector = new DenialCollector(events);
    const long = 'a'.repeat(41);
    events.emit('dns', dns({ name: `${long}.example.test`, decision: 'synthetic', rcode: 'NOERROR', tunnelSignals: ['long-label'], wildcard: use(1, true, false) }));
    events.emit('dns', dns({ name: `${long}.example.test`, decision: 'synthetic', rcode: 'NOERROR', tunnelSignals: ['long-label'], wildcard: use(1, false, false) }));
    events.emit('dns', dns({ name: 'b.example.test', decision: 'synthetic', rcode: 'NOERROR', wildcard: use(2, true, false) }));
    events.emit('dns', dns({ name: 'c.example.test', decision: 'synthetic', rcode: 'NOERROR', wildcard: use(3, true, false) }));
    events.emit('dns', dns({ name: 'd.example.test', reason: 'rule wild has seen 4 names ...', wildcard: use(4, true, true) }));
    events.emit('dns', dns({ name: 'e.example.test', reason: 'rule wild has seen 5 names ...', wildcard: use(5, true, true) }));
    events.emit('dns', dns({ name: 'quiet.test', decision: 'synthetic', rcode: 'NOERROR', wildcard: { ...use(1, true, false), rule: 'quiet', pattern: '*.quiet.test' } }));
    const { denials } = collector.denials();
    expect(denials).toEqual([
      { kind: 'dns-names', host: '*.example.test', rule: 'wild', reason: '5 distinct names, 1 with long labels — possible DNS tunnel; capped at 3', count: 2, monitored: false },
    ]);
    expect(formatDenialSummary(denials)).toBe(
      'srt-gw: names under wildcard rules (each new name costs an upstream DNS lookup):\n' +
        '  *.example.test: 5 distinct names, 1 with long labels — possible DNS tunnel; capped at 3  [wild]\n',
    );
  });

  it('comes first, before the denials', () => {
    const text = formatDenialSummary([
      { kind: 'dns', host: 'evil.test', rule: null, reason: 'no rule allows evil.test, so the name was not resolved', count: 1, monitored: false },
      { kind: 'dns-names', host: '*.example.test', rule: 'wild', reason: '300 distinct names; capped at 300', count: 12, monitored: false },
    ]);
    expect(text.split('\n').slice(0, 4)).toEqual([
      'srt-gw: names under wildcard rules (each new name costs an upstream DNS lookup):',
      '  *.example.test: 300 distinct names; capped at 300  [wild]',
      'srt-gw: denied during this run:',
      '  evil.test  DNS lookup  [no rule] no rule allows evil.test, so the name was not resolved',
    ]);
  });
});
