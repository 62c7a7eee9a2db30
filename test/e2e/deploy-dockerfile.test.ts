// The Dockerfile, checked without a Docker engine: its stages, user, ports and health check are read
// from the file, and its runtime stage is reproduced here: the packed package installed with
// production dependencies only, the ENTRYPOINT + CMD parsed from the file run with the image's ENV,
// as the image's USER, on a read-only root where only the VOLUMEs and /tmp are writable, in a
// network namespace of its own (bubblewrap), against the policy in deploy/compose/policy/ mounted
// the way Kubernetes mounts a ConfigMap (files behind a `..data` symlink).
import { spawn, execFile, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { cleanEnv } from '../support/gateway-process.js';
import { ensureBuilt, REPO_ROOT } from '../support/srt-gw-run.js';

const execFileAsync = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// A Dockerfile reader: enough of the format for this repository's file.

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  from: string;
  name: string | null;
  instructions: Instruction[];
}

function parseDockerfile(text: string): { stages: Stage[] } {
  const instructions: Instruction[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const start = index + 1;
    let line = lines[index]!;
    if (/^\s*(#|$)/.test(line)) continue;
    // Continuation lines end in a backslash; comment lines inside a continuation are dropped.
    while (/\\\s*$/.test(line) && index + 1 < lines.length) {
      line = line.replace(/\\\s*$/, ' ');
      index += 1;
      if (/^\s*#/.test(lines[index]!)) continue;
      line += lines[index]!;
    }
    const match = /^\s*(\w+)\s+(.*)$/s.exec(line);
    if (!match) throw new Error(`Dockerfile:${start}: cannot read ${JSON.stringify(line)}`);
    instructions.push({ keyword: match[1]!.toUpperCase(), args: match[2]!.trim(), line: start });
  }
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = instruction.args.split(/\s+/);
      const from = image!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_whole, braced: string | undefined, bare: string | undefined) => globalArgs.get((braced ?? bare)!) ?? '');
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name! : null, instructions: [] });
    } else if (stages.length === 0 && instruction.keyword === 'ARG') {
      const [key, value] = instruction.args.split('=');
      globalArgs.set(key!, value ?? '');
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(instruction);
    }
  }
  return { stages };
}

