// A client that closes its connection gets its socket released at once, over HTTP/2 as over
// HTTP/1.1, through `srt-gw serve` (CONNECT) and `srt-gw run` (the jail's redirected
// connections): the gateway's file descriptors and srtgw_open_connections return to where they
// were, long before the idle sweep (120 s) would have closed the connections.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { CLI_PATH, curlThroughProxy } from '../support/gateway-process.js';
import { createJailWorkdir, jailTestEnv } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { freePort } from '../support/free-port.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));
const skipJail = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('openssl'), missingCommand('git'));

const API = 'api.example.test';
const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET]
    paths: ["/**"]
`;

const CONNECTIONS = 50;
/** Far below the 120 s idle limit, far above what a release takes on a busy machine. */
const RELEASE_DEADLINE_MS = 15_000;
/** File descriptors the gateway may hold beyond its baseline (the upstream pool's sockets, lazily loaded modules). */
const FD_SLACK = 8;

async function openConnectionsAt(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const match = /^srtgw_open_connections(?:\{[^}]*\})? (\d+)/m.exec(text);
  if (!match) throw new Error(`no srtgw_open_connections in /metrics:\n${text}`);
  return Number(match[1]);
}

const openFdsOf = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** Polls until the gauge is 0 and the fds are back near `baselineFds`; returns the last reading. */
async function waitForRelease(metricsUrl: string, pid: number, baselineFds: number): Promise<{ open: number; fds: number }> {
  const deadline = Date.now() + RELEASE_DEADLINE_MS;
  for (;;) {
    const reading = { open: await openConnectionsAt(metricsUrl), fds: openFdsOf(pid) };
    if ((reading.open === 0 && reading.fds <= baselineFds + FD_SLACK) || Date.now() > deadline) return reading;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

for (const version of ['--http2', '--http1.1'] as const) {
  // A gateway of its own for each protocol: what one leaves open cannot fail the other.
  describe.skipIf(skip !== null)(`connections a client closes are released (srt-gw serve, curl ${version})`, () => {
    let fixture: GatewayFixture | undefined;

    beforeAll(async () => {
      fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API], args: ['--metrics', '127.0.0.1:0'] });
    });

    afterAll(async () => {
      await fixture?.close();
    });

    it(`${CONNECTIONS} curl ${version} runs leave no connection open`, async () => {
      const { gateway, upstream } = fixture!;
      const released = (baselineFds: number) => waitForRelease(gateway.metricsUrl!, gateway.pid, baselineFds);
      // One request first, so the baseline has what the first request loads once (TLS server,
      // upstream pool, leaf cache) and the sockets it keeps to the upstream.
      const warmup = await curlThroughProxy(gateway, [version, upstream.url('/warmup')]);
      expect(warmup.status).toBe(200);
      expect(await released(Number.POSITIVE_INFINITY)).toMatchObject({ open: 0 });
      const baselineFds = openFdsOf(gateway.pid);

      for (let i = 0; i < CONNECTIONS; i++) {
        const res = await curlThroughProxy(gateway, [version, upstream.url(`/item/${i}`)]);
        expect(res.status).toBe(200);
        expect(res.httpVersion).toBe(version === '--http2' ? '2' : '1.1');
      }

      const after = await released(baselineFds);
      expect(after.open).toBe(0);
      expect(after.fds).toBeLessThanOrEqual(baselineFds + FD_SLACK);
    });
  });
}

describe.skipIf(skipJail !== null)('connections a client closes are released (srt-gw run)', () => {
  let root = '';
  let pki: TestPki | undefined;
  let upstream: Upstream | undefined;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-h2-release-')));
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it(`${CONNECTIONS} curl --http2 runs in the jail leave no connection open`, { timeout: 2 * RUN_DEADLINE_MS }, async () => {
    const cwd = createJailWorkdir(root, 'work');
    const policyPath = join(root, 'policy.yaml');
    writeFileSync(policyPath, POLICY);
    const metricsPort = await freePort();
    const url = upstream!.url('/item');
    // The curls, then a mark, then the command waits (keeping the gateway up) until the test is done.
    const script = `for i in $(seq ${CONNECTIONS}); do curl -sS --http2 -o /dev/null -w '%{http_version} %{http_code}\\n' ${url} || exit 1; done > curls.out; : > curls-done; while [ ! -e release ]; do sleep 0.1; done`;
    const args = [
      CLI_PATH, 'run',
      '--ca-dir', join(root, 'ca'),
      '--policy', policyPath,
      '--upstream-ca', pki!.ca.certPath,
      '--resolve', `${API}=127.0.0.1`,
      '--metrics', `127.0.0.1:${metricsPort}`,
      '--log', join(root, 'audit.jsonl'),
      '--', 'sh', '-c', script,
    ];
    const child = spawn(process.execPath, args, { cwd, env: jailTestEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      const deadline = Date.now() + RUN_DEADLINE_MS;
      while (!existsSync(join(cwd, 'curls-done'))) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the jailed curls did not finish (exit ${child.exitCode}):\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const answers = readFileSync(join(cwd, 'curls.out'), 'utf8').trim().split('\n');
      expect(answers).toEqual(Array.from({ length: CONNECTIONS }, () => '2 200'));
      const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
      expect(await waitForRelease(metricsUrl, child.pid!, Number.POSITIVE_INFINITY)).toMatchObject({ open: 0 });
      writeFileSync(join(cwd, 'release'), '');
      expect(await exited).toBe(0);
    } finally {
      writeFileSync(join(cwd, 'release'), '');
      if (child.exitCode === null) child.kill('SIGTERM');
    }
  });
});

/** How long the jail and its 50 curls may take on a busy machine: only a hang takes longer. */
const RUN_DEADLINE_MS = 120_000;

