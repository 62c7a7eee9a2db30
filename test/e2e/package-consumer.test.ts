// A consumer project installs the packed tarball, as a user would, and uses the library: its
// TypeScript (strict, with the shipped .d.ts checked too) type-checks against the API and a
// mistake does not; its JavaScript starts a gateway with only the production dependencies.
// Offline: dependencies come from the npm cache, pinned by a lockfile derived from ours. Where the
// cache lacks them, they are symlinked from this repository's node_modules instead (said on stderr).
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv } from '../support/gateway-process.js';
import { ensureBuilt, REPO_ROOT } from '../support/srt-gw-run.js';

const execFileAsync = promisify(execFile);
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

interface LockEntry {
  version?: string;
  dev?: boolean;
  link?: boolean;
  [key: string]: unknown;
}

const CONSUMER_TS = `
import {
  isSrtGwError,
  loadPolicy,
  parsePolicy,
  run,
  startGateway,
  type ConnectionDecision,
  type Decision,
  type DecisionStream,
  type Denial,
  type Gateway,
  type GatewayOptions,
  type JailedCommand,
  type Policy,
  type PolicyFile,
  type PolicyFileInput,
  type RequestDecision,
  type Rule,
  type RunOptions,
  type RunResult,
  type UnknownHostCallback,
} from 'srt-gw';

const rule: Rule = { id: 'docs', host: 'docs.example.test', action: 'allow', protocol: 'http' };
const policy: Policy = { version: 1, rules: [rule] };
const fromText: Policy = parsePolicy('version: 1\\nrules: []\\n', 'inline.yaml');
const file: PolicyFileInput = { version: 1, rules: [{ id: 'x', host: 'x.test' }] };
const validated: Policy = parsePolicy(JSON.stringify(file));
const shape: PolicyFile['version'] = 1;
const ask: UnknownHostCallback = async (host: string, port: number) => host.endsWith('.test') && port === 443;
const options: GatewayOptions = { policy, auditLog: false, onUnknownHost: ask, unknownHostTimeoutMs: 1000, resolve: { 'docs.example.test': '127.0.0.1' } };

export async function main(): Promise<number> {
  const gateway: Gateway = await startGateway(options);
  const url: string = gateway.proxyUrl;
  const port: number = gateway.address.port;
  const stop: () => void = gateway.on('request', (d: RequestDecision) => console.log(d.method, d.path, d.rule));
  gateway.on('connect', (d: ConnectionDecision) => console.log(d.client));
  const stream: DecisionStream = gateway.decisions({ bufferSize: 16 });
  for await (const d of stream) {
    const decision: Decision = d;
    if (decision.kind === 'dns') console.log(decision.outcome, decision.host);
    else if (decision.kind === 'request') console.log(decision.status, decision.step);
    break;
  }
  const runOptions: RunOptions = { gateway, stdio: ['pipe', 'pipe', 'inherit'], cwd: '.' };
  const child: JailedCommand = run('cat', [], runOptions);
  child.stdin?.end('x');
  child.stdout?.on('data', (chunk: Buffer) => chunk.length);
  const { gateway: same } = await child.started;
  const result: RunResult = await child.exited;
  const denials: readonly Denial[] = result.denials;
  child.kill('SIGTERM');
  stop();
  await gateway.reload(fromText);
  await gateway.reload('policy.yaml');
  await same.close();
  try {
    await loadPolicy('missing.yaml');
  } catch (error) {
    if (isSrtGwError(error, 'SRTGW_POLICY_UNREADABLE')) console.log(error.code, validated.rules.length, shape, url, port);
  }
  return result.exitCode + denials.length;
}
`;

/** Each line must be a type error: proves the shipped types are not \`any\`. */
const MISTAKES_TS = `
import { run, startGateway, type Decision } from 'srt-gw';
export async function wrong(d: Decision): Promise<void> {
  await startGateway({ policy: 42 });
  run('x', [], { stdio: 'tty' });
  const gateway = await startGateway({ policy: 'p.yaml' });
  gateway.on('nonsense', () => undefined);
  const path: string = d.path;
  const exit: string = (await run('x').exited).exitCode;
  void path; void exit;
}
`;

const CONSUMER_JS = `
import { request } from 'node:http';
import { parsePolicy, startGateway } from 'srt-gw';
const gateway = await startGateway({ policy: parsePolicy('version: 1\\nrules: []\\n'), auditLog: false });
const seen = [];
gateway.on('decision', (d) => seen.push([d.kind, d.decision, d.host, d.rule]));
const status = await new Promise((resolve, reject) =>
  request({ ...gateway.address, path: 'http://evil.test/', headers: { host: 'evil.test' } }, (res) => (res.resume(), resolve(res.statusCode))).on('error', reject).end(),
);
await gateway.close();
console.log(JSON.stringify({ status, seen }));
`;

