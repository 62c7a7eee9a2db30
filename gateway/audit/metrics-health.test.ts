// /healthz and /readyz on the metrics listener: health is the process answering, readiness is the
// gateway's own say (policy loaded, listeners up, not closing).
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePolicy } from '../../policies/loader.js';
import { compilePolicy } from '../../policies/match.js';
import { GatewayEvents } from './events.js';
import { createMetricsServer, startGatewayMetrics, type GatewayMetrics } from './metrics.js';

describe('health endpoints of the metrics server', () => {
  let metrics: GatewayMetrics | null = null;
  let close = async () => {};
  afterEach(async () => {
    await close();
    metrics?.close();
  });

  async function serve(ready: () => boolean): Promise<string> {
    metrics = startGatewayMetrics(new GatewayEvents('t'), compilePolicy(parsePolicy('version: 1\nrules: []\n')));
    const server = createMetricsServer(metrics, { ready });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    close = () => new Promise((resolve) => server.close(() => resolve()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('/healthz is 200 and /readyz follows the gateway: 503 until ready, 200, 503 again once closing', async () => {
    let ready = false;
    const base = await serve(() => ready);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    ready = false;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect((await fetch(`${base}/other`)).status).toBe(404);
  });
});
