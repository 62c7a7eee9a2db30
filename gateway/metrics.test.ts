// The metrics catalogue (docs/metrics.md) and the registry the gateway exposes name exactly the
// same srtgw_ metrics, so the documentation, dashboard and alerts cannot drift from the code.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { compilePolicy } from '../policies/match.js';
import { parsePolicy } from '../policies/loader.js';
import { DNS_METRIC_NAMES, registerDnsMetrics } from './dns/metrics.js';
import { GatewayEvents } from './events.js';
import { METRIC_NAMES, RESERVED_METRIC_NAMES, startGatewayMetrics, type GatewayMetrics } from './metrics.js';

const CATALOGUE = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8');
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
    metrics = startGatewayMetrics(events, POLICY);
    registerDnsMetrics(metrics.registry, (listener) => events.on('dns', listener));
    const exposed = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name).filter((name) => name.startsWith('srtgw_'));
    expect(exposed.sort()).toEqual([...DOCUMENTED].sort());
  });

  it('reserved metrics are documented as reserved and have no series', async () => {
    const events = new GatewayEvents('t');
    metrics = startGatewayMetrics(events, POLICY);
    for (const name of RESERVED_METRIC_NAMES) {
      expect(CATALOGUE).toMatch(new RegExp(`\\| \`${name}\` \\|[^\\n]*Reserved: 0 until credential rules land`));
      expect((await metrics.registry.getSingleMetric(name)?.get())?.values).toEqual([]);
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
