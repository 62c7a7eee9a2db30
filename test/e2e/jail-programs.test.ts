// Everyday programs inside `srt-gw run`, over plain HTTP as well as HTTPS, against local fakes that
// speak the real protocol: curl and wget (with and without a ~/.netrc), a redirect from http to
// https, git clone and fetch, pip from an http and an https index, python requests verifying
// against the jail's CA bundle, apt-get from a flat Debian repository, and programs that ignore
// proxy settings altogether. jail-clients.test.ts covers the HTTPS basics (git push, npm, pip
// download, node fetch, gRPC); this file covers what a developer's daily commands add to them.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { buildDebPackage, publishDebRepository, type DebPackage } from '../support/fake-deb-repository.js';
import { createBareRepository, gitHttpBackend, hostGit, pushNewCommit, type BareRepository } from '../support/fake-git-server.js';
import { startFakeHttpServer, startFakeHttpsServer, type FakeHttpsServer, type LoggedRequest, type RequestHandler } from '../support/fake-https-server.js';
import { buildWheel, missingPip, publishWheel, python3Executable, type Wheel } from '../support/fake-pypi-index.js';
import type { AuditLine } from '../support/gateway-process.js';
import { createJailWorkdir, describeRun, jailTestEnv, runInJailCli, type JailRunResult } from '../support/jail-run.js';
import { ensureBuilt } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

/** The distribution's interpreter: its python3-requests and ssl use the distribution CA bundle the jail covers. */
const DEBIAN_PYTHON = '/usr/bin/python3';

function missingDebianRequests(): string | null {
  try {
    execFileSync(DEBIAN_PYTHON, ['-c', 'import requests'], { env: jailTestEnv(), stdio: 'ignore', timeout: 20_000 });
    return null;
  } catch {
    return `${DEBIAN_PYTHON} cannot import requests (Debian: apt-get install python3-requests)`;
  }
}

const skip = capabilityGate(
  missingRoot(),
  missingCommand('bwrap'),
  missingCommand('openssl'),
  missingCommand('curl'),
  missingCommand('wget'),
  missingCommand('git'),
  missingCommand('python3'),
  missingCommand('apt-get'),
  missingCommand('dpkg-deb'),
);
const skipRequests = skip ?? capabilityGate(missingDebianRequests());
const skipPip = skip ?? capabilityGate(missingPip());

const WEB = 'web.example.test';
const GIT = 'git.example.test';
const PYPI = 'pypi.example.test';
const DEBS = 'debs.example.test';
/** Never allowed by any policy here; the gateway could resolve it (to the same fakes), so only the policy stops it. */
const EVIL = 'evil.example.test';
const NAMES = [WEB, GIT, PYPI, DEBS, EVIL];
const SCHEMES = ['http', 'https'] as const;
type Scheme = (typeof SCHEMES)[number];

let root = '';
/** Scratch home directories live outside /tmp, which is private inside the jail: a real home is visible there. */
let homesRoot = '';
let pki: TestPki | undefined;
let caDir = '';

beforeAll(() => {
  if (skip !== null) return;
  ensureBuilt();
  root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-jail-programs-')));
  homesRoot = realpathSync(mkdtempSync('/var/tmp/srt-gw-jail-programs-homes-'));
  pki = createTestPki(NAMES);
  caDir = join(root, 'srt-gw-ca');
});

afterAll(() => {
  pki?.cleanup();
  if (root !== '') rmSync(root, { recursive: true, force: true });
  if (homesRoot !== '') rmSync(homesRoot, { recursive: true, force: true });
});

interface RunOptions {
  allow?: string[];
  env?: Record<string, string>;
}

/** `srt-gw run --allow ...` with the test CA trusted upstream and every test name resolved to 127.0.0.1. */
function jailRun(cwd: string, command: string[], options: RunOptions = {}): Promise<JailRunResult> {
  return runInJailCli({
    cwd,
    command,
    allow: options.allow ?? [],
    env: options.env,
    caDir,
    upstreamCa: [pki!.ca.certPath],
    resolveToLoopback: NAMES,
    timeoutMs: 45_000,
  });
}

