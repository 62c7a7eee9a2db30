// Path traversal through encodings an upstream decodes: a rule allowing only /ok/** must not let
// "/ok/..%2Fno/secret" reach a server that percent-decodes before it resolves "..". The upstream
// here is the real python3 http.server (it serves /ok/..%2Fno/secret as /no/secret), behind the
// real `srt-gw serve` as an explicit proxy; the same attacks are sent over HTTPS with HTTP/2 to
// the test suite's recording upstream.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2, { type ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel, tlsOverTunnel } from '../support/raw-tunnel.js';
import type { Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('python3'), missingCommand('openssl'));

const FILES = 'files.example.test';
const SECRET_TEXT = 'the contents of no/secret, which the policy denies';
const OK_TEXT = 'the contents of ok/file';
const POLICY = `
version: 1
rules:
  - id: ok-only
    host: ${FILES}
    paths: ["/ok/**"]
`;
const PYTHON_READY_MS = 15_000;

/** Each attack, and a phrase of the reason the gateway must give for refusing it. */
const ATTACKS: [name: string, path: string, reason: string][] = [
  ['encoded slash after ".."', '/ok/..%2Fno/secret', 'encoded "/"'],
  ['encoded dots and slash', '/ok/%2e%2e%2fno/secret', 'encoded "/"'],
  ['percent-encoded ".." segment', '/ok/%2e%2e/no/secret', 'percent-encoded ".." segment'],
  ['double-encoded dots', '/ok/%252e%252e/no/secret', 'double percent-encoded'],
  ['double-encoded slash', '/ok/..%252Fno/secret', 'double percent-encoded'],
  ['overlong UTF-8 dots', '/ok/%c0%ae%c0%ae/no/secret', 'overlong UTF-8'],
  ['overlong UTF-8 slash', '/ok/..%c0%afno/secret', 'overlong UTF-8'],
  ['encoded backslash after ".."', '/ok/..%5Cno/secret', 'encoded "/", "\\"'],
  ['encoded tab after ".."', '/ok/..%09/no/secret', 'control character'],
  ['raw backslash', '/ok/..\\no/secret', 'backslash'],
];

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

interface PythonServer {
  port: number;
  /** Request paths http.server logged, in order. */
  requests(): string[];
  close(): void;
}

/** python3 -m http.server on 127.0.0.1 (an ephemeral port), serving `dir`. */
async function startPythonServer(dir: string): Promise<PythonServer> {
  const child: ChildProcess = spawn('python3', ['-u', '-m', 'http.server', '0', '--bind', '127.0.0.1', '--directory', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`python3 http.server did not start within ${PYTHON_READY_MS} ms: ${stdout} ${stderr}`)), PYTHON_READY_MS);
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
      const match = /port (\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`python3 http.server exited (${code}): ${stderr}`));
    });
  });
  return {
    port,
    requests: () => [...stderr.matchAll(/"GET (\S+) HTTP\/1\.[01]"/g)].map((match) => match[1]!),
    close: () => child.kill('SIGTERM'),
  };
}

/** An absolute-form GET through the gateway as an explicit proxy, the path sent byte for byte. */
function proxiedGet(proxyPort: number, authority: string, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'GET', path: `http://${authority}${path}`, headers: { host: authority }, agent: false });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function h2Get(session: ClientHttp2Session, authority: string, path: string): Promise<Answer> {
  const stream = session.request({ ':method': 'GET', ':authority': authority, ':path': path }, { endStream: true });
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers: Answer['headers'] = {};
    const chunks: Buffer[] = [];
    stream.on('response', (responseHeaders) => {
      status = Number(responseHeaders[':status']);
      headers = responseHeaders;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, headers, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
  });
}

