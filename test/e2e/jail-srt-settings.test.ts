// srt users' settings through `srt-gw run`: `--srt-settings FILE` (`-s`) and a project's
// `.srt.json` (picked up when no srt-gw policy exists) jail a command as srt documents —
// allowedDomains reachable, deniedDomains and everything else refused, filesystem.denyRead
// hidden — with a warning for each setting that maps differently; an srt-gw policy wins.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startFakeHttpsServer, type FakeHttpsServer } from '../support/fake-https-server.js';
import { createJailWorkdir, describeRun, jailTestEnv } from '../support/jail-run.js';
import { CLI_PATH, ensureBuilt, srtGwRun, type SrtGwRunResult } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('git'));

const ALLOWED = 'api.allowed.test';
const DENIED = 'bad.allowed.test'; // matches the allowed wildcard, but deniedDomains wins
const OTHER = 'other.test';

describe.skipIf(skip !== null)('srt-gw run with srt settings', () => {
  let root = '';
  let pki: TestPki;
  let upstream: FakeHttpsServer;
  let home = '';

  beforeAll(async () => {
    ensureBuilt();
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-jail-srt-')));
    home = join(root, 'home');
    mkdirSync(home);
    pki = createTestPki([ALLOWED, DENIED, OTHER]);
    upstream = await startFakeHttpsServer({ cert: pki.server.cert, key: pki.server.key, handler: (_req, res) => res.end('reached\n') });
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  /** srt's settings shape (its README's "complete configuration", trimmed to what a test can reach). */
  const srtSettings = (secretDir: string) =>
    JSON.stringify({
      network: { allowedDomains: ['*.allowed.test'], deniedDomains: [DENIED], allowLocalBinding: true },
      filesystem: { denyRead: [secretDir], allowWrite: ['.'], denyWrite: [] },
    });

  const probe = (label: string) =>
    [
      ...[ALLOWED, DENIED, OTHER].map((host) => `printf '%s=' ${host}; curl -s -o /dev/null -w '%{http_code}\\n' ${upstream.url(host, '/')} || true`),
      'cat secrets/key.txt >/dev/null 2>&1 && echo secret=readable || echo secret=hidden',
      `echo ${label}`,
    ].join('; ');

  async function run(cwd: string, flags: string[], label: string): Promise<SrtGwRunResult> {
    const result = await srtGwRun({
      flags: ['--ca-dir', join(root, 'ca'), '--upstream-ca', pki.ca.certPath, ...[ALLOWED, DENIED, OTHER].flatMap((h) => ['--resolve', `${h}=127.0.0.1`]), ...flags],
      command: ['sh', '-c', probe(label)],
      cwd,
      env: jailTestEnv({ HOME: home }),
    });
    expect(result.code, describeRun({ ...result, audit: [] })).toBe(0);
    return result;
  }

  /** `srt-gw policy trust FILE` as the runs' user: a discovered file is obeyed only once trusted. */
  function trust(file: string): void {
    execFileSync(process.execPath, [CLI_PATH, 'policy', 'trust', file], { env: jailTestEnv({ HOME: home }), stdio: 'pipe' });
  }

  function projectWithSecret(name: string): string {
    const cwd = createJailWorkdir(root, name);
    mkdirSync(join(cwd, 'secrets'));
    writeFileSync(join(cwd, 'secrets', 'key.txt'), 'hunter2\n');
    return cwd;
  }

  function expectSrtSemantics(result: SrtGwRunResult): void {
    expect(result.stdout).toContain(`${ALLOWED}=200`);
    // deniedDomains wins over the allowed wildcard; anything unlisted is refused; neither resolves.
    expect(result.stdout).toContain(`${DENIED}=000`);
    expect(result.stdout).toContain(`${OTHER}=000`);
    expect(result.stdout).toContain('secret=hidden');
    expect(upstream.requests.every((request) => request.authority?.startsWith(ALLOWED))).toBe(true);
  }

  it('--srt-settings FILE: allowed, denied and unlisted domains and denyRead behave as in srt, with warnings', async () => {
    const cwd = projectWithSecret('explicit');
    const settings = join(root, 'srt-settings.json');
    writeFileSync(settings, srtSettings(join(cwd, 'secrets')));
    const result = await run(cwd, ['-s', settings], 'explicit');
    expectSrtSemantics(result);
    expect(result.stderr).toContain(`srt-gw: using srt settings ${settings}`);
    expect(result.stderr).toMatch(/allowLocalBinding true: carried over as jail.allowLocalBinding; .*on Linux the command may always listen on its own loopback/);
    expect(result.stderr).toMatch(/allowWrite\[0\] "\." skipped: srt-gw always lets the command write its working directory/);
  });

  it('a project\'s .srt.json is picked up when no srt-gw policy exists', async () => {
    const cwd = projectWithSecret('discovered');
    writeFileSync(join(cwd, '.srt.json'), srtSettings('./secrets'));
    trust(join(cwd, '.srt.json'));
    const result = await run(cwd, [], 'discovered');
    expectSrtSemantics(result);
    expect(result.stderr).toContain(`srt-gw: no srt-gw policy; using srt settings ${join(cwd, '.srt.json')}`);
  });

  it('an srt-gw policy in the project wins over its .srt.json', async () => {
    const cwd = projectWithSecret('both');
    writeFileSync(join(cwd, '.srt.json'), srtSettings('./secrets'));
    writeFileSync(join(cwd, '.srt-gw.yaml'), `version: 1\nrules:\n  - { id: other-only, host: ${OTHER} }\n`);
    trust(join(cwd, '.srt-gw.yaml'));
    const result = await run(cwd, [], 'both');
    expect(result.stderr).toContain(`srt-gw: policy ${join(cwd, '.srt-gw.yaml')}`);
    expect(result.stdout).toContain(`${OTHER}=200`);
    expect(result.stdout).toContain(`${ALLOWED}=000`);
    // The srt settings' denyRead does not apply: the project's own file stays readable.
    expect(result.stdout).toContain('secret=readable');
  });

  it('--policy and --srt-settings together are refused before anything runs (exit 125)', async () => {
    const result = await srtGwRun({
      flags: ['--ca-dir', join(root, 'ca'), '--policy', join(root, 'x.yaml'), '-s', join(root, 'y.json')],
      command: ['true'],
      cwd: root,
      env: jailTestEnv({ HOME: home }),
    });
    expect(result.code).toBe(125);
    expect(result.stderr).toContain('give either --policy or --srt-settings, not both');
  });
});