function fakeServer(scheme: Scheme, handler?: RequestHandler): Promise<FakeHttpsServer> {
  return scheme === 'http' ? startFakeHttpServer({ handler }) : startFakeHttpsServer({ cert: pki!.server.cert, key: pki!.server.key, handler });
}

const inShell = (script: string) => ['sh', '-c', script];
const quote = (args: readonly string[]) => args.map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ');
const requestLine = (request: LoggedRequest) => `${request.method} ${request.path}`;
const isDeniedName = (name: string) => (line: AuditLine) => line.kind === 'dns' && line.name === name && (line.decision === 'denied' || line.decision === 'refused');

describe.skipIf(skip !== null)('curl and wget over http and https, with and without a ~/.netrc', () => {
  const upstreams = {} as Record<Scheme, Upstream>;
  const homes = { 'no ~/.netrc': '', 'a ~/.netrc': '' };
  let cwd = '';

  beforeAll(async () => {
    upstreams.https = await startUpstream({ cert: pki!.server.cert, key: pki!.server.key, names: [WEB] });
    upstreams.http = await startUpstream({ plain: true, names: [WEB] });
    homes['no ~/.netrc'] = join(homesRoot, 'plain-home');
    homes['a ~/.netrc'] = join(homesRoot, 'netrc-home');
    for (const home of Object.values(homes)) mkdirSync(home, { recursive: true });
    // A credential for the very host asked for: if the jail let the client read it, the request would carry it.
    const netrc = join(homes['a ~/.netrc'], '.netrc');
    writeFileSync(netrc, `machine ${WEB} login netrc-user password netrc-secret\n`);
    chmodSync(netrc, 0o600);
    cwd = createJailWorkdir(root, 'curl-wget');
  });

  afterAll(async () => {
    await upstreams.https?.close();
    await upstreams.http?.close();
  });

  const clients = {
    'curl --netrc-optional': (url: string) => ['curl', '-sS', '--fail', '--max-time', '20', '--netrc-optional', url],
    'wget -q -O-': (url: string) => ['wget', '-q', '-O-', '--timeout=20', '--tries=1', url],
  };
  const cases = Object.entries(clients).flatMap(([client, command]) =>
    SCHEMES.flatMap((scheme) => (Object.keys(homes) as (keyof typeof homes)[]).map((home) => [client, scheme, home, { client, command, scheme, home }] as const)),
  );

  it.each(cases)('%s %s://web.example.test with %s in HOME', async (_client, _scheme, _home, { client, command, scheme, home }) => {
    const path = `/${client.split(' ')[0]}/${scheme}/${home === 'a ~/.netrc' ? 'netrc' : 'no-netrc'}`;
    const upstream = upstreams[scheme];
    const result = await jailRun(cwd, command(upstream.url(path, WEB)), { allow: [WEB], env: { HOME: homes[home] } });
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stderr, describeRun(result)).not.toMatch(/netrc/i);
    expect(JSON.parse(result.stdout) as EchoResponse).toMatchObject({ method: 'GET', path, servername: scheme === 'https' ? WEB : null });
    const received = upstream.received.filter((request) => request.path === path);
    expect(received).toHaveLength(1);
    // ~/.netrc is a credential store the jail hides: nothing from it reaches the wire.
    expect(received[0]?.headers.authorization).toBeUndefined();
  });

  it('curl -L follows a 301 from http://web.example.test to https://web.example.test', async () => {
    const target = upstreams.https.url('/landed-after-redirect', WEB);
    const redirector = await startFakeHttpServer({
      handler: (req, res) => {
        req.resume();
        res.writeHead(301, { location: target, 'content-length': '0' });
        res.end();
      },
    });
    try {
      const result = await jailRun(cwd, ['curl', '-sS', '--fail', '-L', '--max-time', '20', redirector.url(WEB, '/moved')], { allow: [WEB] });
      expect(result.code, describeRun(result)).toBe(0);
      expect(redirector.requests.map(requestLine)).toEqual(['GET /moved']);
      expect(JSON.parse(result.stdout) as EchoResponse).toMatchObject({ method: 'GET', path: '/landed-after-redirect', servername: WEB });
    } finally {
      await redirector.close();
    }
  });
});

