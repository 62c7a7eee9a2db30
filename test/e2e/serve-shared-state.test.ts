// serve --state end to end: three real `srt-gw serve` replicas share one real redis-server. A
// budget holds across replicas (each request lands on another replica, and the one that would
// cross it is refused wherever it lands); with the server killed, a budgeted request is refused
// (fail closed: 429 budget-state-unavailable) and /metrics says the state is down; once the server
// is back, the replicas reconnect on their own and serve again. A token revoked in the shared
// state is refused by every replica, none of which has the revocation in its own state directory.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { CLI_PATH, cleanEnv, curlThroughProxy, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { missingRedisServer, startRedisServer, type RedisServer } from '../support/redis-server.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl')) ?? missingRedisServer();

const API = 'api.example.test';
const BODY_BYTES = 10_000;
/** Two 10 kB uploads (with their heads) fit; the third would cross. */
const RUN_BUDGET = 25_000;

const POLICY = `
version: 1
rules:
  - id: shared-upload
    host: ${API}
    paths: ["/upload/**"]
    budget: { requestBytesPerRun: ${RUN_BUDGET} }
  - id: metered
    host: ${API}
    paths: ["/metered/**"]
    budget: { requestBytesPerMinute: 10MiB }
  - id: unmetered
    host: ${API}
    paths: ["/free/**"]
`;

describe.skipIf(skip !== null)('serve --state: replicas share budgets through redis', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  const replicas: GatewayProcess[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    upstream = await startUpstream({ plain: true, names: [API] });
    for (let i = 0; i < 3; i++) {
      replicas.push(
        await startGatewayProcess({ policyYaml: POLICY, args: ['--resolve', `${API}=127.0.0.1`, '--metrics', '127.0.0.1:0', '--state', redis.url] }),
      );
    }
    // Each replica connects in the background; wait until each can count.
    for (const replica of replicas) await until(async () => (await metric(replica, 'srtgw_state_backend_up')) === 1 || (await post(replica, '/metered/warm-up', 1)).status === 200);
  });

  afterAll(async () => {
    for (const replica of replicas) await replica.stop();
    await upstream?.close();
    await redis?.stop();
  });

  const post = (replica: GatewayProcess, path: string, bytes: number) =>
    curlThroughProxy(replica, ['-X', 'POST', '-H', 'content-type: application/octet-stream', upstream.url(path)], { input: Buffer.alloc(bytes, 0x61) });

  it('a per-run budget holds across replicas: the request that would cross it is refused wherever it lands', async () => {
    const [a, b, c] = replicas as [GatewayProcess, GatewayProcess, GatewayProcess];
    expect((await post(a, '/upload/one', BODY_BYTES)).status).toBe(200);
    expect((await post(b, '/upload/two', BODY_BYTES)).status).toBe(200);
    // c has sent nothing itself, yet the shared count is spent.
    for (const [replica, path] of [[c, '/upload/three'], [a, '/upload/four'], [b, '/upload/five']] as const) {
      const refused = await post(replica, path, BODY_BYTES);
      expect(refused.status).toBe(429);
      expect(refused.json()).toMatchObject({ error: 'budget-exceeded', code: 'budget-exceeded', rule: 'shared-upload' });
      expect(refused.headers['x-srt-gw-reason']).toContain('shared by all replicas');
    }
    expect(upstream.received.filter((request) => request.path.startsWith('/upload/')).map((request) => request.path)).toEqual(['/upload/one', '/upload/two']);
    expect(await c.waitForAudit((line) => line.path === '/upload/three')).toMatchObject({ decision: 'deny', step: 'budget', code: 'budget-exceeded', status: 429 });
  });

  it('a hung redis (stopped, its connections open) does not stall requests: each gets 429 budget-state-unavailable once the command deadline passes', async () => {
    const [a, b] = replicas as [GatewayProcess, GatewayProcess, GatewayProcess];
    expect((await post(a, '/metered/before-hang', 100)).status).toBe(200);
    redis.pause();
    try {
      const refused = await post(b, '/metered/hung', 100);
      expect(refused.status).toBe(429);
      expect(refused.json()).toMatchObject({ code: 'budget-state-unavailable', rule: 'metered' });
      expect(refused.headers['x-srt-gw-reason']).toMatch(/did not answer within/);
    } finally {
      redis.resume();
    }
    await until(async () => (await post(b, '/metered/after-hang', 100)).status === 200);
  });

  it('with redis killed, budgeted requests get 429 budget-state-unavailable and /metrics says down; unbudgeted ones pass; after a restart, service recovers', async () => {
    const [a, b, c] = replicas as [GatewayProcess, GatewayProcess, GatewayProcess];
    expect((await post(a, '/metered/before', 100)).status).toBe(200);
    await redis.kill();
    for (const replica of [a, b, c]) {
      const refused = await post(replica, '/metered/during', 100);
      expect(refused.status).toBe(429);
      expect(refused.json()).toMatchObject({ code: 'budget-state-unavailable', rule: 'metered' });
    }
    expect(upstream.received.some((request) => request.path === '/metered/during')).toBe(false);
    expect(await a.waitForAudit((line) => line.path === '/metered/during')).toMatchObject({ decision: 'deny', step: 'budget', code: 'budget-state-unavailable', status: 429 });
    expect((await post(b, '/free/during', 100)).status).toBe(200);
    expect(await metric(c, 'srtgw_state_backend_up')).toBe(0);
    expect(await metric(c, 'srtgw_state_errors_total')).toBeGreaterThan(0);

    await redis.restart();
    for (const replica of [a, b, c]) await until(async () => (await post(replica, '/metered/after', 100)).status === 200);
    expect(await metric(c, 'srtgw_state_backend_up')).toBe(1);
  });
});

