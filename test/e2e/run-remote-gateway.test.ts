// `srt-gw run --gateway URL`: the jail's traffic goes to a remote `srt-gw serve` (HTTPS proxy with
// clients:), which decides, terminates TLS with its own CA and writes the audit line. A real serve
// process, a real jail, real curl; the upstream is a local HTTPS server with a test CA.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, srtGwRun, type SrtGwRunResult } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('openssl'));

const API = 'api.example.test';
/** Resolved by the remote like API (to the same upstream): only the remote's policy stops it. */
const DENIED = 'denied.example.test';
const TOKEN = `laptop-${randomBytes(16).toString('hex')}`;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const describeRun = (result: SrtGwRunResult) => `exit ${result.code}${result.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;

describe.skipIf(skip !== null)('srt-gw run --gateway: a remote srt-gw serve decides', () => {
  let dir = '';
  let pki: TestPki;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let remote: GatewayProcess;
  let remoteUrl = '';

  beforeAll(async () => {
    ensureBuilt();
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-run-remote-')));
    mkdirSync(join(dir, 'work'));
    pki = createTestPki([API, DENIED]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API, DENIED] });
    plainUpstream = await startUpstream({ plain: true, names: [API] });
    remote = await startGatewayProcess({
      policyYaml: `
version: 1
rules:
  - { id: api, host: ${API} }
clients:
  - id: laptops
    token: { sha256: "${sha256(TOKEN)}" }