/** Shell-like words: quotes and backslash escapes, as Docker reads ENV and friends. */
function words(text: string): string[] {
  const result: string[] = [];
  let current = '';
  let quote: string | null = null;
  let inWord = false;
  for (let index = 0; index < text.length; index += 1) {
    const char = text[index]!;
    if (quote !== null) {
      if (char === quote) quote = null;
      else if (char === '\\' && quote === '"' && index + 1 < text.length) current += text[++index];
      else current += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      inWord = true;
    } else if (char === '\\' && index + 1 < text.length) {
      current += text[++index];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) result.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (inWord) result.push(current);
  return result;
}

function execForm(instruction: Instruction): string[] {
  expect(instruction.args.startsWith('['), `Dockerfile:${instruction.line}: ${instruction.keyword} must be in exec form (a JSON array) so that node is PID 1 and gets SIGTERM`).toBe(true);
  return JSON.parse(instruction.args) as string[];
}

function only(stage: Stage, keyword: string): Instruction {
  const found = stage.instructions.filter((instruction) => instruction.keyword === keyword);
  expect(found.length, `the final stage has exactly one ${keyword}`).toBe(1);
  return found[0]!;
}

function flagValue(argv: string[], flag: string): string {
  const index = argv.indexOf(flag);
  expect(index, `the CMD passes ${flag}`).toBeGreaterThan(-1);
  return argv[index + 1]!;
}

const portOf = (address: string) => Number(address.split(':').pop());

const DOCKERFILE = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const { stages } = parseDockerfile(DOCKERFILE);
const finalStage = stages[stages.length - 1]!;
const imageEnv: Record<string, string> = {};
for (const instruction of finalStage.instructions.filter((each) => each.keyword === 'ENV')) {
  const parts = words(instruction.args);
  if (parts.length >= 2 && !parts[0]!.includes('=')) imageEnv[parts[0]!] = parts.slice(1).join(' ');
  else
    for (const part of parts) {
      const at = part.indexOf('=');
      imageEnv[part.slice(0, at)] = part.slice(at + 1);
    }
}
const entrypoint = execForm(only(finalStage, 'ENTRYPOINT'));
const cmd = execForm(only(finalStage, 'CMD'));
const imageArgv = [...entrypoint, ...cmd];
const user = only(finalStage, 'USER').args;
const workdir = only(finalStage, 'WORKDIR').args;
const volumes = finalStage.instructions.filter((each) => each.keyword === 'VOLUME').flatMap((each) => (each.args.startsWith('[') ? (JSON.parse(each.args) as string[]) : words(each.args)));
const exposed = finalStage.instructions.filter((each) => each.keyword === 'EXPOSE').flatMap((each) => words(each.args).map((port) => Number(port.split('/')[0])));
const healthcheck = only(finalStage, 'HEALTHCHECK');
const healthcheckArgv = ((): string[] => {
  const afterOptions = healthcheck.args.replace(/^(--\S+\s+)*/, '');
  expect(afterOptions.startsWith('CMD '), 'HEALTHCHECK runs a CMD').toBe(true);
  return execForm({ ...healthcheck, args: afterOptions.slice(4).trim() });
})();
const runLines = stages.flatMap((stage) => stage.instructions.filter((each) => each.keyword === 'RUN').map((each) => each.args));
/** Docker's default PATH, which the node base image keeps. */
const IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

describe('the Dockerfile', () => {
  it('has a build stage and a runtime stage on node 20 (bookworm-slim or distroless)', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(finalStage.from).toMatch(/^node:20-bookworm-slim$|^gcr\.io\/distroless\/nodejs20/);
    expect(finalStage.instructions.filter((each) => each.keyword === 'COPY').every((each) => /--from=/.test(each.args)), 'the runtime stage takes only what a build stage made').toBe(true);
  });

  it('runs as a numeric non-root user', () => {
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.split(':')[0]), `USER ${user} is root`).not.toBe(0);
  });

  it('builds without the native helpers and installs production dependencies only', () => {
    expect(runLines.some((line) => /npm ci\b[^&]*--ignore-scripts/.test(line))).toBe(true);
    expect(runLines.some((line) => /npm ci\b[^&]*--omit=dev/.test(line))).toBe(true);
    expect(runLines.some((line) => /npm pack\b/.test(line)), 'the runtime files are what npm pack ships').toBe(true);
  });

  it('serves with the policy, CA and listeners named in its CMD, and writes only to its VOLUMEs', () => {
    expect(imageArgv[0]).toBe('node');
    expect(imageArgv[1]).toMatch(/\/dist\/bin\/srt-gw\.js$/);
    expect(imageArgv[2]).toBe('serve');
    const caDir = flagValue(imageArgv, '--ca-dir');
    expect(volumes.some((volume) => caDir === volume || caDir.startsWith(`${volume}/`)), `--ca-dir ${caDir} lies in a VOLUME (${volumes.join(', ')})`).toBe(true);
    expect(volumes).toContain('/tmp');
    expect(imageEnv.SRT_GW_CA_DIR).toBe(caDir);
    // srt-gw's state directory ($XDG_STATE_HOME/srt-gw): issued client tokens' signing key.
    const stateDirectory = `${imageEnv.XDG_STATE_HOME}/srt-gw`;
    expect(volumes.some((volume) => stateDirectory === volume || stateDirectory.startsWith(`${volume}/`)), `${stateDirectory} lies in a VOLUME`).toBe(true);
    expect(flagValue(imageArgv, '--policy')).toMatch(/^\/etc\/srt-gw\/policy\/[^/]+$/);
  });

  it('EXPOSEs the proxy and metrics ports, and its HEALTHCHECK asks /healthz on the metrics port', () => {
    const proxyPort = portOf(flagValue(imageArgv, '--listen'));
    const metricsPort = portOf(flagValue(imageArgv, '--metrics'));
    expect(exposed).toEqual(expect.arrayContaining([proxyPort, metricsPort]));
    expect(healthcheckArgv[0]).toBe('node');
    expect(healthcheckArgv.join(' ')).toContain(`http://127.0.0.1:${metricsPort}/healthz`);
  });

  it('deploy/compose runs the gateway with the same command', () => {
    const compose = YAML.parse(readFileSync(join(REPO_ROOT, 'deploy', 'compose', 'docker-compose.yml'), 'utf8')) as {
      services: { gateway: { command: string; read_only: boolean; build: { context: string } } };
    };
    const gateway = compose.services.gateway;
    expect(gateway.read_only).toBe(true);
    expect(gateway.build.context).toBe('../..');
    const command = gateway.command.replace(/\$\{SRT_GW_STATE:\+--state\}\s*\$\{SRT_GW_STATE:-\}/, '').trim().split(/\s+/);
    expect(command).toEqual(cmd);
  });
});

