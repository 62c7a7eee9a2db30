// Every path given to `srt-gw run` on the command line starts from the directory it runs in, as
// for any other program: --policy, -s/--srt-settings, --ca-dir, --log and --upstream-ca given as
// "file", "./file" or "../dir/file" work, and so does the library's run({ policy: 'file' }).
// Paths inside a policy file start from that file's directory.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startFakeHttpsServer, type FakeHttpsServer } from '../support/fake-https-server.js';
import { describeRun, jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, srtGwRun, type SrtGwRunResult } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { builtLibrary } from '../support/built-library.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'));

const HOST = 'api.example.test';

describe.skipIf(skip !== null)('relative paths in srt-gw run', () => {
  let root = '';
  let project = '';
  let home = '';
  let pki: TestPki;
  let upstream: FakeHttpsServer;

  beforeAll(async () => {
    ensureBuilt();
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-run-paths-')));
    home = join(root, 'home');
    project = join(root, 'work', 'proj');
    mkdirSync(home);
    mkdirSync(project, { recursive: true });
    mkdirSync(join(root, 'work', 'conf'));
    pki = createTestPki([HOST]);
    upstream = await startFakeHttpsServer({ cert: pki.server.cert, key: pki.server.key, handler: (_req, res) => res.end('reached\n') });
    copyFileSync(pki.ca.certPath, join(project, 'test-ca.pem'));
    // The policy one directory up hides a file named relative to itself.
    writeFileSync(join(root, 'work', 'conf', 'policy.yaml'), `version: 1\nrules:\n  - id: api\n    host: ${HOST}\nfilesystem:\n  denyRead: [../proj/secret.txt]\n`);
    writeFileSync(join(project, 'policy.yaml'), `version: 1\nrules:\n  - id: api\n    host: ${HOST}\n`);
    writeFileSync(join(project, 'srt.json'), JSON.stringify({ network: { allowedDomains: [HOST], deniedDomains: [] }, filesystem: { denyRead: [], allowWrite: ['.'], denyWrite: [] } }));
    writeFileSync(join(project, 'secret.txt'), 'hunter2\n');
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  const probe = "curl -sS -o /dev/null -w 'status=%{http_code}\\n' ";

  async function runFromProject(flags: string[], command = `${probe}https://${HOST}:PORT/; cat secret.txt 2>/dev/null | grep -q hunter2 && echo secret=readable || echo secret=hidden`): Promise<SrtGwRunResult> {
    return srtGwRun({
      flags: ['--resolve', `${HOST}=127.0.0.1`, ...flags],
      command: ['sh', '-c', command.replace('PORT', String(upstream.port))],
      cwd: project,
      env: jailTestEnv({ HOME: home }),
    });
  }

  it.each([
    ['--policy policy.yaml', ['--policy', 'policy.yaml']],
    ['--policy ./policy.yaml', ['--policy', './policy.yaml']],
    ['--policy ../conf/policy.yaml', ['--policy', '../conf/policy.yaml']],
    ['-s srt.json', ['-s', 'srt.json']],
  ])('%s, with --ca-dir, --log and --upstream-ca relative too', async (_name, policyFlags) => {
    const log = `audit-${policyFlags.join('').replace(/[^a-z]/g, '')}.log`;
    const result = await runFromProject([...policyFlags, '--ca-dir', 'relca', '--log', log, '--upstream-ca', './test-ca.pem']);
    expect(result.code, `${result.stderr}\n${result.stdout}`).toBe(0);
    expect(result.stdout).toContain('status=200');
    // The audit log landed beside the project, under the name given.
    const lines = readFileSync(join(project, log), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { host?: string });
    expect(lines.some((line) => line.host === HOST)).toBe(true);
    expect(readFileSync(join(project, 'relca', 'ca.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
  });

  it("a policy's filesystem paths start from the policy file's directory", async () => {
    const result = await runFromProject(['--policy', '../conf/policy.yaml', '--ca-dir', 'relca', '--upstream-ca', 'test-ca.pem']);
    expect(result.code, describeRun({ ...result, audit: [] })).toBe(0);
    expect(result.stdout).toContain('secret=hidden');
    const plain = await runFromProject(['--policy', 'policy.yaml', '--ca-dir', 'relca', '--upstream-ca', 'test-ca.pem']);
    expect(plain.stdout).toContain('secret=readable');
  });

  it('the audit log cannot be read or rewritten from inside the jail', async () => {
    const result = await runFromProject(['--policy', 'policy.yaml', '--ca-dir', 'relca', '--log', 'inside.log', '--upstream-ca', 'test-ca.pem'], `${probe}https://${HOST}:PORT/; grep -c ${HOST} inside.log; echo forged > inside.log; true`);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).not.toMatch(/^[1-9]/m);
    const text = readFileSync(join(project, 'inside.log'), 'utf8');
    expect(text).not.toContain('forged');
    expect(text).toContain(HOST);
  });

  it("the library's run({ policy: 'policy.yaml' }) reads the file from the caller's directory", async () => {
    const library = await builtLibrary();
    const previous = process.cwd();
    process.chdir(project);
    try {
      const child = library.run('sh', ['-c', `${probe}https://${HOST}:${upstream.port}/`], {
        policy: 'policy.yaml',
        caDir: 'relca',
        upstreamCaFiles: ['test-ca.pem'],
        resolve: { [HOST]: '127.0.0.1' },
        env: jailTestEnv({ HOME: home }),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let stdout = '';
      child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const result = await child.exited;
      expect(result.exitCode).toBe(0);
      expect(stdout).toContain('status=200');
    } finally {
      process.chdir(previous);
    }
  });
});