describe.skipIf(skip !== null)('serve --state: replicas share issued-token revocations through redis', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  let scratch: string;
  let token: string;
  const replicas: GatewayProcess[] = [];
  const tokenCli = (args: string[]) => spawnSync(process.execPath, [CLI_PATH, 'token', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...cleanEnv(), SRT_GW_JAIL: '' } });
  const request = (replica: GatewayProcess, path: string) => curlThroughProxy(replica, ['--proxy-header', `Proxy-Authorization: Bearer ${token}`, upstream.url(path)]);

  beforeAll(async () => {
    redis = await startRedisServer();
    upstream = await startUpstream({ plain: true, names: [API] });
    scratch = mkdtempSync(join(tmpdir(), 'srt-gw-shared-revocations-'));
    const minted = tokenCli(['issue', '--client', 'laptops', '--ttl', '1h', '--state-dir', join(scratch, 'origin')]);
    expect(minted.status, minted.stderr).toBe(0);
    token = minted.stdout.trim();
    const policy = `
version: 1
rules:
  - { id: laptops-read, host: ${API}, paths: ["/ci/**"] }
clients:
  - id: laptops
    issued: {}
    rules: [laptops-read]
`;
    for (let i = 0; i < 3; i++) {
      // Each replica has its own copy of the signing key and of the (empty) revocations file.
      const own = join(scratch, `replica-${i}`);
      cpSync(join(scratch, 'origin'), own, { recursive: true });
      replicas.push(await startGatewayProcess({ policyYaml: policy, args: ['--resolve', `${API}=127.0.0.1`, '--metrics', '127.0.0.1:0', '--state-dir', own, '--state', redis.url] }));
    }
    for (const replica of replicas) await until(async () => (await metric(replica, 'srtgw_state_backend_up')) === 1);
  });

  afterAll(async () => {
    for (const replica of replicas) await replica.stop();
    await upstream?.close();
    await redis?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('a token revoked with token revoke --state is refused by every replica; with redis down, issued tokens are refused (fail closed)', async () => {
    for (const replica of replicas) expect((await request(replica, '/ci/before')).status).toBe(200);
    const revoked = tokenCli(['revoke', token, '--state-dir', join(scratch, 'origin'), '--state', redis.url]);
    expect(revoked.status, revoked.stderr).toBe(0);
    for (const replica of replicas) {
      const refused = await request(replica, '/ci/after');
      expect(refused.status).toBe(407);
      expect(refused.text).toContain('client-token-revoked');
    }
    expect(upstream.received.some((received) => received.path === '/ci/after')).toBe(false);

    await redis.kill();
    const unavailable = await request(replicas[0]!, '/ci/redis-down');
    expect(unavailable.status).toBe(407);
    expect(unavailable.text).toContain('client-token-revocations-unavailable');
  });
});

async function metric(replica: GatewayProcess, name: string): Promise<number | null> {
  const response = await fetch(replica.metricsUrl!);
  const text = await response.text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : null;
}

async function until(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