// ---------------------------------------------------------------------------------------------
// The runtime stage, reproduced.

const skipRuntime = capabilityGate(missingCommand('bwrap'));

/**
 * Runs inside the sandbox, standing in for `docker exec`: it starts the image's command and the
 * local upstream there, and makes requests in the sandbox's network namespace. One JSON request
 * per stdin line, one JSON answer per stdout line.
 */
const DRIVER = String.raw`
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { createInterface } from 'node:readline';

let gateway = null;
let gatewayOut = '';
let gatewayErr = '';
let gatewayExit = null;
const upstreamSeen = [];

function request(options, body) {
  return new Promise((resolve) => {
    const req = http.request(options, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    req.on('error', (error) => resolve({ error: error.code ?? error.message }));
    req.setTimeout(10000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

const ops = {
  async upstream() {
    const server = http.createServer((req, res) => {
      upstreamSeen.push(req.method + ' ' + req.url);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ upstream: true, path: req.url }));
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: server.address().port };
  },
  upstreamSeen: async () => ({ seen: upstreamSeen }),
  async start({ argv, env, cwd }) {
    gateway = spawn(argv[0], argv.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    gateway.stdout.setEncoding('utf8');
    gateway.stderr.setEncoding('utf8');
    gateway.stderr.on('data', (chunk) => (gatewayErr += chunk));
    return await new Promise((resolve) => {
      gateway.once('error', (error) => resolve({ error: error.message }));
      gateway.on('exit', (code, signal) => {
        gatewayExit = { code, signal };
        resolve({ exited: gatewayExit, stdout: gatewayOut, stderr: gatewayErr });
      });
      gateway.stdout.on('data', (chunk) => {
        gatewayOut += chunk;
        for (const line of gatewayOut.split('\n')) {
          try {
            const event = JSON.parse(line);
            if (event.event === 'listening') resolve({ listening: event });
          } catch {}
        }
      });
    });
  },
  output: async () => ({ stdout: gatewayOut, stderr: gatewayErr, exit: gatewayExit }),
  async viaProxy({ proxy, method, url }) {
    const target = new URL(url);
    return request({ host: '127.0.0.1', port: proxy, method, path: url, headers: { host: target.host } });
  },
  get: async ({ url }) => request(url),
  async exec({ argv, env, cwd }) {
    return await new Promise((resolve) => {
      const child = spawn(argv[0], argv.slice(1), { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      child.on('error', (error) => resolve({ code: null, stderr: error.message }));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  },
  async write({ path }) {
    try {
      writeFileSync(path, 'x');
      return { written: true };
    } catch (error) {
      return { written: false, code: error.code };
    }
  },
  async stop() {
    if (gatewayExit === null) {
      const exited = new Promise((resolve) => gateway.once('exit', resolve));
      gateway.kill('SIGTERM');
      await exited;
    }
    return { exit: gatewayExit, stderr: gatewayErr };
  },
};

createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, op, ...args } = JSON.parse(line);
  let result;
  try {
    result = await ops[op](args);
  } catch (error) {
    result = { error: String(error && error.stack || error) };
  }
  process.stdout.write(JSON.stringify({ id, result }) + '\n');
});
process.stdout.write(JSON.stringify({ id: 0, result: { ready: true } }) + '\n');
`;

interface Driver {
  call<T = Record<string, unknown>>(op: string, args?: Record<string, unknown>): Promise<T>;
  close(): Promise<void>;
  stderr(): string;
}

