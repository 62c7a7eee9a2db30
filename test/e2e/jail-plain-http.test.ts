// Plain HTTP (no TLS) from inside `srt-gw run`'s jail: the redirected connection is served by the
// gateway like a TLS one, minus the handshake. Each request's Host must name the host the program
// dialled (the name its synthetic address stands for) and port, then the policy decides, and an
// allowed request is forwarded over plain HTTP. Real bubblewrap, nftables, curl and python; the
// upstreams listen on loopback, pinned with --resolve, one of them on port 80.
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { parseAuditLines, type AuditLine } from '../support/gateway-process.js';
import { JAIL_PATH, ensureBuilt, srtGwRun, type SrtGwRunResult } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('python3'), missingCommand('openssl'));

/** Allowed over plain HTTP on any port, except its /admin paths. */
const PLAIN = 'plain.example.test';
/** Also allowed: a Host header naming it on a connection to PLAIN is domain fronting. */
const OTHER = 'other.example.test';
/** Allowed on the HTTPS upstream's port only. */
const SECURE = 'secure.example.test';

interface PlainRequest {
  method: string;
  path: string;
  host: string | undefined;
  bodyBytes: number;
}

/** What the plain upstream answers: the request as it arrived. */
interface PlainEcho extends PlainRequest {
  port: number;
}

interface PlainUpstream {
  address: string;
  /** The second listener's port (the first is 80). */
  otherPort: number;
  received: PlainRequest[];
  close(): Promise<void>;
}

let root = '';
let caDir = '';
let pki: TestPki;
let secure: Upstream;
let plain: PlainUpstream;
let policyPath = '';
let runs = 0;

/** A plain HTTP echo on port 80 and on a free port of one loopback address of its own. */
async function startPlainUpstream(redirectTo: () => string): Promise<PlainUpstream> {
  const received: PlainRequest[] = [];
  const handler = (port: number) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => (bodyBytes += chunk.length));
    req.on('end', () => {
      const request: PlainRequest = { method: req.method ?? '', path: req.url ?? '', host: req.headers.host, bodyBytes };
      received.push(request);
      if (request.path === '/to-https') {
        res.writeHead(301, { location: redirectTo(), 'content-length': '0' });
        res.end();
        return;
      }
      const body = JSON.stringify({ ...request, port } satisfies PlainEcho);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  };
  const listen = (server: http.Server, address: string, port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, address, () => {
        server.off('error', reject);
        resolve();
      });
    });
  const onPort80 = http.createServer(handler(80));
  // Port 80 on 127.0.0.1 may be someone else's: take a loopback address of our own.
  let address = '';
  for (let attempt = 0; address === ''; attempt++) {
    const candidate = `127.80.${1 + Math.floor(Math.random() * 254)}.${1 + Math.floor(Math.random() * 254)}`;
    try {
      await listen(onPort80, candidate, 80);
      address = candidate;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw error;
    }
  }
  let otherPort = 0;
  const onOtherPort = http.createServer((req, res) => handler(otherPort)(req, res));
  await listen(onOtherPort, address, 0);
  otherPort = (onOtherPort.address() as AddressInfo).port;
  const close = (server: http.Server) =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { address, otherPort, received, close: async () => void (await Promise.all([close(onPort80), close(onOtherPort)])) };
}

interface Run extends SrtGwRunResult {
  audit: AuditLine[];
}

/** `srt-gw run` with the test policy, the upstreams' names pinned, and an audit log. */
async function run(command: string[]): Promise<Run> {
  runs += 1;
  const cwd = join(root, `run-${runs}`);
  mkdirSync(cwd);
  const log = join(root, `audit-${runs}.jsonl`);
  const flags = [
    '--ca-dir', caDir,
    '--policy', policyPath,
    '--log', log,
    '--upstream-ca', pki.ca.certPath,
    '--resolve', `${PLAIN}=${plain.address}`,
    '--resolve', `${OTHER}=${plain.address}`,
    '--resolve', `${SECURE}=127.0.0.1`,
  ];
  const result = await srtGwRun({ flags, command, cwd, env: { PATH: JAIL_PATH, HOME: cwd, LANG: 'C.UTF-8' }, timeoutMs: 45_000 });
  expect(result.timedOut, `srt-gw run timed out\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(false);
  return { ...result, audit: existsSync(log) ? parseAuditLines(readFileSync(log, 'utf8')) : [] };
}

const requestLines = (audit: AuditLine[], host: string) => audit.filter((line) => line.kind === 'request' && line.host === host);

/** Curl in the jail with the response head on stdout, then "status=N" (never failing the shell). */
function curlWithHead(url: string, ...extra: string[]): string[] {
  return ['curl', '-sS', '--max-time', '30', '-D', '-', '-w', '\\nstatus=%{http_code}\\n', ...extra, url];
}

function statusOf(stdout: string): number {
  const match = /^status=(\d+)$/m.exec(stdout);
  if (!match) throw new Error(`no status in:\n${stdout}`);
  return Number(match[1]);
}

beforeAll(async () => {
  if (skip !== null) return;
  ensureBuilt();
  root = realpathSync(mkdtempSync('/tmp/srt-gw-jail-plain-http-'));
  caDir = join(root, 'ca');
  pki = createTestPki([SECURE]);
  secure = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [SECURE] });
  plain = await startPlainUpstream(() => `https://${SECURE}:${secure.port}/landing`);
  policyPath = join(root, 'policy.yaml');
  writeFileSync(
    policyPath,
    [
      'version: 1',
      'rules:',
      '  - id: plain-api',
      `    host: ${PLAIN}`,
      '  - id: plain-no-admin',
      `    host: ${PLAIN}`,
      '    paths: ["/admin", "/admin/**"]',
      '    action: deny',
      '  - id: other-api',
      `    host: ${OTHER}`,
      '  - id: secure-tls-only',
      `    host: ${SECURE}`,
      `    port: ${secure.port}`,
      '',
    ].join('\n'),
  );
}, 60_000);

