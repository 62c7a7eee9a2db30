// `srt-gw run` with real, unmodified clients in the real jail: git, npm, pip, node fetch, python
// urllib, curl, wget (and python requests where installed) reach local fakes that speak the real
// protocol over HTTPS (git's own http-backend, an npm registry, a PEP 503 index), with no flag or
// variable from the test to make them trust the gateway — the jail provides that. Each also meets
// a denial, and the fake's request log proves the refused request never arrived.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { createBareRepository, gitHttpBackend, hostGit, type BareRepository } from '../support/fake-git-server.js';
import { startFakeHttpsServer, type FakeHttpsServer, type LoggedRequest, type RequestHandler } from '../support/fake-https-server.js';
import { packNpmPackage, publishNpmPackage } from '../support/fake-npm-registry.js';
import { buildWheel, missingPip, publishWheel, python3Executable, type Wheel } from '../support/fake-pypi-index.js';
import type { AuditLine } from '../support/gateway-process.js';
import { createJailWorkdir, describeRun, jailTestEnv, runInJailCli, type JailRunResult } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('bwrap'),
  missingCommand('git'),
  missingCommand('npm'),
  missingCommand('python3'),
  missingCommand('curl'),
  missingCommand('openssl'),
);
const inCi = process.env.CI === 'true';

const GIT = 'git.example.test';
const REGISTRY = 'registry.example.test';
const PYPI = 'pypi.example.test';
const ECHO = 'echo.example.test';
/** Never allowed by any policy here; the gateway could resolve it (to the same fakes), so only the policy stops it. */
const EVIL = 'evil.example.test';
const NAMES = [GIT, REGISTRY, PYPI, ECHO, EVIL];
/** python3 by its real path, not through a version manager's shim (see python3Executable). */
const PYTHON3 = skip === null ? python3Executable() : 'python3';

let root = '';
let pki: TestPki | undefined;
let caDir = '';

beforeAll(() => {
  if (skip !== null) return;
  root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-jail-clients-')));
  pki = createTestPki(NAMES);
  caDir = join(root, 'srt-gw-ca');
});

