// The metrics catalogue (docs/metrics.md) and the registry the gateway exposes name exactly the
// same srtgw_ metrics, so the documentation, dashboard and alerts cannot drift from the code.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { compilePolicy } from '../../policies/match.js';
import { parsePolicy } from '../../policies/loader.js';
import { DNS_METRIC_NAMES, registerDnsMetrics } from '../dns/metrics.js';
import { EgressBudgets } from '../credentials/egress-budget.js';
import { GatewayEvents } from './events.js';
import { createMetricsServer, METRIC_NAMES, startGatewayMetrics, type GatewayMetrics } from './metrics.js';
import { registerStateMetrics } from '../state/state-metrics.js';

const CATALOGUE = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');
/** The metric names of the catalogue's table rows (`| \`srtgw_…\` | type | …`). */
const DOCUMENTED = new Set([...CATALOGUE.matchAll(/^\| `(srtgw_[a-z0-9_]+)` \|/gm)].map((m) => m[1] ?? ''));

const POLICY = compilePolicy(parsePolicy('version: 1\nrules:\n  - id: api\n    host: api.example.test\n'));

describe('metrics catalogue', () => {
  let metrics: GatewayMetrics | null = null;
  afterEach(() => {
    metrics?.close();
    metrics = null;
  });

  it.each([...Object.values(METRIC_NAMES), ...Object.values(DNS_METRIC_NAMES)])('%s is documented in docs/metrics.md', (name) => {
    expect(DOCUMENTED.has(name)).toBe(true);
  });

  it('the registry of a gateway with DNS exposes exactly the documented srtgw_ metrics', async () => {
    const events = new GatewayEvents('t');
    metrics = startGatewayMetrics(events, POLICY, new EgressBudgets());
    registerDnsMetrics(metrics.registry, (listener) => events.on('dns', listener));
    // serve --state adds the shared state's health.
    registerStateMetrics(metrics.registry, { keyPrefix: 'srtgw', up: true, errors: 0, command: async () => null, onStatusChange: () => () => undefined, close: async () => undefined });
    const exposed = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name).filter((name) => name.startsWith('srtgw_'));
    expect(exposed.sort()).toEqual([...DOCUMENTED].sort());
  });

  it('no metric is reserved for a feature to come: the catalogue promises none', () => {
    expect(CATALOGUE).not.toMatch(/Reserved: 0 until/);
  });

  it('credential injections and budget rejections are counted by rule, starting at 0 for the rules that have them', async () => {
    const policy = compilePolicy(
      parsePolicy(
        [
          'version: 1',
          'rules:',
          '  - id: keyed',
          '    host: api.example.test',
          '    credentials: { header: x-api-key, inject: { env: K } }',
          '  - id: limited',
          '    host: up.example.test',
          '    budget: { requestBytesPerRun: 10 }',
          '  - id: plain',
          '    host: plain.example.test',
        ].join('\n'),
      ),
    );
    const events = new GatewayEvents('t');
    metrics = startGatewayMetrics(events, policy);
    const series = async (name: string) => ((await metrics?.registry.getSingleMetric(name)?.get())?.values ?? []).map((v) => [v.labels.rule, v.value]);
    expect(await series(METRIC_NAMES.credentialInjections)).toEqual([['keyed', 0]]);
    expect(await series(METRIC_NAMES.budgetRejections)).toEqual([['limited', 0]]);
    const base = { kind: 'request', conn: 'c1', protocol: 'h2', method: 'POST', host: 'api.example.test', port: 443, path: '/', status: 200, bytesIn: 0, bytesOut: 0, durationMs: 1 } as const;
    events.emit('request', { ...base, decision: 'allow', rule: 'keyed', reason: 'ok', code: 'allowed-by-rule', step: 'policy', credential: 'injected' });
    events.emit('request', { ...base, decision: 'deny', rule: 'keyed', reason: 'refused', code: 'credential-in-request', step: 'credentials', status: 403, credential: 'refused' });
    events.emit('request', { ...base, decision: 'deny', rule: 'limited', reason: 'spent', code: 'budget-exceeded', step: 'budget', status: 429 });
    events.emit('request', { ...base, decision: 'deny', rule: 'limited', reason: 'spent', code: 'budget-exceeded', step: 'budget', monitored: true });
    await new Promise((resolve) => setImmediate(resolve)); // requests are counted at the end of the loop turn
    expect(await series(METRIC_NAMES.credentialInjections)).toEqual([['keyed', 1]]);
    expect(await series(METRIC_NAMES.budgetRejections)).toEqual([['limited', 1]]);
    const denied = ((await metrics.registry.getSingleMetric(METRIC_NAMES.deniedRequests)?.get())?.values ?? []).map((v) => [v.labels.reason, v.value]);
    expect(denied).toEqual(expect.arrayContaining([['credentials', 1], ['budget', 1]]));
  });

  it("budget gauges show each limit and what its rule sent in the window it judges, and follow a policy reload", async () => {
    const policyWith = (budget: string) =>
      compilePolicy(parsePolicy(['version: 1', 'rules:', '  - id: limited', '    host: up.example.test', `    budget: ${budget}`, '  - id: plain', '    host: plain.example.test'].join('\n')));
    let now = 1_000_000;
    const budgets = new EgressBudgets(() => now);
    metrics = startGatewayMetrics(new GatewayEvents('t'), policyWith('{ requestBytesPerMinute: 1000, requestBytesPerRun: 5000 }'), budgets);
    const gauge = async (name: string) => ((await metrics?.registry.getSingleMetric(name)?.get())?.values ?? []).map((v) => [v.labels.rule, v.labels.period, v.value]);
    expect(await gauge(METRIC_NAMES.budgetLimit)).toEqual([['limited', 'minute', 1000], ['limited', 'run', 5000]]);
    expect(await gauge(METRIC_NAMES.budgetUsed)).toEqual([['limited', 'minute', 0], ['limited', 'run', 0]]);
    const account = budgets.account('limited', { requestBytesPerMinute: 1000, requestBytesPerRun: 5000 });
    expect(account.tryCharge(700)).toBeNull();
    expect(await gauge(METRIC_NAMES.budgetUsed)).toEqual([['limited', 'minute', 700], ['limited', 'run', 700]]);
    // A minute later the window has moved on; the run still counts it.
    now += 61_000;
    expect(account.tryCharge(100)).toBeNull();
    expect(await gauge(METRIC_NAMES.budgetUsed)).toEqual([['limited', 'minute', 100], ['limited', 'run', 800]]);
    metrics.setPolicy(policyWith('{ requestBytesPerRun: 2000 }'));
    expect(await gauge(METRIC_NAMES.budgetLimit)).toEqual([['limited', 'run', 2000]]);
    expect(await gauge(METRIC_NAMES.budgetUsed)).toEqual([['limited', 'run', 800]]);
  });

  it('a scrape counts the requests that ended in the same loop turn, before the turn is over', async () => {
    const events = new GatewayEvents('t');
    metrics = startGatewayMetrics(events, POLICY);
    const server = createMetricsServer(metrics);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const client = new Client(`http://127.0.0.1:${port}`);
    try {
      const event = { kind: 'request', conn: 'c1', protocol: 'http/1.1', method: 'GET', host: 'api.example.test', port: 443, path: '/', decision: 'allow', rule: 'api', reason: 'ok', code: 'allowed-by-rule', step: 'policy', status: 200, bytesIn: 0, bytesOut: 10, durationMs: 1 } as const;
      // Emitted in the turn in which the gateway reads the scrape: the scrape must count it.
      server.prependListener('request', () => events.emit('request', event));
      const res = await client.request({ path: '/metrics', method: 'GET' });
      const text = await res.body.text();
      expect(text).toMatch(/^srtgw_requests_total\{[^}]*rule="api"[^}]*\} 1$/m);
    } finally {
      await client.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('policy reloads are counted by outcome, both starting at 0', async () => {
    const events = new GatewayEvents('t');
    metrics = startGatewayMetrics(events, POLICY);
    const reloads = async () => (await metrics?.registry.getSingleMetric(METRIC_NAMES.policyReloads)?.get())?.values.map((v) => [v.labels.outcome, v.value]);
    expect(await reloads()).toEqual([['ok', 0], ['failed', 0]]);
    events.emit('policyReload', { kind: 'policy-reload', outcome: 'failed', reason: 'policy.yaml:1:1: bad' });
    expect(await reloads()).toEqual([['ok', 0], ['failed', 1]]);
  });

  it('upstream connects made with undici are timed, failed ones too', async () => {
    const events = new GatewayEvents('t');
    metrics = startGatewayMetrics(events, POLICY);
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const client = new Client(`http://127.0.0.1:${port}`);
      const res = await client.request({ path: '/', method: 'GET' });
      await res.body.text();
      await client.close();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    const refused = new Client(`http://127.0.0.1:${port}`);
    await expect(refused.request({ path: '/', method: 'GET' })).rejects.toThrow();
    await refused.close();
    const counts = Object.fromEntries(
      ((await metrics.registry.getSingleMetric(METRIC_NAMES.upstreamConnectDuration)?.get())?.values ?? [])
        .filter((v) => (v as { metricName?: string }).metricName === `${METRIC_NAMES.upstreamConnectDuration}_count`)
        .map((v) => [v.labels.outcome, v.value]),
    );
    expect(counts).toEqual({ ok: 1, failed: 1 });
  });
});
