import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isSrtGwError } from '../../errors.js';
import { parsePolicy } from '../../policies/loader.js';
import type { DnsQueryEvent } from '../dns/query-events.js';
import { GatewayEvents, type RequestEvent } from './events.js';
import { checkDraftPolicyPath, ObservedTraffic } from './observed-traffic.js';

const request = (overrides: Partial<RequestEvent>): RequestEvent => ({
  kind: 'request',
  conn: 'c1',
  protocol: 'h2',
  method: 'GET',
  host: 'api.example.test',
  port: 443,
  path: '/v1/models',
  decision: 'allow',
  rule: 'api',
  reason: 'allowed',
  code: 'allowed-by-rule',
  step: 'policy',
  status: 200,
  bytesIn: 0,
  bytesOut: 0,
  durationMs: 1,
  ...overrides,
});
const dns = (overrides: Partial<DnsQueryEvent>): DnsQueryEvent => ({ client: 'jail', transport: 'tcp', name: 'x.test', qtype: 'A', decision: 'denied', code: 'host-not-allowed', rcode: 'NXDOMAIN', tunnelSignals: [], ...overrides });

const dir = mkdtempSync(join(tmpdir(), 'srt-gw-observed-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ObservedTraffic', () => {
  it('keeps one entry per host, port, method, outcome and path prefix, with counts', () => {
    const events = new GatewayEvents('t');
    const observed = new ObservedTraffic(events);
    events.emit('request', request({ path: '/v1/models/a' }));
    events.emit('request', request({ path: '/v1/models/b' }));
    events.emit('request', request({ method: 'POST', path: '/v1/messages', decision: 'deny', monitored: true, step: 'policy', rule: 'default-deny' }));
    events.emit('request', request({ path: '/v1/x', decision: 'deny', status: 403, rule: 'default-deny' }));
    // Refused in every mode: nothing a rule could change.
    events.emit('request', request({ path: '/bad', decision: 'deny', step: 'authority', status: 421, rule: null }));
    events.emit('request', request({ host: '-', path: '/bad', decision: 'deny', step: 'framing', status: 400, rule: null }));
    expect(observed.requests()).toEqual([
      { host: 'api.example.test', port: 443, method: 'GET', path: '/v1/models/a', outcome: 'allowed', count: 2 },
      { host: 'api.example.test', port: 443, method: 'POST', path: '/v1/messages', outcome: 'would-be-denied', count: 1 },
      { host: 'api.example.test', port: 443, method: 'GET', path: '/v1/x', outcome: 'denied', count: 1 },
    ]);
    observed.stop();
    events.emit('request', request({}));
    expect(observed.requests()).toHaveLength(3);
  });

  it('with a client label, only that jail\'s connections and DNS queries count', () => {
    const events = new GatewayEvents('t');
    const observed = new ObservedTraffic(events, { clientLabel: 'jail-1' });
    events.emit('connect', { kind: 'connect', conn: 'mine', client: 'jail-1:198.18.0.1', host: 'api.example.test', port: 443, decision: 'allow', rule: null, reason: 'r', code: 'checked-per-request' });
    events.emit('connect', { kind: 'connect', conn: 'theirs', client: 'jail-2:198.18.0.1', host: 'api.example.test', port: 443, decision: 'allow', rule: null, reason: 'r', code: 'checked-per-request' });
    events.emit('request', request({ conn: 'mine', path: '/mine' }));
    events.emit('request', request({ conn: 'theirs', path: '/theirs' }));
    events.emit('dns', dns({ client: 'jail-1', name: 'mine.test' }));
    events.emit('dns', dns({ client: 'jail-2', name: 'theirs.test' }));
    expect(observed.requests().map((r) => r.path)).toEqual(['/mine']);
    expect(observed.draft()).toContain('#   mine.test\n');
    expect(observed.draft()).not.toContain('theirs');
  });

  it('bounds its entries and says how many requests were not drafted', () => {
    const events = new GatewayEvents('t');
    const observed = new ObservedTraffic(events, { maxEntries: 2 });
    for (const host of ['a.test', 'b.test', 'c.test', 'd.test']) events.emit('request', request({ host }));
    expect(observed.requests()).toHaveLength(2);
    expect(observed.draft()).toMatch(/^# 2 more requests, to hosts or paths not among the first 2, were not drafted/);
  });

  it('writes the draft atomically over an existing file, leaving no temporary file; the result loads', () => {
    const events = new GatewayEvents('t');
    const observed = new ObservedTraffic(events);
    events.emit('request', request({}));
    const file = join(dir, 'draft.yaml');
    writeFileSync(file, 'old content\n');
    observed.writeDraft(file, 'srt-gw run -- curl');
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('what srt-gw run -- curl did');
    expect(parsePolicy(text, file).rules).toEqual([expect.objectContaining({ id: 'api.example.test', host: 'api.example.test', action: 'allow' })]);
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  it('a file it cannot write is an SRTGW_CONFIG_INVALID error naming the flag; a missing directory is caught up front', () => {
    const observed = new ObservedTraffic(new GatewayEvents('t'));
    const missing = join(dir, 'no-such-dir', 'draft.yaml');
    expect(() => observed.writeDraft(missing)).toThrow(/cannot write the draft policy .*--write-policy/);
    expect(() => checkDraftPolicyPath(missing)).toThrow(/--write-policy .*does not exist/);
    expect(() => checkDraftPolicyPath(dir)).toThrow(/is a directory/);
    expect(() => checkDraftPolicyPath(join(dir, 'fine.yaml'))).not.toThrow();
    try {
      checkDraftPolicyPath(missing);
    } catch (error) {
      expect(isSrtGwError(error, 'SRTGW_CONFIG_INVALID')).toBe(true);
    }
  });
});