describe.skipIf(skip !== null).each(SCHEMES)('git clone, then git fetch, over %s (smart HTTP: git http-backend)', (scheme) => {
  let server: FakeHttpsServer;
  let repo: BareRepository;

  beforeAll(async () => {
    const projectRoot = join(root, `git-server-${scheme}`);
    mkdirSync(projectRoot, { recursive: true });
    repo = createBareRepository(projectRoot, 'repo', { 'README.txt': `served over ${scheme}\n` });
    server = await fakeServer(scheme, gitHttpBackend(projectRoot));
  });

  afterAll(async () => {
    await server?.close();
  });

  it(`git clone ${scheme}://git.example.test/repo.git, then git fetch gets a commit pushed meanwhile`, async () => {
    const cwd = createJailWorkdir(root, `git-${scheme}`);
    const clone = await jailRun(cwd, ['git', 'clone', '-q', server.url(GIT, '/repo.git'), 'clone'], { allow: [GIT] });
    expect(clone.code, describeRun(clone)).toBe(0);
    expect(readFileSync(join(cwd, 'clone', 'README.txt'), 'utf8')).toBe(`served over ${scheme}\n`);
    expect(hostGit(['rev-parse', 'HEAD'], join(cwd, 'clone'))).toBe(repo.head);

    const pushed = pushNewCommit(repo, { 'NEWS.txt': 'a later commit\n' }, 'a later commit');
    const before = server.requests.length;
    const fetch = await jailRun(cwd, ['git', '-C', 'clone', 'fetch', 'origin'], { allow: [GIT] });
    expect(fetch.code, describeRun(fetch)).toBe(0);
    expect(hostGit(['rev-parse', 'origin/main'], join(cwd, 'clone'))).toBe(pushed);
    expect(server.requests.slice(before).map(requestLine)).toEqual(
      expect.arrayContaining(['GET /repo.git/info/refs?service=git-upload-pack', 'POST /repo.git/git-upload-pack']),
    );
  }, 120_000);
});

describe.skipIf(skipPip !== null).each(SCHEMES)('pip install from an %s index', (scheme) => {
  const MESSAGE = `installed from an ${scheme} index`;
  let server: FakeHttpsServer;
  let wheel: Wheel;

  beforeAll(async () => {
    const work = join(root, `pypi-${scheme}`);
    mkdirSync(work, { recursive: true });
    server = await fakeServer(scheme);
    wheel = buildWheel(work, `srtgwprobe${scheme}`, '1.0', `MESSAGE = ${JSON.stringify(MESSAGE)}\n`);
    publishWheel(server, wheel, PYPI);
  });

  afterAll(async () => {
    await server?.close();
  });

  it(`pip install --index-url ${scheme}://pypi.example.test/simple/ --target site-packages, then it imports`, async () => {
    const cwd = createJailWorkdir(root, `pip-${scheme}`);
    const python = python3Executable();
    const install = [
      python, '-m', 'pip', 'install', '--no-deps', '--target', 'site-packages',
      '--index-url', server.url(PYPI, '/simple/'),
      // pip ignores an http:// index unless told to trust its host; https needs nothing.
      ...(scheme === 'http' ? ['--trusted-host', PYPI] : []),
      '--no-cache-dir', '--disable-pip-version-check', '--retries', '0', '--timeout', '20',
      wheel.name,
    ];
    const importIt = [python, '-c', `import sys; sys.path.insert(0, "site-packages"); import ${wheel.name}; print(${wheel.name}.MESSAGE)`];
    const result = await jailRun(cwd, inShell(`${quote(install)} && ${quote(importIt)}`), { allow: [PYPI], env: { PIP_CONFIG_FILE: '/dev/null' } });
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toContain(MESSAGE);
    expect(server.requests.map(requestLine)).toEqual(expect.arrayContaining([`GET /simple/${wheel.name}/`, `GET /files/${wheel.fileName}`]));
  });
});