function startDriver(bwrapArgs: string[]): Promise<Driver> {
  const child: ChildProcessWithoutNullStreams = spawn('bwrap', bwrapArgs, { env: { PATH: IMAGE_PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const waiting = new Map<number, (result: unknown) => void>();
  let nextId = 1;
  createInterface({ input: child.stdout }).on('line', (line) => {
    const { id, result } = JSON.parse(line) as { id: number; result: unknown };
    waiting.get(id)?.(result);
    waiting.delete(id);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => {
    for (const resolve of waiting.values()) resolve({ error: `the sandbox exited: ${stderr}` });
    waiting.clear();
  });
  const driver: Driver = {
    call: (op, args = {}) =>
      new Promise((resolve) => {
        const id = nextId++;
        waiting.set(id, resolve as (result: unknown) => void);
        child.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
      }),
    close: async () => {
      child.stdin.end();
      child.kill('SIGTERM');
      await exited;
    },
    stderr: () => stderr,
  };
  return new Promise((resolve, reject) => {
    waiting.set(0, () => resolve(driver));
    void exited.then(() => reject(new Error(`bwrap exited before the driver was ready:\n${stderr}`)));
  });
}

/**
 * Writes `files` into `dir` the way the kubelet updates a mounted ConfigMap: a new timestamped
 * directory, a `..data_tmp` symlink to it renamed over `..data`, user-visible symlinks through
 * `..data`, then the old directory removed.
 */
function writeConfigMapVolume(dir: string, files: Record<string, string>): void {
  const previous = existsSync(join(dir, '..data')) ? readlinkSync(join(dir, '..data')) : null;
  const generation = `..${new Date().toISOString().replace(/[-:T]/g, '_').replace('Z', '')}${randomBytes(4).toString('hex')}`;
  mkdirSync(join(dir, generation), { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, generation, name), content);
  symlinkSync(generation, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  for (const name of Object.keys(files)) if (!existsSync(join(dir, name))) symlinkSync(posix.join('..data', name), join(dir, name));
  if (previous !== null) rmSync(join(dir, previous), { recursive: true, force: true });
}

/** bwrap arguments for the host's system directories, read-only, as the image's would be. */
function systemMounts(): string[] {
  const args: string[] = [];
  for (const name of ['usr', 'bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const path = `/${name}`;
    if (!existsSync(path)) continue;
    if (lstatSync(path).isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
    else args.push('--ro-bind', path, path);
  }
  // /etc entry by entry, so the image's /etc/srt-gw can be mounted beside them.
  for (const name of readdirSync('/etc')) {
    if (name === 'srt-gw') continue;
    const path = `/etc/${name}`;
    if (lstatSync(path).isSymbolicLink()) args.push('--symlink', readlinkSync(path), path);
    else args.push('--ro-bind-try', path, path);
  }
  // node itself, when it is installed outside /usr (nvm, a tarball under /opt).
  const nodePrefix = dirname(dirname(realpathSync(process.execPath)));
  if (!nodePrefix.startsWith('/usr')) args.push('--ro-bind', nodePrefix, nodePrefix);
  return args;
}

describe.skipIf(skipRuntime !== null)("the image's runtime stage, reproduced", () => {
  const appDir = dirname(dirname(dirname(imageArgv[1]!))); // /opt/srt-gw from /opt/srt-gw/dist/bin/srt-gw.js
  const policyPath = flagValue(imageArgv, '--policy');
  const stateVolume = volumes.find((volume) => flagValue(imageArgv, '--ca-dir').startsWith(`${volume}/`))!;
  const proxyPort = portOf(flagValue(imageArgv, '--listen'));
  const metricsPort = portOf(flagValue(imageArgv, '--metrics'));
  const [uid, gid] = user.split(':');
  const gatewayEnv = { PATH: `${dirname(process.execPath)}:${IMAGE_PATH}`, ...imageEnv };

  let scratch: string;
  let app: string;
  let state: string;
  let policyDir: string;
  let installedVia: string;
  let driver: Driver;
  let upstreamPort: number;
  let startResult: { listening?: { proxy: string; metrics: string; ca: string }; exited?: unknown; stderr?: string; error?: string };

  beforeAll(async () => {
    ensureBuilt();
    scratch = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-image-')));
    app = join(scratch, 'app');
    state = join(scratch, 'state');
    policyDir = join(scratch, 'policy');
    const driverDir = join(scratch, 'driver');
    for (const dir of [app, state, policyDir, driverDir]) mkdirSync(dir, { mode: 0o700 });
    writeFileSync(join(driverDir, 'driver.mjs'), DRIVER);

    // The build stage: npm pack, unpacked, production dependencies from the lockfile.
    const { stdout } = await execFileAsync('npm', ['pack', '--json', '--pack-destination', scratch], { cwd: REPO_ROOT, env: cleanEnv(), maxBuffer: 1 << 24 });
    const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
    await execFileAsync('tar', ['-xzf', join(scratch, filename), '-C', app, '--strip-components=1', '--no-same-owner']);
    writeFileSync(join(app, 'package-lock.json'), readFileSync(join(REPO_ROOT, 'package-lock.json')));
    try {
      await execFileAsync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--fetch-retries=0', '--no-audit', '--no-fund'], {
        cwd: app,
        env: cleanEnv(),
        maxBuffer: 1 << 24,
        timeout: 180_000,
      });
      installedVia = 'npm ci --omit=dev';
    } catch (error) {
      // No registry and a cold cache: the same packages, linked from this checkout's node_modules.
      process.stderr.write(`[deploy-dockerfile] npm ci --omit=dev failed (${String((error as { stderr?: string }).stderr).split('\n')[0]}); linking production dependencies from this checkout\n`);
      const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
      rmSync(join(app, 'node_modules'), { recursive: true, force: true });
      for (const [path, entry] of Object.entries(lock.packages)) {
        if (!path.startsWith('node_modules/') || entry.dev || entry.link || path.split('node_modules/').length > 2) continue;
        mkdirSync(join(app, path, '..'), { recursive: true });
        symlinkSync(join(REPO_ROOT, path), join(app, path));
      }
      installedVia = 'symlinks';
    }
    rmSync(join(app, 'package-lock.json'));

    writeConfigMapVolume(policyDir, { [posix.basename(policyPath)]: readFileSync(join(REPO_ROOT, 'deploy', 'compose', 'policy', 'policy.yaml'), 'utf8') });

    driver = await startDriver([
      '--unshare-user', '--uid', uid!, '--gid', gid ?? uid!,
      '--unshare-net', '--unshare-pid', '--unshare-ipc', '--die-with-parent',
      ...systemMounts(),
      ...(installedVia === 'symlinks' ? ['--ro-bind', REPO_ROOT, REPO_ROOT] : []),
      '--ro-bind', app, appDir,
      '--ro-bind', policyDir, posix.dirname(policyPath),
      '--bind', state, stateVolume,
      '--tmpfs', '/tmp',
      '--dev', '/dev',
      '--proc', '/proc',
      '--ro-bind', driverDir, '/run/image-test',
      // The image's root file system: read-only, with the volumes above still writable.
      '--remount-ro', '/',
      '--chdir', workdir,
      'node', '/run/image-test/driver.mjs',
    ]);
    ({ port: upstreamPort } = await driver.call<{ port: number }>('upstream'));
    // The image's ENTRYPOINT + CMD; the test only adds where the policy's hosts live.
    startResult = await driver.call('start', {
      argv: [...imageArgv, '--resolve', 'docs.example.test=127.0.0.1', '--resolve', 'api.example.test=127.0.0.1'],
      env: gatewayEnv,
      cwd: workdir,
    });
  }, 300_000);

  afterAll(async () => {
    await driver?.call('stop');
    await driver?.close();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it(`starts from ENTRYPOINT + CMD as UID ${user}, creating its CA in the state volume and nothing else`, async () => {
    expect(startResult.listening, JSON.stringify(startResult)).toBeDefined();
    expect(startResult.listening).toMatchObject({ proxy: `0.0.0.0:${proxyPort}`, metrics: `0.0.0.0:${metricsPort}`, ca: `${flagValue(imageArgv, '--ca-dir')}/ca.pem` });
    expect(readdirSync(join(state, flagValue(imageArgv, '--ca-dir').slice(stateVolume.length + 1))).sort()).toEqual(['ca-key.pem', 'ca.pem']);
    // The root is read-only and HOME does not exist, so nothing can have gone anywhere else.
    expect(await driver.call('write', { path: `${appDir}/probe` })).toEqual({ written: false, code: 'EROFS' });
    expect(await driver.call('write', { path: '/probe' })).toEqual({ written: false, code: 'EROFS' });
    expect(imageEnv.HOME && existsSync(imageEnv.HOME)).toBeFalsy();
    expect(readdirSync(join(app, 'dist', 'bin')).filter((name) => name.endsWith('.v8cache'))).toEqual([]);
  });

  it('has production dependencies only', () => {
    expect(['npm ci --omit=dev', 'symlinks']).toContain(installedVia);
    expect(existsSync(join(app, 'node_modules', 'undici'))).toBe(true);
    for (const devOnly of ['vitest', 'typescript', 'esbuild', 'kubernetes-models']) expect(existsSync(join(app, 'node_modules', devOnly)), devOnly).toBe(false);
  });

  it("decides requests through it with deploy/compose's policy: its rule allows, default deny refuses", async () => {
    const allowed = await driver.call<{ status: number; body: string }>('viaProxy', { proxy: proxyPort, method: 'GET', url: `http://docs.example.test:${upstreamPort}/guide/start` });
    expect(allowed.status, JSON.stringify(allowed)).toBe(200);
    expect(JSON.parse(allowed.body)).toEqual({ upstream: true, path: '/guide/start' });
    const posted = await driver.call<{ status: number; headers: Record<string, string> }>('viaProxy', { proxy: proxyPort, method: 'POST', url: `http://docs.example.test:${upstreamPort}/guide/start` });
    expect(posted.status).toBe(403);
    const unlisted = await driver.call<{ status: number; headers: Record<string, string>; body: string }>('viaProxy', { proxy: proxyPort, method: 'GET', url: `http://unlisted.example.test:${upstreamPort}/` });
    expect(unlisted.status).toBe(403);
    expect(JSON.parse(unlisted.body)).toMatchObject({ error: 'denied', rule: 'default-deny' });
    expect(unlisted.headers['x-srt-gw-reason']).toBeTruthy();
    expect((await driver.call<{ seen: string[] }>('upstreamSeen')).seen).toEqual(['GET /guide/start']);
  });

  it('serves /metrics, /healthz and /readyz, and passes its HEALTHCHECK', async () => {
    const metrics = await driver.call<{ status: number; body: string }>('get', { url: `http://127.0.0.1:${metricsPort}/metrics` });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('srtgw_');
    const health = await driver.call<{ status: number }>('get', { url: `http://127.0.0.1:${metricsPort}/healthz` });
    expect(health.status).toBe(200);
    const check = await driver.call<{ code: number; stderr: string }>('exec', { argv: healthcheckArgv, env: gatewayEnv, cwd: workdir });
    expect(check.code, check.stderr).toBe(0);
    const ready = await driver.call<{ status: number }>('get', { url: `http://127.0.0.1:${metricsPort}/readyz` });
    expect(ready.status).toBe(200);
  });

  it('follows a ConfigMap update (the kubelet swaps the ..data symlink): the new policy decides', async () => {
    const before = await driver.call<{ status: number }>('viaProxy', { proxy: proxyPort, method: 'GET', url: `http://api.example.test:${upstreamPort}/v1/items` });
    expect(before.status).toBe(403);
    writeConfigMapVolume(policyDir, { [posix.basename(policyPath)]: 'version: 1\nrules:\n  - id: api-read\n    host: api.example.test\n    methods: [GET]\n' });
    // Waits for the gateway's own report of the reload, not for a time.
    const deadline = Date.now() + 20_000;
    let output = await driver.call<{ stderr: string }>('output');
    while (!output.stderr.includes('policy reloaded') && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      output = await driver.call<{ stderr: string }>('output');
    }
    expect(output.stderr, 'the gateway reports the reload').toContain('policy reloaded');
    const after = await driver.call<{ status: number }>('viaProxy', { proxy: proxyPort, method: 'GET', url: `http://api.example.test:${upstreamPort}/v1/items` });
    expect(after.status).toBe(200);
    const docs = await driver.call<{ status: number }>('viaProxy', { proxy: proxyPort, method: 'GET', url: `http://docs.example.test:${upstreamPort}/guide/start` });
    expect(docs.status).toBe(403);
  });

  it('exits 0 on SIGTERM (docker stop, a pod terminating)', async () => {
    const { exit } = await driver.call<{ exit: { code: number | null; signal: string | null } }>('stop');
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
