// The macOS jail on a real Mac (.github/workflows/macos.yml): curl, node and python reach an HTTPS
// upstream only through the gateway; a program that connects elsewhere is refused, not let out; a
// name does not resolve inside; a hidden file cannot be read and nothing outside the working
// directory can be written. Driven through the library API (runInJail with a MacosJail).
//
// On any other platform there is no Seatbelt: one test states that and checks that the jail
// refuses to start there. It passes rather than skips, because scripts/run-tests.mjs counts every
// skip as a failure under CI=true, and this is the one absence that is not a missing capability.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSrtGwError, ErrorCodes } from '../../errors.js';
import { runInJail } from '../../jail/run-in-jail.js';
import { MacosJail, type MacosJailedProcess } from '../../jail/macos/macos-jail.js';
import type { SeatbeltDenial } from '../../jail/macos/seatbelt-violations.js';
import { parsePolicy } from '../../policies/loader.js';
import { cleanEnv, REPO_ROOT } from '../support/gateway-process.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const onMac = process.platform === 'darwin';

if (!onMac) {
  describe('the macOS jail', () => {
    it(`is not applicable on ${process.platform}: Seatbelt (sandbox-exec) exists only on macOS; .github/workflows/macos.yml runs these tests on a macOS runner`, () => {
      process.stderr.write(`[not applicable] test/e2e/jail-macos.test.ts: no Seatbelt on ${process.platform}\n`);
      let refusal: unknown = null;
      try {
        new MacosJail().checkAvailable();
      } catch (error) {
        refusal = error;
      }
      expect(isSrtGwError(refusal, ErrorCodes.JAIL_UNAVAILABLE)).toBe(true);
    });
  });
} else {
  const NAME = 'echo.example.test';
  let root = '';
  let workdir = '';
  let pki: TestPki | undefined;
  let upstream: Upstream | undefined;

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-jail-macos-')));
    workdir = join(root, 'project');
    mkdirSync(join(workdir, 'secret'), { recursive: true });
    writeFileSync(join(workdir, 'secret/token'), 'top-secret-token\n');
    pki = createTestPki([NAME]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [NAME] });
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  interface MacRun {
    exitCode: number;
    stdout: string;
    stderr: string;
    gatewayDenials: string[];
    seatbeltDenials: SeatbeltDenial[];
  }

  const POLICY = `version: 1
rules:
  - id: allow-echo
    host: ${NAME}
filesystem:
  denyRead: ["secret/"]
`;

  async function runMac(command: string, args: string[], policyText = POLICY): Promise<MacRun> {
    let stdout = '';
    let stderr = '';
    let jailed: MacosJailedProcess | undefined;
    const policyPath = join(root, 'policy.yaml');
    writeFileSync(policyPath, policyText);
    const result = await runInJail({
      command,
      args,
      policy: parsePolicy(policyText, join(workdir, '.srt-gw.yaml')),
      policyFiles: [policyPath],
      cwd: workdir,
      env: cleanEnv(),
      caDir: join(root, 'srt-gw-ca'),
      upstreamCaFiles: [pki!.ca.certPath],
      resolve: new Map([[NAME, ['127.0.0.1']]]),
      stdio: ['ignore', 'pipe', 'pipe'],
      jail: new MacosJail(),
      onStart: ({ process }) => {
        jailed = process as MacosJailedProcess;
        process.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
        process.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      },
    });
    const seatbelt = jailed ? await jailed.violations() : { denials: [] };
    // Recorded for whoever verifies the violation-log format on a Mac (docs/macos.md).
    if (seatbelt.denials.length > 0) process.stderr.write(`[seatbelt] ${command} ${args.join(' ').slice(0, 80)}: ${JSON.stringify(seatbelt.denials)}\n`);
    return {
      exitCode: result.exitCode,
      stdout,
      stderr,
      gatewayDenials: result.denials.map((d) => `${d.kind} ${d.host}:${d.port ?? ''} ${d.reason}`),
      seatbeltDenials: seatbelt.denials,
    };
  }

  const url = () => upstream!.url('/hello', NAME);

  describe('the macOS jail', () => {
    it('runs a command at all (the generated profile compiles and lets a program start)', async () => {
      const run = await runMac('/bin/sh', ['-c', 'echo started; pwd; echo ok > written-in-cwd.txt']);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toContain('started');
      expect(existsSync(join(workdir, 'written-in-cwd.txt'))).toBe(true);
    });

    it('curl reaches the upstream through the gateway, trusting its CA through the variables', async () => {
      const run = await runMac('curl', ['-sS', '--fail', '--max-time', '20', url()]);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ method: 'GET', path: '/hello' });
    });

    it('curl to a host the policy does not allow gets the gateway\'s 403', async () => {
      const run = await runMac('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', 'https://not-allowed.example.test/']);
      expect(run.stdout).toMatch(/^(403|000)$/);
      expect(run.gatewayDenials.join('\n')).toContain('not-allowed.example.test');
    });

    it('node reaches the upstream through the gateway', async () => {
      const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
      // NODE_USE_ENV_PROXY makes fetch() use the proxy from Node 24.0 / 22.21; older Node needs an agent that reads the variables.
      const builtIn = major >= 24 || (major === 22 && minor >= 21);
      const script = builtIn
        ? `fetch(${JSON.stringify(url())}).then(async (r) => console.log(r.status, await r.text()))`
        : `import(${JSON.stringify(join(REPO_ROOT, 'node_modules/undici/index.js'))}).then(async (m) => { const u = m.default ?? m; const r = await u.fetch(${JSON.stringify(url())}, { dispatcher: new u.EnvHttpProxyAgent() }); console.log(r.status, await r.text()); })`;
      const run = await runMac(process.execPath, ['-e', script]);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^200 /);
    });

    it('python reaches the upstream through the gateway', async () => {
      const run = await runMac('python3', ['-c', `import urllib.request; print(urllib.request.urlopen(${JSON.stringify(url())}, timeout=20).read().decode())`]);
      expect(run.exitCode, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ path: '/hello' });
    });

    it('a raw connect to anything but the gateway is refused, even to a loopback port that is listening', async () => {
      const code = `
import socket, sys
for host, port in (("127.0.0.1", ${upstream!.port}), ("203.0.113.9", 443)):
    try:
        socket.create_connection((host, port), timeout=5).close()
        print("CONNECTED", host, port)
    except OSError as error:
        print("refused", host, port, error.errno)
`;
      const connectionsBefore = upstream!.connections;
      const run = await runMac('python3', ['-c', code]);
      expect(run.stdout).not.toContain('CONNECTED');
      expect(run.stdout.match(/^refused /gm)).toHaveLength(2);
      // Without the jail the first connect succeeds: the upstream is listening there.
      expect(upstream!.connections).toBe(connectionsBefore);
    });

    it('no name resolves inside (names are resolved by the gateway)', async () => {
      const run = await runMac('python3', ['-c', 'import socket\ntry:\n    print(socket.getaddrinfo("example.com", 443))\nexcept OSError as error:\n    print("unresolved", error)']);
      expect(run.stdout).toContain('unresolved');
    });

    it('a hidden file cannot be read, under any spelling of its path', async () => {
      // APFS is case-insensitive by default: SECRET/token reaches the same file; Seatbelt must refuse it too.
      const run = await runMac('/bin/sh', ['-c', 'for p in secret/token SECRET/token ./secret/../secret/token; do cat "$p" 2>/dev/null && echo "READ $p"; done; echo done']);
      expect(run.stdout).not.toContain('top-secret-token');
      expect(run.stdout).not.toContain('READ');
      expect(run.stdout).toContain('done');
    });

    it.each([
      ['without jail.allowLocalBinding, listening is refused', POLICY, 'refused'],
      ['with jail.allowLocalBinding: true, the command can listen on loopback', `${POLICY}jail:\n  allowLocalBinding: true\n`, 'listening'],
    ])('%s', async (_what, policyText, expected) => {
      const code = `
import socket
try:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    print("listening", server.getsockname()[1])
except OSError as error:
    print("refused", error.errno)
`;
      const run = await runMac('python3', ['-c', code], policyText);
      expect(run.stdout.trim().split(' ')[0], run.stderr).toBe(expected);
    });

    it('nothing outside the working directory and TMPDIR can be written', async () => {
      const outside = join(homedir(), `srt-gw-e2e-must-not-exist-${process.pid}`);
      const run = await runMac('/bin/sh', ['-c', `touch ${JSON.stringify(outside)} 2>/dev/null && echo WROTE; echo x > "$TMPDIR/scratch" && echo tmp-ok`]);
      expect(run.stdout).not.toContain('WROTE');
      expect(existsSync(outside)).toBe(false);
      expect(run.stdout).toContain('tmp-ok');
    });
  });
}