describe.skipIf(skipRequests !== null)('python requests verifies https against the jail CA bundle', () => {
  let upstream: Upstream;

  beforeAll(async () => {
    upstream = await startUpstream({ cert: pki!.server.cert, key: pki!.server.key, names: [WEB] });
  });

  afterAll(async () => {
    await upstream?.close();
  });

  // verify is left at its default (True) throughout; a bundle without srt-gw's CA must fail, or verification is not happening.
  const SCRIPT = [
    'import sys, requests',
    'base, wrong_ca = sys.argv[1], sys.argv[2]',
    "r = requests.get(base + '/requests/default', timeout=20); r.raise_for_status(); print('default', r.json()['path'])",
    's = requests.Session()',
    's.trust_env = False  # no REQUESTS_CA_BUNDLE, no proxy variables: the distribution bundle requests was built with',
    "r = s.get(base + '/requests/no-env', timeout=20); r.raise_for_status(); print('no-env', r.json()['path'], requests.certs.where())",
    'try:',
    "    requests.get(base + '/requests/wrong-ca', timeout=20, verify=wrong_ca); print('wrong-ca accepted')",
    'except requests.exceptions.SSLError:',
    "    print('wrong-ca refused')",
  ].join('\n');

  it('requests.get(https://web.example.test/...) with the defaults, with trust_env off, and against a wrong CA', async () => {
    const cwd = createJailWorkdir(root, 'python-requests');
    writeFileSync(join(cwd, 'wrong-ca.pem'), pki!.untrustedCa.cert);
    const result = await jailRun(cwd, [DEBIAN_PYTHON, '-c', SCRIPT, upstream.url('', WEB), 'wrong-ca.pem'], { allow: [WEB] });
    expect(result.code, describeRun(result)).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toBe('default /requests/default');
    // The distribution bundle, which the jail covers with one that holds srt-gw's CA.
    expect(lines[1]).toBe('no-env /requests/no-env /etc/ssl/certs/ca-certificates.crt');
    expect(lines[2]).toBe('wrong-ca refused');
    expect(upstream.received.map((request) => request.path)).toEqual(['/requests/default', '/requests/no-env']);
  });
});

describe.skipIf(skip !== null).each(SCHEMES)('apt-get update && apt-get download from an %s flat repository', (scheme) => {
  const PACKAGE = `srtgw-probe-${scheme}`;
  let server: FakeHttpsServer;
  let deb: DebPackage;
  let sourceLine = '';

  beforeAll(async () => {
    const work = join(root, `debs-${scheme}`);
    mkdirSync(work, { recursive: true });
    deb = buildDebPackage(work, { name: PACKAGE, version: '1.0', files: { [`/usr/share/doc/${PACKAGE}/README`]: `fetched over ${scheme}\n` } });
    server = await fakeServer(scheme);
    sourceLine = publishDebRepository(server, DEBS, [deb]);
  });

  afterAll(async () => {
    await server?.close();
  });

  it(`the .deb from ${scheme}://debs.example.test lands in the cwd, byte for byte`, async () => {
    const cwd = createJailWorkdir(root, `apt-${scheme}`);
    writeFileSync(join(cwd, 'sources.list'), `${sourceLine}\n`);
    for (const dir of ['apt/lists/partial', 'apt/cache/archives/partial']) mkdirSync(join(cwd, dir), { recursive: true });
    // apt as an ordinary program: its state, cache and sources in the cwd, no lock on the system's,
    // and no switch to the _apt user (the jail has no other user to switch to).
    const options = [
      '-o', `Dir::Etc::SourceList=${join(cwd, 'sources.list')}`,
      '-o', 'Dir::Etc::SourceParts=/dev/null',
      '-o', `Dir::State::Lists=${join(cwd, 'apt', 'lists')}`,
      '-o', `Dir::Cache=${join(cwd, 'apt', 'cache')}`,
      '-o', 'Debug::NoLocking=1',
      '-o', 'APT::Sandbox::User=root',
      '-o', 'Acquire::Retries=0',
      '-o', 'Acquire::Languages=none',
    ];
    const script = `apt-get ${quote(options)} update && apt-get ${quote(options)} download ${PACKAGE}`;
    const result = await jailRun(cwd, inShell(script), { allow: [DEBS] });
    expect(result.code, describeRun(result)).toBe(0);
    const downloaded = join(cwd, deb.fileName);
    expect(existsSync(downloaded), describeRun(result)).toBe(true);
    expect(createHash('sha256').update(readFileSync(downloaded)).digest('hex')).toBe(deb.sha256);
    expect(server.requests.map(requestLine)).toEqual(expect.arrayContaining(['GET /Packages', `GET /${deb.fileName}`]));
  });
});

