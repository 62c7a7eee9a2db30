// The end-of-run summary of `srt-gw run` lists upstream failures (an allowed request the
// upstream side could not serve) beside what the policy denied, so a user sees both at once; and
// after a failed command, which protected paths were read-only because they did not exist.
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, srtGwRun } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'));

/** A loopback port nothing listens on: the gateway's DNS upstream that refuses every query. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.skipIf(skip !== null)('the end-of-run summary', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-run-summary-')));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lists an allowed request whose name did not resolve upstream, and a denied one', async () => {
    ensureBuilt();
    const port = await closedPort();
    const result = await srtGwRun({
      flags: ['--allow', 'api.example.test', '--dns-upstream', `127.0.0.1:${port}`, '--ca-dir', join(dir, 'ca')],
      command: ['sh', '-c', "curl -s -o /dev/null -w '%{http_code}\\n' http://api.example.test/v1/x; curl -s http://other.example.test/ || true"],
      cwd: dir,
      env: jailTestEnv({ HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state') }),
      timeoutMs: 60_000,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('502');
    expect(result.stderr).toMatch(/srt-gw: allowed, but the upstream failed:\n {2}api\.example\.test:80 {2}GET \/v1\/x {2}\[cli-allow-api\.example\.test\] could not resolve api\.example\.test/);
    expect(result.stderr).toMatch(/srt-gw: denied during this run:\n {2}other\.example\.test {2}DNS lookup/);
  });

  it('after a failed git init in a directory without .git, says .git was read-only and what to do', async () => {
    ensureBuilt();
    const project = join(dir, 'no-repository');
    mkdirSync(project);
    const result = await srtGwRun({
      flags: ['--ca-dir', join(dir, 'ca')],
      command: ['git', 'init', '-q'],
      cwd: project,
      env: jailTestEnv({ HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state') }),
      timeoutMs: 60_000,
    });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/srt-gw: read-only in the jail because they did not exist \(they configure programs that run on the host later\): .*\.git .*; for a repository, run git init before srt-gw run, or review such writes with --write-mode overlay/);
    // Nothing stays behind on the host.
    expect(readdirSync(project)).toEqual([]);
  });

  it('says nothing of placeholders when the command succeeded', async () => {
    const project = join(dir, 'fine');
    mkdirSync(project);
    const result = await srtGwRun({
      flags: ['--ca-dir', join(dir, 'ca')],
      command: ['true'],
      cwd: project,
      env: jailTestEnv({ HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state') }),
    });
    expect(result.code).toBe(0);
    expect(result.stderr).not.toContain('read-only in the jail');
  });
});
