// The library's run(): a command in the real bubblewrap jail, handled like child_process.spawn —
// exit status, piped stdio byte for byte, signals — returning what the gateway denied during the
// run; through a gateway of its own, or a started one that several runs share.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtLibrary, type Library } from '../support/built-library.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { createJailWorkdir, jailTestEnv } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('cc'), missingCommand('git'), missingCommand('openssl'));

const API = 'api.example.test';
const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET]
`;

function collect(stream: Readable | null): Promise<Buffer> {
  if (!stream) throw new Error('stream expected');
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

describe.skipIf(skip !== null)('library: run()', () => {
  let lib: Library;
  let dir: string;
  let work: string;
  let pki: TestPki;
  let upstream: Upstream;
  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

  beforeAll(async () => {
    lib = await builtLibrary();
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-library-run-'));
    work = createJailWorkdir(dir, 'work');
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const base = () => ({ caDir: join(dir, 'ca'), cwd: work, env: jailTestEnv(), upstreamCaFiles: [pki.ca.certPath], resolve: { [API]: '127.0.0.1' } });

  it('reports the exit status', async () => {
    const child = lib.run('sh', ['-c', 'exit 7'], { ...base(), stdio: 'ignore' });
    expect((await child.exited).exitCode).toBe(7);
  });

  it('pipes stdin to stdout byte for byte (1 MiB of random bytes through cat), stderr apart', async () => {
    const input = randomBytes(1 << 20);
    const child = lib.run('sh', ['-c', 'cat; echo to-stderr >&2'], { ...base(), stdio: 'pipe' });
    const stdout = collect(child.stdout);
    const stderr = collect(child.stderr);
    child.stdin!.end(input);
    const [result, out, err] = await Promise.all([child.exited, stdout, stderr]);
    expect(result.exitCode).toBe(0);
    expect(out.length).toBe(input.length);
    expect(sha(out)).toBe(sha(input));
    expect(err.toString()).toBe('to-stderr\n');
  });

  it('kill(SIGTERM) ends the command: 143; a signal sent before the command runs is delivered when it starts', async () => {
    const child = lib.run('sleep', ['30'], { ...base(), stdio: 'ignore' });
    await child.started;
    const started = Date.now();
    expect(child.kill('SIGTERM')).toBe(true);
    expect((await child.exited).exitCode).toBe(143);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(child.kill()).toBe(false);

    const early = lib.run('sleep', ['30'], { ...base(), stdio: 'ignore' });
    early.kill('SIGINT');
    expect((await early.exited).exitCode).toBe(130);
  });

  it('returns the denials of the run; allowed traffic works', async () => {
    const child = lib.run(
      'sh',
      ['-c', `curl -sS -o /dev/null -w '%{http_code}\\n' ${upstream.url('/v1/ok')}; curl -sS -o /dev/null -w '%{http_code}\\n' -X POST ${upstream.url('/v1/upload')}; curl -sS https://evil.test/ 2>/dev/null; true`],
      { ...base(), policy: lib.parsePolicy(POLICY), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const out = collect(child.stdout);
    const result = await child.exited;
    expect((await out).toString()).toBe('200\n403\n');
    expect(result.exitCode).toBe(0);
    expect(result.denials).toEqual([
      expect.objectContaining({ kind: 'request', host: API, port: upstream.port, example: 'POST /v1/upload', rule: 'default-deny', count: 1 }),
      expect.objectContaining({ kind: 'dns', host: 'evil.test', rule: null, reason: 'no rule allows evil.test, so the name was not resolved' }),
    ]);
  });

  it('takes the policy as a file path (read-only inside) plus allow hosts', async () => {
    const policyPath = join(work, 'policy.yaml');
    writeFileSync(policyPath, POLICY);
    const child = lib.run('sh', ['-c', `echo x >> ${policyPath} && echo wrote; curl -sS -o /dev/null -w '%{http_code}\\n' -X POST ${upstream.url('/v1/upload', 'extra.test')}`], {
      ...base(),
      resolve: { [API]: '127.0.0.1', 'extra.test': '127.0.0.1' },
      policy: policyPath,
      allow: ['extra.test'],
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const out = collect(child.stdout);
    await child.exited;
    // The upstream's certificate is not for extra.test, so the gateway answers 502: the request was allowed.
    expect((await out).toString()).toBe('502\n');
  });

  it('a run that cannot start rejects with the CLI\'s SrtGwError (file:line:column for a bad policy), and ends its pipes', async () => {
    const badPath = join(dir, 'bad.yaml');
    writeFileSync(badPath, 'version: 1\nrules:\n  - id: x\n    host: a.test\n    paths: ["no-slash"]\n');
    const child = lib.run('true', [], { ...base(), policy: badPath, stdio: 'pipe' });
    const out = collect(child.stdout);
    const error = await child.exited.catch((e: unknown) => e);
    expect(lib.isSrtGwError(error, 'SRTGW_POLICY_INVALID')).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`^${badPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: `));
    await expect(child.started).rejects.toBe(error);
    expect((await out).length).toBe(0);
    expect(child.kill()).toBe(false);
    await expect(lib.run('true', [], { ...base(), policy: join(dir, 'missing.yaml'), stdio: 'ignore' }).exited).rejects.toMatchObject({ code: 'SRTGW_POLICY_UNREADABLE' });
    await expect(lib.run('true', [], { ...base(), allow: ['bad host'], stdio: 'ignore' }).exited).rejects.toMatchObject({ code: 'SRTGW_CONFIG_INVALID' });
  });

  it('runs through a started gateway shared by several runs: each run gets its own denials, approvals are shared, the gateway stays open', async () => {
    const asked: string[] = [];
    const gateway = await lib.startGateway({
      policy: lib.parsePolicy(POLICY),
      caDir: join(dir, 'ca'),
      upstreamCaFiles: [pki.ca.certPath],
      resolve: { [API]: '127.0.0.1', 'approved.test': '127.0.0.1' },
      auditLog: false,
      onUnknownHost: (host) => (asked.push(host), host === 'approved.test'),
    });
    const seen: string[] = [];
    gateway.on('decision', (decision) => seen.push(`${decision.kind}:${decision.host}`));
    try {
      const jailed = (script: string) => lib.run('sh', ['-c', script], { gateway, cwd: work, env: jailTestEnv(), stdio: ['ignore', 'pipe', 'ignore'] });
      const one = jailed(`curl -sS -o /dev/null https://one.evil.test/ ; curl -sS -o /dev/null -w '%{http_code}\\n' ${upstream.url('/v1/one')}`);
      const two = jailed(`curl -sS -o /dev/null https://two.evil.test/ ; curl -sS -o /dev/null -w '%{http_code}\\n' -X POST ${upstream.url('/v1/two')}`);
      const [outOne, outTwo] = [collect(one.stdout), collect(two.stdout)];
      const [resultOne, resultTwo] = await Promise.all([one.exited, two.exited]);
      expect((await outOne).toString()).toBe('200\n');
      expect((await outTwo).toString()).toBe('403\n');
      // onUnknownHost: DNS answers every name, the question comes at connect.
      expect(resultOne.denials.map((d) => [d.kind, d.host])).toEqual([['connection', 'one.evil.test']]);
      expect(resultTwo.denials.map((d) => [d.kind, d.host, d.example])).toEqual([
        ['connection', 'two.evil.test', undefined],
        ['request', API, 'POST /v1/two'],
      ]);
      expect(asked.sort()).toEqual(['one.evil.test', 'two.evil.test']);

      // An approval made for one run holds for the next.
      const three = jailed(`curl -sS -o /dev/null -w '%{http_code}\\n' ${upstream.url('/v1/three', 'approved.test')}`);
      const outThree = collect(three.stdout);
      await three.exited;
      expect((await outThree).toString()).toBe('502\n'); // allowed; the test certificate is not for approved.test
      const four = jailed(`curl -sS -o /dev/null -w '%{http_code}\\n' ${upstream.url('/v1/four', 'approved.test')}`);
      const outFour = collect(four.stdout);
      await four.exited;
      expect((await outFour).toString()).toBe('502\n');
      expect(asked.filter((host) => host === 'approved.test')).toHaveLength(1);

      // Still open: the gateway serves its proxy after the runs.
      expect(seen).toContain('connect:one.evil.test');
      await expect(lib.run('true', [], { gateway, policy: lib.parsePolicy(POLICY), cwd: work, stdio: 'ignore' }).exited).rejects.toMatchObject({ code: 'SRTGW_CONFIG_INVALID' });
    } finally {
      await gateway.close();
    }
  });
});