describe.skipIf(skip !== null)('path traversal through encodings a decoding upstream reads differently', () => {
  let fixture: GatewayFixture | undefined;
  let gateway: GatewayProcess;
  let upstream: Upstream;
  let python: PythonServer | undefined;
  let root: string;
  /** How many of python's logged requests came before the gateway was used. */
  let forwardedFrom = 0;
  const forwarded = () => python!.requests().slice(forwardedFrom);

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'srt-gw-path-traversal-'));
    mkdirSync(join(root, 'ok'));
    mkdirSync(join(root, 'no'));
    writeFileSync(join(root, 'ok', 'file'), OK_TEXT);
    writeFileSync(join(root, 'no', 'secret'), SECRET_TEXT);
    python = await startPythonServer(root);
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [FILES] });
    ({ gateway, upstream } = fixture);
  });

  afterAll(async () => {
    python?.close();
    await fixture?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('the python upstream itself serves the denied file for "/ok/..%2Fno/secret" (what the gateway must prevent)', async () => {
    const direct = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: python!.port, path: '/ok/..%2Fno/secret', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    expect(direct).toBe(SECRET_TEXT);
    forwardedFrom = python!.requests().length;
  });

  it('/ok/file is served through the gateway', async () => {
    const res = await proxiedGet(gateway.proxyPort, `${FILES}:${python!.port}`, '/ok/file');
    expect(res.status).toBe(200);
    expect(res.body).toBe(OK_TEXT);
  });

  it('an encoded slash with no dot segment beside it is still forwarded (GitLab-style project paths)', async () => {
    const res = await proxiedGet(gateway.proxyPort, `${FILES}:${python!.port}`, '/ok/group%2Fproject');
    // http.server has no such file, but the request reached it.
    expect(res.status).toBe(404);
    expect(res.headers['x-srt-gw-reason']).toBeUndefined();
    expect(forwarded()).toContain('/ok/group%2Fproject');
  });

  it.each(ATTACKS)('plain HTTP, %s (%s): 400 with the reason, audited, and python never sees it', async (_name, path, reason) => {
    const res = await proxiedGet(gateway.proxyPort, `${FILES}:${python!.port}`, path);
    expect(res.status).toBe(400);
    expect(res.body).not.toContain(SECRET_TEXT);
    expect(JSON.parse(res.body)).toMatchObject({ error: 'bad-request', rule: null });
    expect(String(res.headers['x-srt-gw-reason'])).toContain(reason);
    // A target refused while it is read (before the URL parser) is logged without a path; its
    // reason is the one the client was sent.
    const sent = String(res.headers['x-srt-gw-reason']);
    const line = await gateway.waitForAudit((entry) => entry.kind === 'request' && entry.decision === 'deny' && entry.reason === sent);
    expect(line).toMatchObject({ decision: 'deny', step: 'framing', status: 400 });
    expect(String(line.reason)).toContain(reason);
    expect(forwarded()).not.toContain(path);
  });

  it('python received only the requests the gateway allowed', () => {
    expect(forwarded()).toEqual(['/ok/file', '/ok/group%2Fproject']);
  });

  it('HTTPS with HTTP/2: every attack is refused with 400 and the upstream receives none; /ok/file still works', async () => {
    const authority = `${FILES}:${upstream.port}`;
    const tunnel = await connectTunnel(gateway.proxyPort, authority);
    expect(tunnel.status).toBe(200);
    const tlsSocket = await tlsOverTunnel(tunnel.socket, { servername: FILES, ca: fixture!.gatewayCa, alpn: ['h2'] });
    const session = http2.connect(`https://${authority}`, { createConnection: () => tlsSocket });
    session.on('error', () => undefined);
    try {
      for (const [, path, reason] of ATTACKS) {
        const res = await h2Get(session, authority, path);
        expect(res.status, path).toBe(400);
        expect(String(res.headers['x-srt-gw-reason']), path).toContain(reason);
      }
      const ok = await h2Get(session, authority, '/ok/file');
      expect(ok.status).toBe(200);
    } finally {
      session.close();
    }
    expect(upstream.received.map((request) => request.path)).toEqual(['/ok/file']);
  });
});