afterAll(() => {
  pki?.cleanup();
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

type PolicyFlags = { allow: string[] } | { policyYaml: string };

/** `srt-gw run` with the test CA trusted upstream and every test name resolved to 127.0.0.1. */
function jailRun(cwd: string, command: string[], policy: PolicyFlags, env?: Record<string, string>): Promise<JailRunResult> {
  return runInJailCli({ cwd, command, ...policy, env, caDir, upstreamCa: [pki!.ca.certPath], resolveToLoopback: NAMES, timeoutMs: 40_000 });
}

function fakeServer(handler?: RequestHandler): Promise<FakeHttpsServer> {
  return startFakeHttpsServer({ cert: pki!.server.cert, key: pki!.server.key, handler });
}

const requestLine = (request: LoggedRequest) => `${request.method} ${request.path}`;
const isDeniedRequest = (method: string, path: string) => (line: AuditLine) =>
  line.kind === 'request' && line.decision === 'deny' && line.method === method && line.path === path;
const isDeniedName = (name: string) => (line: AuditLine) => line.kind === 'dns' && line.name === name && (line.decision === 'denied' || line.decision === 'refused');

describe.skipIf(skip !== null)('git clone and push over smart HTTP (git http-backend)', () => {
  const README = 'cloned through srt-gw\n';
  // Enough for clone and fetch; a push needs POST .../git-receive-pack, which no rule allows.
  const READ_ONLY_POLICY = [
    'version: 1',
    'rules:',
    '  - id: git-read',
    `    host: ${GIT}`,
    '    methods: [GET]',
    '  - id: git-upload-pack',
    `    host: ${GIT}`,
    '    methods: [POST]',
    '    paths: ["/*/git-upload-pack"]',
    '',
  ].join('\n');
  let server: FakeHttpsServer;
  let repo: BareRepository;
  let projectRoot = '';

  beforeAll(async () => {
    projectRoot = join(root, 'git-server');
    mkdirSync(projectRoot, { recursive: true });
    repo = createBareRepository(projectRoot, 'repo', { 'README.txt': README });
    server = await fakeServer(gitHttpBackend(projectRoot));
  });

  afterAll(async () => {
    await server?.close();
  });

  /** A host-side clone (no network) whose origin is the fake's HTTPS URL, with one commit to push. */
  function cloneWithCommitToPush(name: string): { cwd: string; head: string } {
    const cwd = createJailWorkdir(root, name);
    const clone = join(cwd, 'clone');
    hostGit(['clone', '-q', repo.path, clone]);
    hostGit(['remote', 'set-url', 'origin', server.url(GIT, '/repo.git')], clone);
    writeFileSync(join(clone, `${name}.txt`), `pushed from ${name}\n`);
    hostGit(['add', '.'], clone);
    hostGit(['commit', '-q', '-m', `push from ${name}`], clone);
    return { cwd, head: hostGit(['rev-parse', 'HEAD'], clone) };
  }

  it('git clone https://git.example.test/repo.git under a read-only policy gets the commit', async () => {
    const cwd = createJailWorkdir(root, 'git-clone');
    const result = await jailRun(cwd, ['git', 'clone', server.url(GIT, '/repo.git'), 'clone'], { policyYaml: READ_ONLY_POLICY });
    expect(result.code, describeRun(result)).toBe(0);
    expect(readFileSync(join(cwd, 'clone', 'README.txt'), 'utf8')).toBe(README);
    expect(hostGit(['rev-parse', 'HEAD'], join(cwd, 'clone'))).toBe(repo.head);
    expect(server.requests.map(requestLine)).toEqual(expect.arrayContaining(['GET /repo.git/info/refs?service=git-upload-pack', 'POST /repo.git/git-upload-pack']));
    expect(new Set(server.requests.map((request) => request.servername))).toEqual(new Set([GIT]));
  });

  it('git push is refused with 403 by the read-only policy; the receive-pack POST never reaches the server', async () => {
    const { cwd } = cloneWithCommitToPush('git-push-denied');
    const before = server.requests.length;
    const result = await jailRun(cwd, ['git', '-C', 'clone', 'push', 'origin', 'main'], { policyYaml: READ_ONLY_POLICY });
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(result.stderr).toMatch(/\b403\b/);
    const during = server.requests.slice(before).map(requestLine);
    expect(during).toContain('GET /repo.git/info/refs?service=git-receive-pack');
    expect(during.filter((line) => line.startsWith('POST '))).toEqual([]);
    const denied = result.audit.find(isDeniedRequest('POST', '/repo.git/git-receive-pack'));
    expect(denied, JSON.stringify(result.audit)).toMatchObject({ host: GIT, rule: 'default-deny', status: 403 });
    expect(result.stderr).toContain('POST /repo.git/git-receive-pack');
    expect(hostGit(['rev-parse', 'main'], repo.path)).toBe(repo.head);
  });

  it('the same push goes through when the policy allows the host (so only the policy refused it)', async () => {
    const { cwd, head } = cloneWithCommitToPush('git-push-allowed');
    const result = await jailRun(cwd, ['git', '-C', 'clone', 'push', 'origin', 'main'], { allow: [GIT] });
    expect(result.code, describeRun(result)).toBe(0);
    expect(server.requests.map(requestLine)).toContain('POST /repo.git/git-receive-pack');
    expect(hostGit(['rev-parse', 'main'], repo.path)).toBe(head);
  });
});

describe.skipIf(skip !== null)('npm install from a registry', () => {
  const NAME = 'srtgw-jail-probe';
  const NEEDS_EVIL = 'srtgw-needs-evil';
  const EVIL_DEP = 'srtgw-evil-dep';
  let server: FakeHttpsServer;
  const npmInstall = (name: string) => [
    'npm', 'install',
    '--registry', server.url(REGISTRY, '/'),
    '--cache', '/tmp/npm-cache',
    '--no-audit', '--no-fund', '--no-update-notifier',
    // One attempt: a refused download must fail now, not after npm's 10 s+ retry back-off.
    '--fetch-retries', '0',
    name,
  ];

  function npmProject(name: string): string {
    const cwd = createJailWorkdir(root, name);
    writeFileSync(join(cwd, 'package.json'), `${JSON.stringify({ name, version: '1.0.0', private: true }, null, 2)}\n`);
    return cwd;
  }

  beforeAll(async () => {
    const work = join(root, 'npm-packages');
    mkdirSync(work, { recursive: true });
    server = await fakeServer();
    publishNpmPackage(server, packNpmPackage(work, { name: NAME, version: '1.0.0', indexJs: "module.exports = 'installed through srt-gw';\n" }), REGISTRY);
    publishNpmPackage(
      server,
      packNpmPackage(work, { name: NEEDS_EVIL, version: '1.0.0', indexJs: 'module.exports = 1;\n', dependencies: { [EVIL_DEP]: '1.0.0' } }),
      REGISTRY,
    );
    publishNpmPackage(server, packNpmPackage(work, { name: EVIL_DEP, version: '1.0.0', indexJs: 'module.exports = 2;\n' }), EVIL);
  });

  afterAll(async () => {
    await server?.close();
  });

  it(`npm install ${NAME} fetches packument and tarball and installs into the cwd`, async () => {
    const cwd = npmProject('npm-install');
    const result = await jailRun(cwd, npmInstall(NAME), { allow: [REGISTRY] });
    expect(result.code, describeRun(result)).toBe(0);
    expect(readFileSync(join(cwd, 'node_modules', NAME, 'index.js'), 'utf8')).toContain('installed through srt-gw');
    expect(server.requests.map(requestLine)).toEqual(expect.arrayContaining([`GET /${NAME}`, `GET /${NAME}/-/${NAME}-1.0.0.tgz`]));
    const lock = JSON.parse(readFileSync(join(cwd, 'package-lock.json'), 'utf8')) as { packages: Record<string, { resolved?: string }> };
    expect(lock.packages[`node_modules/${NAME}`]?.resolved).toBe(server.url(REGISTRY, `/${NAME}/-/${NAME}-1.0.0.tgz`));
  });

  it('a dependency whose tarball is on a host the policy does not allow fails the install', async () => {
    const cwd = npmProject('npm-install-evil');
    const before = server.requests.length;
    const result = await jailRun(cwd, npmInstall(NEEDS_EVIL), { allow: [REGISTRY] });
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(existsSync(join(cwd, 'node_modules', EVIL_DEP))).toBe(false);
    const during = server.requests.slice(before);
    // The registry was asked for both packuments; the tarball on the other host never was.
    expect(during.map(requestLine)).toEqual(expect.arrayContaining([`GET /${NEEDS_EVIL}`, `GET /${EVIL_DEP}`]));
    expect(during.filter((request) => request.authority?.startsWith(EVIL) || request.servername === EVIL)).toEqual([]);
    expect(result.audit.some(isDeniedName(EVIL)), JSON.stringify(result.audit)).toBe(true);
    expect(result.stderr).toContain(EVIL);
  });
});

const pipMissing = skip === null ? missingPip() : null;
// A missing pip skips only these tests, and only outside CI; under CI they fail (capabilityGate throws).
const pipSkip = pipMissing !== null && !inCi ? capabilityGate(pipMissing) : null;

describe.skipIf(skip !== null || pipSkip !== null)('pip from a PEP 503 simple index', () => {
  const MESSAGE = 'imported through srt-gw';
  let server: FakeHttpsServer;
  let wheel: Wheel;
  // The host's pip configuration files (extra indexes, find-links) stay out of it.
  const PIP_ENV = { PIP_CONFIG_FILE: '/dev/null' };
  const pip = (...args: string[]) => [
    PYTHON3, '-m', 'pip', ...args,
    '--index-url', server.url(PYPI, '/simple/'),
    '--no-cache-dir', '--disable-pip-version-check',
    // One attempt, so a refused download fails now, not after pip's back-off.
    '--retries', '0', '--timeout', '20',
  ];
  const inShell = (script: string) => ['sh', '-c', script];
  const quote = (args: string[]) => args.map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ');

  beforeAll(async () => {
    if (pipMissing !== null) capabilityGate(pipMissing); // under CI: throws, failing these tests
    const work = join(root, 'pypi-packages');
    mkdirSync(work, { recursive: true });
    server = await fakeServer();
    wheel = buildWheel(work, 'srtgwprobe', '1.0', `MESSAGE = ${JSON.stringify(MESSAGE)}\n`);
    publishWheel(server, wheel, PYPI);
    publishWheel(server, buildWheel(work, 'srtgwevil', '1.0', 'MESSAGE = "evil"\n'), EVIL);
  });

  afterAll(async () => {
    await server?.close();
  });

  it('pip download --no-deps -d /tmp/dl gets the wheel, byte for byte', async () => {
    const cwd = createJailWorkdir(root, 'pip-download');
    const download = pip('download', '--no-deps', '-d', '/tmp/dl', wheel.name);
    const result = await jailRun(cwd, inShell(`${quote(download)} && sha256sum /tmp/dl/*`), { allow: [PYPI] }, PIP_ENV);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toContain(`${wheel.sha256}  /tmp/dl/${wheel.fileName}`);
    expect(server.requests.map(requestLine)).toEqual(expect.arrayContaining([`GET /simple/${wheel.name}/`, `GET /files/${wheel.fileName}`]));
  });

  it('pip install --target into the cwd, then the package imports', async () => {
    const cwd = createJailWorkdir(root, 'pip-install');
    const install = pip('install', '--no-deps', '--target', 'site-packages', wheel.name);
    const importIt = [PYTHON3, '-c', `import sys; sys.path.insert(0, "site-packages"); import ${wheel.name}; print(${wheel.name}.MESSAGE)`];
    const result = await jailRun(cwd, inShell(`${quote(install)} && ${quote(importIt)}`), { allow: [PYPI] }, PIP_ENV);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toContain(MESSAGE);
    expect(readFileSync(join(cwd, 'site-packages', wheel.name, '__init__.py'), 'utf8')).toContain(MESSAGE);
  });

  it('a file linked on a host the policy does not allow fails the download', async () => {
    const cwd = createJailWorkdir(root, 'pip-download-evil');
    const before = server.requests.length;
    const result = await jailRun(cwd, pip('download', '--no-deps', '-d', '/tmp/dl', 'srtgwevil'), { allow: [PYPI] }, PIP_ENV);
    expect(result.code, describeRun(result)).not.toBe(0);
    const during = server.requests.slice(before);
    expect(during.map(requestLine)).toContain('GET /simple/srtgwevil/');
    expect(during.filter((request) => request.authority?.startsWith(EVIL) || request.servername === EVIL)).toEqual([]);
    expect(result.audit.some(isDeniedName(EVIL)), JSON.stringify(result.audit)).toBe(true);
  });
});

interface HttpsClient {
  name: string;
  /** Null when the client can run here. */
  missing: () => string | null;
  /** A GET of `url` printing the body on stdout, with no option about certificates or proxies. */
  command: (url: string) => string[];
}

function missingPythonModule(module: string): string | null {
  try {
    execFileSync('python3', ['-c', `import ${module}`], { env: jailTestEnv(), stdio: 'ignore', timeout: 20_000 });
    return null;
  } catch {
    return `python3 module ${module} is not installed`;
  }
}

const NODE_FETCH = 'fetch(process.argv[1]).then(async (r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); process.stdout.write(await r.text()); })' +
  '.catch((e) => { console.error(e.cause ?? e); process.exit(1); })';
const PYTHON_URLLIB = 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=20).read().decode())';
const PYTHON_REQUESTS = 'import sys, requests; r = requests.get(sys.argv[1], timeout=20); r.raise_for_status(); sys.stdout.write(r.text)';