`,
      args: [
        '--upstream-ca', pki.ca.certPath,
        '--resolve', `${API}=127.0.0.1`,
        '--resolve', `${DENIED}=127.0.0.1`,
        '--tls-cert', pki.server.certPath,
        '--tls-key', pki.server.keyPath,
        '--state-dir', join(dir, 'remote-state'),
      ],
    });
    remoteUrl = remote.proxyUrl.replace('http://', 'https://');
  }, 60_000);

  afterAll(async () => {
    await remote?.stop();
    await upstream?.close();
    await plainUpstream?.close();
    pki?.cleanup();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /** `srt-gw run --gateway` with the remote's TLS CA and interception CA trusted. */
  const runRemote = (command: string, options: { url?: string; flags?: string[]; env?: Record<string, string> } = {}) =>
    srtGwRun({
      flags: ['--gateway', options.url ?? remoteUrl, '--gateway-ca', pki.ca.certPath, '--gateway-ca', remote.caPath, ...(options.flags ?? [])],
      command: ['sh', '-c', command],
      cwd: join(dir, 'work'),
      env: jailTestEnv({ HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state'), SRT_GW_GATEWAY_TOKEN: TOKEN, ...options.env }),
      timeoutMs: 60_000,
    });

  it('an allowed request goes through the remote: 200, and the remote audits it as the token client', async () => {
    const result = await runRemote(`curl -s -o /dev/null -w '%{http_code}\\n' https://${API}:${upstream.port}/remote/allowed`);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout.trim()).toBe('200');
    expect(upstream.received.some((request) => request.path === '/remote/allowed')).toBe(true);
    const line = await remote.waitForAudit((entry) => entry.kind === 'request' && entry.path === '/remote/allowed');
    expect(line.decision).toBe('allow');
    expect(line.clientId).toBe('laptops');
  });

  it('plain HTTP goes through the remote too (it reads the request inside the tunnel)', async () => {
    const result = await runRemote(`curl -s -o /dev/null -w '%{http_code}\\n' http://${API}:${plainUpstream.port}/remote/plain`);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout.trim()).toBe('200');
    const line = await remote.waitForAudit((entry) => entry.kind === 'request' && entry.path === '/remote/plain');
    expect(line.clientId).toBe('laptops');
  });

  it("a host the remote's policy denies fails, and the run summary names the remote's reason", async () => {
    const result = await runRemote(`curl -s -o /dev/null https://${DENIED}:${upstream.port}/remote/denied; echo "curl=$?"`);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toMatch(/curl=(3[5-9]|5[26]|[1-9]\d*)/);
    expect(result.stdout).not.toContain('curl=0');
    expect(upstream.received.some((request) => request.path === '/remote/denied')).toBe(false);
    expect(result.stderr).toContain('srt-gw: denied during this run:');
    expect(result.stderr).toContain(`${DENIED}:${upstream.port}`);
    expect(result.stderr).toContain(`answered 403: no rule allows host ${DENIED} on port ${upstream.port}`);
    // The advice points at the remote's policy, not at a local one that decides nothing here.
    expect(result.stderr).toContain(`The gateway ${remoteUrl} decided`);
    expect(result.stderr).not.toContain('the command runs with no network');
    const line = await remote.waitForAudit((entry) => entry.kind === 'connect' && entry.host === DENIED);
    expect(line.decision).toBe('deny');
    expect(line.clientId).toBe('laptops');
  });

  it('a token the remote refuses: exit 125 with the 407 reason, before the command runs', async () => {
    const marker = join(dir, 'work', 'bad-token-ran');
    const result = await runRemote(`touch ${marker}`, { env: { SRT_GW_GATEWAY_TOKEN: `wrong-${randomBytes(8).toString('hex')}` } });
    expect(result.code, describeRun(result)).toBe(125);
    expect(result.stderr).toMatch(/refused the token \(407: client-[a-z-]+\)/);
    expect(existsSync(marker)).toBe(false);
  });

  it('no token at all: exit 125 naming the variable', async () => {
    const result = await runRemote('true', { env: { SRT_GW_GATEWAY_TOKEN: '' } });
    expect(result.code, describeRun(result)).toBe(125);
    expect(result.stderr).toMatch(/no token; set SRT_GW_GATEWAY_TOKEN/);
  });

  it('the remote down: exit 125 saying it could not be reached, before the command runs', async () => {
    const marker = join(dir, 'work', 'remote-down-ran');
    const result = await runRemote(`touch ${marker}`, { url: `https://127.0.0.1:${await closedPort()}` });
    expect(result.code, describeRun(result)).toBe(125);
    expect(result.stderr).toMatch(/could not be reached \(ECONNREFUSED\)/);
    expect(existsSync(marker)).toBe(false);
  });

  it("the remote's certificate not trusted: exit 125 pointing at --gateway-ca", async () => {
    const result = await srtGwRun({
      flags: ['--gateway', remoteUrl, '--gateway-ca', remote.caPath],
      command: ['true'],
      cwd: join(dir, 'work'),
      env: jailTestEnv({ HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state'), SRT_GW_GATEWAY_TOKEN: TOKEN }),
      timeoutMs: 60_000,
    });
    expect(result.code, describeRun(result)).toBe(125);
    expect(result.stderr).toMatch(/certificate did not verify .*--gateway-ca/);
  });

  it('the token is not visible inside the jail: not in its environment, not in any process it can see', async () => {
    // Given both ways: --token puts it in srt-gw's argv, the variable in srt-gw's environment.
    const result = await runRemote(
      `env; echo ---; for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ; do tr '\\0' ' ' < "$f" 2>/dev/null; echo; done; echo ---; curl -s -o /dev/null -w '%{http_code}\\n' https://${API}:${upstream.port}/remote/with-flag`,
      { flags: ['--token', TOKEN] },
    );
    expect(result.code, describeRun(result)).toBe(0);
    // The run worked with the token, so it was there to leak.
    expect(result.stdout.trim().split('\n').at(-1)).toBe('200');
    expect(result.stdout).toContain('SRT_GW_JAIL=1');
    expect(result.stdout).not.toContain(TOKEN);
    expect(result.stdout).not.toContain('SRT_GW_GATEWAY_TOKEN');
  });

  it('flags for a local gateway are refused with --gateway', async () => {
    const result = await runRemote('true', { flags: ['--allow', 'example.com'] });
    expect(result.code, describeRun(result)).toBe(125);
    expect(result.stderr).toContain('--allow');
  });
});