afterAll(async () => {
  await plain?.close();
  await secure?.close();
  pki?.cleanup();
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip !== null)('srt-gw run: plain HTTP from the jail is checked by Host and forwarded', () => {
  it('curl http:// to an allowed name reaches the upstream on port 80 and on another port', async () => {
    const before = plain.received.length;
    const result = await run(['sh', '-c', `curl -sS --max-time 30 http://${PLAIN}/hello?q=1; echo; curl -sS --max-time 30 http://${PLAIN}:${plain.otherPort}/other-port`]);
    expect(result.code, result.stderr).toBe(0);
    const [onPort80, onOtherPort] = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as PlainEcho);
    expect(onPort80).toMatchObject({ method: 'GET', path: '/hello?q=1', host: PLAIN, port: 80 });
    expect(onOtherPort).toMatchObject({ method: 'GET', path: '/other-port', host: `${PLAIN}:${plain.otherPort}`, port: plain.otherPort });
    expect(plain.received.slice(before).map((request) => request.path)).toEqual(['/hello?q=1', '/other-port']);
    const lines = requestLines(result.audit, PLAIN);
    expect(lines).toEqual([
      expect.objectContaining({ protocol: 'http/1.1', port: 80, path: '/hello', decision: 'allow', rule: 'plain-api', status: 200 }),
      expect.objectContaining({ protocol: 'http/1.1', port: plain.otherPort, path: '/other-port', decision: 'allow', rule: 'plain-api', status: 200 }),
    ]);
  });

  it("python's http.client: GET, a POST with a body and a denied path on one connection", async () => {
    const before = plain.received.length;
    const script = `
import http.client, json
c = http.client.HTTPConnection(${JSON.stringify(PLAIN)}, 80, timeout=30)
out = []
c.request('GET', '/py/get')
r = c.getresponse(); out.append([r.status, json.loads(r.read())])
c.request('POST', '/py/post', body=b'x' * 100000, headers={'content-type': 'application/octet-stream'})
r = c.getresponse(); out.append([r.status, json.loads(r.read())])
c.request('GET', '/admin/py')
r = c.getresponse(); out.append([r.status, r.getheader('x-srt-gw-reason'), json.loads(r.read())])
print(json.dumps(out))
`;
    const result = await run(['python3', '-c', script]);
    expect(result.code, result.stderr).toBe(0);
    const [get, post, admin] = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as [number, unknown, ...unknown[]][];
    expect(get).toEqual([200, expect.objectContaining({ method: 'GET', path: '/py/get', host: PLAIN })]);
    expect(post).toEqual([200, expect.objectContaining({ method: 'POST', path: '/py/post', bodyBytes: 100000 })]);
    expect(admin).toEqual([403, 'denied by rule plain-no-admin', { error: 'denied', code: 'denied-by-rule', rule: 'plain-no-admin', reason: 'denied by rule plain-no-admin' }]);
    expect(plain.received.slice(before).map((request) => request.path)).toEqual(['/py/get', '/py/post']);
    const lines = requestLines(result.audit, PLAIN);
    expect(lines.map((line) => [line.method, line.path, line.decision, line.status])).toEqual([
      ['GET', '/py/get', 'allow', 200],
      ['POST', '/py/post', 'allow', 200],
      ['GET', '/admin/py', 'deny', 403],
    ]);
    expect(new Set(lines.map((line) => line.conn)).size).toBe(1);
  });

  it('a denied path gets a 403 naming the rule, in the body and the x-srt-gw-reason header, and never reaches the upstream', async () => {
    const before = plain.received.length;
    const result = await run(curlWithHead(`http://${PLAIN}/admin/users`));
    expect(result.code, result.stderr).toBe(0);
    expect(statusOf(result.stdout)).toBe(403);
    expect(result.stdout).toMatch(/^x-srt-gw-reason: denied by rule plain-no-admin\r?$/m);
    expect(result.stdout).toContain('"rule":"plain-no-admin"');
    expect(plain.received.slice(before)).toEqual([]);
    expect(requestLines(result.audit, PLAIN)).toEqual([
      expect.objectContaining({ path: '/admin/users', decision: 'deny', rule: 'plain-no-admin', step: 'policy', status: 403 }),
    ]);
  });

  it('a name allowed only on another port gets a 403 saying so, not a reset', async () => {
    const before = plain.received.length;
    const result = await run(curlWithHead(`http://${SECURE}/anything`));
    expect(result.code, result.stderr).toBe(0);
    expect(statusOf(result.stdout)).toBe(403);
    const reason = `rule secure-tls-only allows ${SECURE} but not port 80`;
    expect(result.stdout).toMatch(new RegExp(`^x-srt-gw-reason: ${reason.replace(/\./g, '\\.')}\\r?$`, 'm'));
    expect(plain.received.slice(before)).toEqual([]);
    expect(secure.received.filter((request) => request.path === '/anything')).toEqual([]);
    expect(result.audit.filter((line) => line.kind === 'connect' && line.host === SECURE)).toEqual([
      expect.objectContaining({ port: 80, decision: 'deny', reason }),
    ]);
  });

  it('a Host header naming another allowed host (or another port) than the one dialled is refused: domain fronting', async () => {
    const before = plain.received.length;
    const script = [
      `curl -sS --max-time 30 -D - -w '\\nfronted=%{http_code}\\n' -H 'Host: ${OTHER}' http://${PLAIN}/fronted`,
      `curl -sS --max-time 30 -D - -w '\\nported=%{http_code}\\n' -H 'Host: ${PLAIN}:${plain.otherPort}' http://${PLAIN}/ported`,
    ].join('; ');
    const result = await run(['sh', '-c', script]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^fronted=421$/m);
    expect(result.stdout).toMatch(/^ported=421$/m);
    expect(result.stdout).toContain(`x-srt-gw-reason: request names ${OTHER}:80 but the connection is for ${PLAIN}:80`);
    expect(result.stdout).toContain(`x-srt-gw-reason: request names ${PLAIN}:${plain.otherPort} but the connection is for ${PLAIN}:80`);
    expect(plain.received.slice(before)).toEqual([]);
    expect(requestLines(result.audit, PLAIN).map((line) => [line.path, line.decision, line.step, line.status])).toEqual([
      ['/fronted', 'deny', 'authority', 421],
      ['/ported', 'deny', 'authority', 421],
    ]);
  });

  it('several requests on one kept-alive connection are each checked, each with its audit line', async () => {
    const before = plain.received.length;
    const urls = ['/keep/one', '/admin/keep', '/keep/two'].map((path) => `http://${PLAIN}:${plain.otherPort}${path}`);
    const result = await run(['curl', '-sS', '--max-time', '30', '-w', '%{http_code} %{num_connects}\\n', ...urls.flatMap((url) => ['-o', '/dev/null', url])]);
    expect(result.code, result.stderr).toBe(0);
    // One connection for all three: only the first request opened one.
    expect(result.stdout.trim().split('\n')).toEqual(['200 1', '403 0', '200 0']);
    expect(plain.received.slice(before).map((request) => request.path)).toEqual(['/keep/one', '/keep/two']);
    const lines = requestLines(result.audit, PLAIN);
    expect(lines.map((line) => [line.path, line.decision, line.rule, line.status])).toEqual([
      ['/keep/one', 'allow', 'plain-api', 200],
      ['/admin/keep', 'deny', 'plain-no-admin', 403],
      ['/keep/two', 'allow', 'plain-api', 200],
    ]);
    expect(new Set(lines.map((line) => line.conn)).size).toBe(1);
  });

  it('curl -L follows a redirect from http:// to https:// (upstream certificate from --upstream-ca)', async () => {
    const before = plain.received.length;
    const result = await run(['curl', '-sS', '--max-time', '30', '-L', `http://${PLAIN}:${plain.otherPort}/to-https`]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout) as EchoResponse).toMatchObject({ method: 'GET', path: '/landing', servername: SECURE });
    expect(plain.received.slice(before).map((request) => request.path)).toEqual(['/to-https']);
    expect(requestLines(result.audit, PLAIN)).toEqual([expect.objectContaining({ path: '/to-https', decision: 'allow', status: 301 })]);
    expect(requestLines(result.audit, SECURE)).toEqual([expect.objectContaining({ port: secure.port, path: '/landing', decision: 'allow', rule: 'secure-tls-only', status: 200 })]);
  });
});