/** A gRPC call with node:http2, which knows nothing of proxies: only the jail's redirect can carry it. */
const NODE_GRPC_CALL = [
  "const http2 = require('node:http2');",
  'const url = new URL(process.argv[1]);',
  'const session = http2.connect(url.origin);',
  "session.on('error', (e) => { console.error(e); process.exit(1); });",
  "const message = Buffer.from('hello over grpc');",
  "const stream = session.request({ ':method': 'POST', ':path': url.pathname, 'content-type': 'application/grpc', te: 'trailers' });",
  'let status = 0; let trailers = {}; const chunks = [];',
  "stream.on('response', (h) => (status = h[':status']));",
  "stream.on('trailers', (t) => (trailers = t));",
  "stream.on('data', (c) => chunks.push(c));",
  "stream.on('end', () => { process.stdout.write(JSON.stringify({ status, grpcStatus: trailers['grpc-status'], reply: Buffer.concat(chunks).subarray(5).toString() })); session.close(); });",
  'stream.end(Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]));',
].join('\n');

const CLIENTS: HttpsClient[] = [
  { name: 'node fetch', missing: () => null, command: (url) => ['node', '-e', NODE_FETCH, url] },
  { name: 'python3 urllib', missing: () => null, command: (url) => [PYTHON3, '-c', PYTHON_URLLIB, url] },
  { name: 'curl', missing: () => null, command: (url) => ['curl', '-sS', '--fail', '--max-time', '20', url] },
  // Optional: neither is something srt-gw's install script provides.
  { name: 'wget', missing: () => missingCommand('wget'), command: (url) => ['wget', '-q', '-O', '-', '--timeout=20', '--tries=1', url] },
  { name: 'python3 requests', missing: () => missingPythonModule('requests'), command: (url) => [PYTHON3, '-c', PYTHON_REQUESTS, url] },
];