describe.skipIf(skipRequests !== null)('a program that ignores proxy settings is checked all the same', () => {
  let upstream: Upstream;
  let cwd = '';

  beforeAll(async () => {
    upstream = await startUpstream({ cert: pki!.server.cert, key: pki!.server.key, names: [WEB, EVIL] });
    cwd = createJailWorkdir(root, 'no-proxy');
  });

  afterAll(async () => {
    await upstream?.close();
  });

  // TCP + TLS by hand: no HTTP library, no proxy variable consulted (and none set), the system trust store.
  const RAW_TLS_GET = [
    'import socket, ssl, sys',
    'address, port, path, host = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]',
    'context = ssl.create_default_context()',
    'with socket.create_connection((address, port), timeout=20) as raw, context.wrap_socket(raw, server_hostname=host) as tls:',
    '    tls.sendall(f"GET {path} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nConnection: close\\r\\n\\r\\n".encode())',
    '    data = b""',
    '    while chunk := tls.recv(65536):',
    '        data += chunk',
    'print(data.split(b"\\r\\n", 1)[0].decode())',
  ].join('\n');

  const programs = {
    'python socket + ssl': (host: string, path: string) => [DEBIAN_PYTHON, '-c', RAW_TLS_GET, host, String(upstream.port), path, host],
    "curl --noproxy '*'": (host: string, path: string) => ['curl', '-sS', '--fail', '--noproxy', '*', '--max-time', '20', '-o', '/dev/null', '-w', 'HTTP/1.1 %{http_code}\\n', upstream.url(path, host)],
  };
  const cases = Object.entries(programs).map(([program, command]) => [program, { program, command }] as const);

  it.each(cases)('%s reaches the allowed web.example.test', async (_name, { program, command }) => {
    const path = `/no-proxy/allowed/${program.split(' ')[0]}`;
    const result = await jailRun(cwd, command(WEB, path), { allow: [WEB] });
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout.trim()).toMatch(/^HTTP\/1\.1 200\b/);
    expect(upstream.received.filter((request) => request.path === path).map((request) => request.servername)).toEqual([WEB]);
  });

  it.each(cases)('%s cannot reach evil.example.test, which no rule allows', async (_name, { program, command }) => {
    const path = `/no-proxy/denied/${program.split(' ')[0]}`;
    const result = await jailRun(cwd, command(EVIL, path), { allow: [WEB] });
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(upstream.received.filter((request) => request.path === path)).toEqual([]);
    expect(result.audit.some(isDeniedName(EVIL)), JSON.stringify(result.audit)).toBe(true);
  });

  it('python socket + ssl dialling an address it made up (203.0.113.9:443, SNI web.example.test) is refused', async () => {
    const path = '/no-proxy/address';
    const result = await jailRun(cwd, [DEBIAN_PYTHON, '-c', RAW_TLS_GET, '203.0.113.9', '443', path, WEB], { allow: [WEB] });
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(upstream.received.filter((request) => request.path === path)).toEqual([]);
    const refused = result.audit.find((line) => line.kind === 'connect' && line.host === '203.0.113.9');
    expect(refused, JSON.stringify(result.audit)).toMatchObject({ port: 443, decision: 'deny' });
  });
});