describe('a consumer project installs the packed tarball', () => {
  let dir: string;
  let app: string;
  let installedVia: 'npm ci --offline' | 'symlinks';

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-consumer-'));
    const packDir = join(dir, 'pack');
    app = join(dir, 'app');
    mkdirSync(packDir);
    mkdirSync(app);
    const { stdout } = await execFileAsync('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: REPO_ROOT, env: cleanEnv(), maxBuffer: 1 << 24 });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    const tarball = join(packDir, filename);
    const spec = `file:../pack/${filename}`;

    // The lockfile: srt-gw from the tarball, its dependencies exactly as this repository locks them.
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
    const root = lock.packages['']!;
    const packages: Record<string, LockEntry> = {
      '': { name: 'consumer', dependencies: { 'srt-gw': spec } },
      'node_modules/srt-gw': {
        version: root.version,
        resolved: spec,
        integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
        dependencies: root.dependencies,
        engines: root.engines,
        bin: root.bin,
        hasInstallScript: true,
      },
    };
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path.startsWith('node_modules/') && !entry.dev && !entry.link) packages[path] = entry;
    }
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { 'srt-gw': spec } }, null, 2));
    writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }, null, 2));
    try {
      await execFileAsync('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app, env: cleanEnv(), maxBuffer: 1 << 24, timeout: 120_000 });
      installedVia = 'npm ci --offline';
    } catch (error) {
      if (!/ENOTCACHED/.test(String((error as { stderr?: string }).stderr))) throw error;
      process.stderr.write('[package-consumer] the npm cache lacks a dependency: symlinking them from this repository instead\n');
      const modules = join(app, 'node_modules');
      rmSync(modules, { recursive: true, force: true });
      mkdirSync(join(modules, 'srt-gw'), { recursive: true });
      await execFileAsync('tar', ['-xzf', tarball, '-C', join(modules, 'srt-gw'), '--strip-components=1']);
      for (const path of Object.keys(packages)) {
        if (path === '' || path === 'node_modules/srt-gw' || path.split('node_modules/').length > 2) continue;
        mkdirSync(join(app, path, '..'), { recursive: true });
        symlinkSync(join(REPO_ROOT, path), join(app, path));
      }
      installedVia = 'symlinks';
    }
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          // The shipped .d.ts files are checked too: none may need a dev dependency's types.
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(REPO_ROOT, 'node_modules', '@types')],
        },
        files: ['consumer.ts'],
      }),
    );
    writeFileSync(join(app, 'consumer.ts'), CONSUMER_TS);
    writeFileSync(join(app, 'mistakes.ts'), MISTAKES_TS);
    writeFileSync(join(app, 'consumer.mjs'), CONSUMER_JS);
  }, 180_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs it with its production dependencies only', () => {
    expect(['npm ci --offline', 'symlinks']).toContain(installedVia);
    const installed = JSON.parse(readFileSync(join(app, 'node_modules', 'srt-gw', 'package.json'), 'utf8')) as { name: string; types: string };
    expect(installed.name).toBe('srt-gw');
    expect(readFileSync(join(app, 'node_modules', 'srt-gw', installed.types), 'utf8')).toContain('startGateway');
  });

  it('type-checks a strict TypeScript consumer of the API', async () => {
    const result = await execFileAsync(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: app }).catch((error: { stdout: string }) => error);
    expect(result.stdout).toBe('');
  });

  it('and rejects one that misuses it', async () => {
    writeFileSync(join(app, 'tsconfig.mistakes.json'), JSON.stringify({ extends: './tsconfig.json', files: ['mistakes.ts'] }));
    const mistakes = await execFileAsync(process.execPath, [TSC, '-p', 'tsconfig.mistakes.json'], { cwd: app }).then(
      () => '',
      (e: { stdout: string }) => e.stdout,
    );
    const errorLines = mistakes.split('\n').filter((line) => /error TS\d+/.test(line));
    // One error per wrong line of MISTAKES_TS (lines 4 to 9), nothing else.
    expect(errorLines.map((line) => /\((\d+),/.exec(line)?.[1])).toEqual(['4', '5', '7', '8', '9']);
  });

  it('runs a JavaScript consumer: a gateway, a denied request, its decisions', async () => {
    const { stdout } = await execFileAsync(process.execPath, ['consumer.mjs'], { cwd: app, env: cleanEnv({ SRT_GW_CA_DIR: join(dir, 'ca') }), timeout: 30_000 });
    expect(JSON.parse(stdout)).toEqual({ status: 403, seen: [['request', 'deny', 'evil.test', 'default-deny']] });
  });
});