/** Clients present here. An absent optional one is left out with a printed reason, not skipped (CI counts skips as failures). */
const presentClients =
  skip !== null
    ? CLIENTS
    : CLIENTS.filter((client) => {
        const reason = client.missing();
        if (reason !== null) process.stderr.write(`[left out] jail-clients: the ${client.name} case: ${reason}\n`);
        return reason === null;
      });

describe.skipIf(skip !== null)('HTTPS clients trust the gateway with no flags: the jail provides the CA', () => {
  let upstream: Upstream;
  let cwd = '';

  beforeAll(async () => {
    upstream = await startUpstream({ cert: pki!.server.cert, key: pki!.server.key, names: [ECHO] });
    cwd = createJailWorkdir(root, 'clients');
  });

  afterAll(async () => {
    await upstream?.close();
  });

  const slug = (name: string) => name.replace(/[^a-z0-9]+/g, '-');

  it.each(presentClients.map((client) => [client.name, client] as const))('%s GETs https://echo.example.test by name', async (_name, client) => {
    const path = `/clients/${slug(client.name)}`;
    const result = await jailRun(cwd, client.command(upstream.url(path, ECHO)), { allow: [ECHO] });
    expect(result.code, describeRun(result)).toBe(0);
    const echo = JSON.parse(result.stdout) as EchoResponse;
    expect(echo).toMatchObject({ method: 'GET', path, servername: ECHO });
    expect(upstream.received.filter((request) => request.path === path)).toHaveLength(1);
    const allowed = result.audit.find((line) => line.kind === 'request' && line.path === path);
    expect(allowed, JSON.stringify(result.audit)).toMatchObject({ decision: 'allow', host: ECHO, method: 'GET', status: 200 });
  });

  it('a gRPC call from node:http2 reaches the upstream over HTTP/2, and its status comes back in the trailers', async () => {
    const path = '/grpc.test.Echo/FromJail';
    const result = await jailRun(cwd, ['node', '-e', NODE_GRPC_CALL, upstream.url(path, ECHO)], { allow: [ECHO] });
    expect(result.code, describeRun(result)).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ status: 200, grpcStatus: '0', reply: 'hello over grpc' });
    const seen = upstream.received.filter((request) => request.path === path);
    expect(seen.map((request) => [request.httpVersion, request.headers.te, request.servername])).toEqual([['2.0', 'trailers', ECHO]]);
  });

  it.each(presentClients.map((client) => [client.name, client] as const))('%s cannot reach a name the policy does not allow', async (_name, client) => {
    const path = `/denied/${slug(client.name)}`;
    const result = await jailRun(cwd, client.command(upstream.url(path, EVIL)), { allow: [ECHO] });
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(upstream.received.filter((request) => request.path === path)).toEqual([]);
    expect(result.audit.some(isDeniedName(EVIL)), JSON.stringify(result.audit)).toBe(true);
  });
});
