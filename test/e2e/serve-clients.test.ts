// `srt-gw serve` with a `clients:` section: every request to the explicit proxy authenticates
// (static token, JWT from a JWKS file or URL, issued token, client certificate), each client may use
// only its rules, refusals are 407 with a challenge, and audit lines and metrics name the client.
// Real gateway process, real curl and node clients, local upstreams with a test CA.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { CLI_PATH, cleanEnv, curlThroughProxy, runGatewayToExit, startGatewayProcess, type AuditLine, type GatewayProcess } from '../support/gateway-process.js';
import { createTestPki, type TestCa, type TestPki } from '../support/test-pki.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));

const API = 'api.example.test';
const OTHER = 'other.example.test';
const TOKEN_CI = `ci-${randomBytes(12).toString('hex')}`;
const TOKEN_ALL = `all-${randomBytes(12).toString('hex')}`;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const ISSUER = 'https://issuer.example.test';
const REMOTE_ISSUER = 'https://remote-issuer.example.test';

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

interface Jwks {
  key: KeyPair;
  kid: string;
  jwk: JWK;
}

async function newKey(kid: string): Promise<Jwks> {
  const key = await generateKeyPair('ES256', { extractable: true });
  return { key, kid, jwk: { ...(await exportJWK(key.publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

function signJwt(signer: Jwks, claims: { iss: string; aud: string; sub: string; expiresIn?: number }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid: signer.kid })
    .setIssuer(claims.iss)
    .setAudience(claims.aud)
    .setSubject(claims.sub)
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (claims.expiresIn ?? 600))
    .sign(signer.key.privateKey);
}

/** A client certificate (extendedKeyUsage clientAuth) with common name `cn`, from `ca`. */
function issueClientCert(dir: string, ca: TestCa, cn: string): { certPath: string; keyPath: string } {
  const stem = join(dir, `client-${cn}-${ca.label}`);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${stem}-key.pem`, '-out', `${stem}.csr`, '-subj', `/CN=${cn}`]);
  writeFileSync(`${stem}.ext`, 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  run(['x509', '-req', '-in', `${stem}.csr`, '-CA', ca.certPath, '-CAkey', ca.keyPath, '-CAcreateserial', '-days', '2', '-extfile', `${stem}.ext`, '-out', `${stem}.pem`]);
  return { certPath: `${stem}.pem`, keyPath: `${stem}-key.pem` };
}

/** Writes a JWKS the way a Kubernetes ConfigMap mount does: jwks.json -> ..data/jwks.json, ..data -> a timestamped directory, swapped by rename. */
function writeConfigMapJwks(dir: string, generation: string, keys: JWK[]): void {
  mkdirSync(join(dir, generation));
  writeFileSync(join(dir, generation, 'jwks.json'), JSON.stringify({ keys }));
  symlinkSync(generation, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  try {
    symlinkSync('..data/jwks.json', join(dir, 'jwks.json'));
  } catch {
    // the link exists from the first generation: it follows ..data
  }
}

function tokenCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [CLI_PATH, 'token', ...args], { encoding: 'utf8', timeout: 30_000, env: { ...cleanEnv(), SRT_GW_JAIL: '' } });
}

/** One request over a raw socket to the proxy: what the gateway answers to a request curl would not send. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer; got so far: ${answer}`)));
  });
}

async function eventually<T>(attempt: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 8_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (done(value) || Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.skipIf(skip !== null)('srt-gw serve with clients:', () => {
  let pki: TestPki;
  let scratch: string;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let jwksServer: http.Server;
  let remoteKey: Jwks;
  let fileKey: Jwks;
  let rotatedKey: Jwks;
  let jwksDir: string;
  let stateDir: string;
  let issuedToken: string;
  let gateway: GatewayProcess;

  const basic = (id: string, token: string) => ({ proxyUrl: gateway.proxyUrl.replace('http://', `http://${id}:${encodeURIComponent(token)}@`), caPath: gateway.caPath });
  const bearer = (token: string) => ['--proxy-header', `Proxy-Authorization: Bearer ${token}`];
  const metricsText = async () => (await fetch(gateway.metricsUrl!)).text();
  const lastRequestLine = (path: string) => gateway.waitForAudit((line) => line.kind === 'request' && line.path === path);

  beforeAll(async () => {
    pki = createTestPki([API, OTHER]);
    scratch = mkdtempSync(join(tmpdir(), 'srt-gw-serve-clients-'));
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    plainUpstream = await startUpstream({ plain: true, names: [API] });
    [remoteKey, fileKey, rotatedKey] = await Promise.all([newKey('remote-1'), newKey('file-1'), newKey('file-2')]);
    jwksServer = http.createServer((req, res) => {
      if (req.url === '/jwks.json') res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [remoteKey.jwk] }));
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwksPort = (jwksServer.address() as net.AddressInfo).port;
    jwksDir = join(scratch, 'jwks');
    mkdirSync(jwksDir);
    writeConfigMapJwks(jwksDir, '..2026_01', [fileKey.jwk]);
    stateDir = join(scratch, 'state');
    const issued = tokenCli(['issue', '--client', 'laptops', '--ttl', '1h', '--state-dir', stateDir]);
    expect(issued.status, issued.stderr).toBe(0);
    issuedToken = issued.stdout.trim();

    gateway = await startGatewayProcess({
      policyYaml: `
version: 1
rules:
  - { id: ci-read, host: ${API}, paths: ["/ci/**"] }
  - { id: builders-read, host: ${API}, paths: ["/builders/**"] }
  - { id: builders-other, host: ${OTHER} }
  - { id: no-secrets, host: ${API}, paths: ["/ci/secret/**"], action: deny }
clients:
  - id: ci
    token: { sha256: "${sha256(TOKEN_CI)}" }
    rules: [ci-read]
  - id: everyone
    token: { sha256: "${sha256(TOKEN_ALL)}" }
  - id: builders
    jwt: { issuer: "${ISSUER}", audience: srt-gw, jwksFile: "${join(jwksDir, 'jwks.json')}", subject: "system:serviceaccount:agents:*" }
    rules: [builders-read, builders-other]
  - id: remote
    jwt: { issuer: "${REMOTE_ISSUER}", audience: srt-gw, jwksUrl: "http://127.0.0.1:${jwksPort}/jwks.json" }
    rules: [ci-read]
  - id: laptops
    issued: {}
    rules: [ci-read]
`,
      args: ['--upstream-ca', pki.ca.certPath, '--resolve', `${API}=127.0.0.1`, '--resolve', `${OTHER}=127.0.0.1`, '--metrics', '127.0.0.1:0', '--state-dir', stateDir],
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    await plainUpstream?.close();
    await new Promise((resolve) => jwksServer?.close(resolve));
    pki?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  describe('per-client rules', () => {
    it('ci (Basic, its token as password) reaches its rule over CONNECT, and the audit line names it', async () => {
      const res = await curlThroughProxy(basic('ci', TOKEN_CI), [upstream.url('/ci/a')]);
      expect([res.connectStatus, res.status]).toEqual([200, 200]);
      expect(res.json<EchoResponse>().headers['proxy-authorization']).toBeUndefined();
      const line = await lastRequestLine('/ci/a');
      expect(line).toMatchObject({ clientId: 'ci', decision: 'allow', rule: 'ci-read', code: 'allowed-by-rule' });
      const connect = await gateway.waitForAudit((entry) => entry.kind === 'connect' && entry.conn === line.conn);
      expect(connect).toMatchObject({ clientId: 'ci', decision: 'allow' });
    });

    it("ci is refused another client's rule on the same host: 403 rule-not-for-client", async () => {
      const res = await curlThroughProxy(basic('ci', TOKEN_CI), [upstream.url('/builders/a')]);
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ code: 'rule-not-for-client', rule: 'builders-read' });
      expect(await lastRequestLine('/builders/a')).toMatchObject({ clientId: 'ci', decision: 'deny', code: 'rule-not-for-client' });
    });

    it("ci's CONNECT to a host only another client's rule allows is refused before any tunnel", async () => {
      const res = await curlThroughProxy(basic('ci', TOKEN_CI), [`https://${OTHER}:${upstream.port}/x`]);
      expect(res.connectStatus).toBe(403);
      expect(res.status).not.toBe(200);
      expect(await gateway.waitForAudit((line) => line.kind === 'connect' && line.host === OTHER && line.clientId === 'ci')).toMatchObject({ decision: 'deny', code: 'rule-not-for-client' });
    });

    it('a deny rule applies to a client whose rules: leave it out', async () => {
      const res = await curlThroughProxy(basic('ci', TOKEN_CI), [upstream.url('/ci/secret/k')]);
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ code: 'denied-by-rule', rule: 'no-secrets' });
    });

    it('a client without rules: may use every rule; Bearer works as well as Basic, over HTTP/2 in the tunnel', async () => {
      const res = await curlThroughProxy(gateway, ['--http2', ...bearer(TOKEN_ALL), upstream.url('/builders/b')]);
      expect([res.status, res.httpVersion]).toEqual([200, '2']);
      expect(await lastRequestLine('/builders/b')).toMatchObject({ clientId: 'everyone', protocol: 'h2', decision: 'allow' });
    });

    it('plain absolute-form HTTP authenticates per request, and Proxy-Authorization is not forwarded', async () => {
      const res = await curlThroughProxy(basic('ci', TOKEN_CI), [`http://${API}:${plainUpstream.port}/ci/plain`]);
      expect(res.status).toBe(200);
      const echoed = res.json<EchoResponse>();
      expect(echoed.headers['proxy-authorization']).toBeUndefined();
      expect(plainUpstream.received.find((request) => request.path === '/ci/plain')?.headers['proxy-authorization']).toBeUndefined();
      expect(await lastRequestLine('/ci/plain')).toMatchObject({ clientId: 'ci', decision: 'allow' });
    });
  });

  describe('407 for requests that do not authenticate', () => {
    it('no credentials: CONNECT gets 407 with Proxy-Authenticate and a body with only the code', async () => {
      const answer = await rawRequest(gateway.proxyPort, `CONNECT ${API}:${upstream.port} HTTP/1.1\r\nHost: ${API}:${upstream.port}\r\n\r\n`);
      expect(answer).toMatch(/^HTTP\/1\.1 407 /);
      expect(answer).toMatch(/\r\nproxy-authenticate: Bearer realm="srt-gw", Basic realm="srt-gw"\r\n/i);
      expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'proxy-authentication-required', code: 'client-credentials-missing' });
      expect(await gateway.waitForAudit((line) => line.kind === 'connect' && line.code === 'client-credentials-missing')).toMatchObject({ decision: 'deny' });
      expect(upstream.received.some((request) => request.path === '/never')).toBe(false);
    });

    it('a wrong token (curl, Basic) gets 407 client-credentials-invalid; the audit line has the reason and code', async () => {
      const res = await curlThroughProxy(basic('ci', 'not-the-token'), [`http://${API}:${plainUpstream.port}/ci/wrong-token`]);
      expect(res.status).toBe(407);
      expect(res.headers['proxy-authenticate']).toBe('Bearer realm="srt-gw", Basic realm="srt-gw"');
      expect(res.json()).toEqual({ error: 'proxy-authentication-required', code: 'client-credentials-invalid' });
      const line = await lastRequestLine('/ci/wrong-token');
      expect(line).toMatchObject({ decision: 'deny', step: 'authentication', status: 407, code: 'client-credentials-invalid' });
      expect(line.clientId).toBeUndefined();
      expect(String(line.reason).length).toBeGreaterThan(10);
      expect(JSON.stringify(line)).not.toContain('not-the-token');
      expect(plainUpstream.received.some((request) => request.path === '/ci/wrong-token')).toBe(false);
    });

    it('Proxy-Authorization sent twice is refused, even when the first one is good', async () => {
      const encoded = Buffer.from(`ci:${TOKEN_CI}`).toString('base64');
      const answer = await rawRequest(
        gateway.proxyPort,
        `GET http://${API}:${plainUpstream.port}/ci/twice HTTP/1.1\r\nHost: ${API}:${plainUpstream.port}\r\nProxy-Authorization: Basic ${encoded}\r\nProxy-Authorization: Bearer ${TOKEN_ALL}\r\nConnection: close\r\n\r\n`,
      );
      expect(answer).toMatch(/^HTTP\/1\.1 407 /);
      expect(answer).toContain('"code":"client-credentials-malformed"');
      expect(plainUpstream.received.some((request) => request.path === '/ci/twice')).toBe(false);
    });

    it('a node client (http.request through the proxy) sees the same 407', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: gateway.proxyPort, method: 'GET', path: `http://${API}:${plainUpstream.port}/ci/node`, headers: { host: API } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(407);
    });
  });

  describe('JWT clients', () => {
    it('a JWT from the JWKS file is the builders client', async () => {
      const token = await signJwt(fileKey, { iss: ISSUER, aud: 'srt-gw', sub: 'system:serviceaccount:agents:b1' });
      const res = await curlThroughProxy(gateway, [...bearer(token), upstream.url('/builders/jwt')]);
      expect(res.status).toBe(200);
      expect(await lastRequestLine('/builders/jwt')).toMatchObject({ clientId: 'builders' });
    });

    it.each([
      ['expired', { expiresIn: -120 }, 'client-token-expired'],
      ['for another audience', { aud: 'someone-else' }, 'client-token-wrong-audience'],
    ] as const)('a JWT %s gets 407 with its code', async (_label, change, code) => {
      const token = await signJwt(fileKey, { iss: ISSUER, aud: 'srt-gw', sub: 'system:serviceaccount:agents:b1', ...change });
      const res = await curlThroughProxy(gateway, [...bearer(token), upstream.url('/builders/bad')]);
      expect(res.connectStatus).toBe(407);
      expect(res.headerBlocks[0]).toContain(code);
    });

    it('a JWT signed by a key in no JWKS gets 407 client-token-unknown-key', async () => {
      const stranger = await newKey('stranger');
      const token = await signJwt(stranger, { iss: ISSUER, aud: 'srt-gw', sub: 'system:serviceaccount:agents:b1' });
      const res = await curlThroughProxy(gateway, [...bearer(token), upstream.url('/builders/stranger')]);
      expect(res.connectStatus).toBe(407);
      expect(res.headerBlocks[0]).toContain('client-token-unknown-key');
    });

    it('a rotated JWKS file (ConfigMap ..data swap) is read again: the new key is accepted, the old one refused', async () => {
      writeConfigMapJwks(jwksDir, '..2026_02', [rotatedKey.jwk]);
      const fresh = await signJwt(rotatedKey, { iss: ISSUER, aud: 'srt-gw', sub: 'system:serviceaccount:agents:b2' });
      const res = await eventually(() => curlThroughProxy(gateway, [...bearer(fresh), upstream.url('/builders/rotated')]), (result) => result.status === 200);
      expect(res.status).toBe(200);
      const old = await signJwt(fileKey, { iss: ISSUER, aud: 'srt-gw', sub: 'system:serviceaccount:agents:b3' });
      const refused = await curlThroughProxy(gateway, [...bearer(old), upstream.url('/builders/old-key')]);
      expect(refused.connectStatus).toBe(407);
      expect(refused.headerBlocks[0]).toContain('client-token-unknown-key');
    });

    it('a JWT verified with keys from a jwksUrl on a local server is the remote client', async () => {
      const token = await signJwt(remoteKey, { iss: REMOTE_ISSUER, aud: 'srt-gw', sub: 'anyone' });
      const res = await curlThroughProxy(basic('remote', token), [upstream.url('/ci/remote')]);
      expect(res.status).toBe(200);
      expect(await lastRequestLine('/ci/remote')).toMatchObject({ clientId: 'remote' });
    });
  });

  describe('issued tokens', () => {
    it('a token from srt-gw token issue is accepted, then refused once srt-gw token revoke revokes it', async () => {
      const ok = await curlThroughProxy(gateway, [...bearer(issuedToken), upstream.url('/ci/issued')]);
      expect(ok.status).toBe(200);
      expect(await lastRequestLine('/ci/issued')).toMatchObject({ clientId: 'laptops' });
      const revoked = tokenCli(['revoke', issuedToken, '--state-dir', stateDir]);
      expect(revoked.status, revoked.stderr).toBe(0);
      const refused = await eventually(() => curlThroughProxy(gateway, [...bearer(issuedToken), upstream.url('/ci/revoked')]), (result) => result.connectStatus === 407);
      expect(refused.connectStatus).toBe(407);
      expect(refused.headerBlocks[0]).toContain('client-token-revoked');
    });
  });

  describe('metrics and health', () => {
    it('/metrics counts requests by client (bounded: ids of the policy, "other" for refusals) and refusals by code', async () => {
      const text = await eventually(metricsText, (body) => /srtgw_client_requests_total\{client="other",decision="deny"\} [1-9]/.test(body));
      expect(text).toMatch(/srtgw_client_requests_total\{client="ci",decision="allow"\} [1-9]/);
      expect(text).toMatch(/srtgw_client_requests_total\{client="ci",decision="deny"\} [1-9]/);
      expect(text).toMatch(/srtgw_client_requests_total\{client="other",decision="deny"\} [1-9]/);
      expect(text).toMatch(/srtgw_client_authentication_failures_total\{code="client-credentials-invalid"\} [1-9]/);
      expect(text).not.toMatch(/client="not-the-token"/);
    });

    it('/healthz and /readyz answer 200 while serving', async () => {
      const base = gateway.metricsUrl!.replace(/\/metrics$/, '');
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
    });
  });

  it('every request line of this gateway names a client, or is a 407 with a client-* code', async () => {
    const lines = (await gateway.auditLines()).filter((line: AuditLine) => line.kind === 'request');
    expect(lines.length).toBeGreaterThan(5);
    for (const line of lines) {
      if (line.clientId === undefined) expect([line.status, String(line.code)]).toEqual([407, expect.stringMatching(/^client-/)]);
    }
  });
});

describe.skipIf(skip !== null)('srt-gw serve --tls-cert --client-ca (mTLS clients on an HTTPS proxy)', () => {
  let pki: TestPki;
  let scratch: string;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let httpsProxy: string;
  let runner: { certPath: string; keyPath: string };
  let stranger: { certPath: string; keyPath: string };
  let intruder: { certPath: string; keyPath: string };

  const curlMtls = (cert: { certPath: string; keyPath: string } | null, url: string) =>
    curlThroughProxy({ proxyUrl: httpsProxy, caPath: gateway.caPath }, ['--proxy-cacert', pki.ca.certPath, ...(cert ? ['--proxy-cert', cert.certPath, '--proxy-key', cert.keyPath] : []), url]);

  beforeAll(async () => {
    pki = createTestPki([API]);
    scratch = mkdtempSync(join(tmpdir(), 'srt-gw-serve-mtls-'));
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    runner = issueClientCert(scratch, pki.ca, 'runner-7');
    intruder = issueClientCert(scratch, pki.ca, 'intruder');
    stranger = issueClientCert(scratch, pki.untrustedCa, 'runner-8');
    gateway = await startGatewayProcess({
      policyYaml: `
version: 1
rules:
  - { id: api, host: ${API} }
clients:
  - id: runners
    mtls: { subject: "CN=runner-*" }
`,
      args: ['--upstream-ca', pki.ca.certPath, '--resolve', `${API}=127.0.0.1`, '--tls-cert', pki.server.certPath, '--tls-key', pki.server.keyPath, '--client-ca', pki.ca.certPath, '--state-dir', join(scratch, 'state')],
    });
    httpsProxy = gateway.proxyUrl.replace('http://', 'https://');
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    pki?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('a certificate from the client CA matching a client opens a tunnel (TLS inside TLS), HTTP/1.1 and HTTP/2', async () => {
    const res = await curlMtls(runner, upstream.url('/mtls/ok'));
    expect([res.connectStatus, res.status], res.stderr).toEqual([200, 200]);
    const h2 = await curlThroughProxy({ proxyUrl: httpsProxy, caPath: gateway.caPath }, ['--http2', '--proxy-cacert', pki.ca.certPath, '--proxy-cert', runner.certPath, '--proxy-key', runner.keyPath, upstream.url('/mtls/h2')]);
    expect([h2.status, h2.httpVersion]).toEqual([200, '2']);
    expect(await gateway.waitForAudit((line) => line.kind === 'request' && line.path === '/mtls/ok')).toMatchObject({ clientId: 'runners', decision: 'allow' });
  });

  type ClientCert = { certPath: string; keyPath: string } | null;
  it.each<[string, () => ClientCert, string]>([
    ['a certificate from an unknown CA', () => stranger, 'client-certificate-unverified'],
    ['a verified certificate matching no client', () => intruder, 'client-certificate-not-allowed'],
    ['no certificate at all', () => null, 'client-credentials-missing'],
  ])('%s: 407 with its code', async (_label, cert, code) => {
    const res = await curlMtls(cert(), upstream.url('/mtls/refused'));
    expect(res.connectStatus, res.stderr).toBe(407);
    expect(res.headerBlocks[0]).toContain(code);
    expect(await gateway.waitForAudit((line) => line.kind === 'connect' && line.code === code)).toMatchObject({ decision: 'deny' });
  });
});

describe.skipIf(skip !== null)('srt-gw serve clients: configuration and reload', () => {
  it('a client-tokens/ directory others may write → exit 2 with the message, never listening', async () => {
    const state = mkdtempSync(join(tmpdir(), 'srt-gw-serve-clients-state-'));
    try {
      mkdirSync(join(state, 'client-tokens'));
      chmodSync(join(state, 'client-tokens'), 0o777);
      const result = await runGatewayToExit({
        policyYaml: `version: 1\nrules:\n  - { id: api, host: ${API} }\nclients:\n  - { id: laptops, issued: {} }\n`,
        args: ['--state-dir', state],
      });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain('client-tokens');
      expect(result.stdout).not.toContain('"listening"');
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  });

  it('a reload makes a new authenticator: a token taken out of the policy is refused, the new one accepted', async () => {
    const plain = await startUpstream({ plain: true, names: [API] });
    const oldToken = `old-${randomBytes(8).toString('hex')}`;
    const newToken = `new-${randomBytes(8).toString('hex')}`;
    const policy = (token: string) => `version: 1\nrules:\n  - { id: api, host: ${API} }\nclients:\n  - { id: ci, token: { sha256: "${sha256(token)}" } }\n`;
    const gateway = await startGatewayProcess({ policyYaml: policy(oldToken), args: ['--resolve', `${API}=127.0.0.1`, '--state-dir', join(tmpdir(), 'srt-gw-unused-state')] });
    try {
      const as = (token: string) => curlThroughProxy({ proxyUrl: gateway.proxyUrl.replace('http://', `http://ci:${token}@`), caPath: gateway.caPath }, [`http://${API}:${plain.port}/reload`]);
      expect((await as(oldToken)).status).toBe(200);
      expect((await as(newToken)).status).toBe(407);
      writeFileSync(gateway.policyPath, policy(newToken));
      process.kill(gateway.pid, 'SIGHUP');
      const after = await eventually(() => as(newToken), (result) => result.status === 200);
      expect(after.status).toBe(200);
      expect((await as(oldToken)).status).toBe(407);
    } finally {
      await gateway.stop();
      await plain.close();
    }
  });

  it('without clients: nothing asks for credentials, and no line or metric names a client', async () => {
    const plain = await startUpstream({ plain: true, names: [API] });
    const gateway = await startGatewayProcess({ policyYaml: `version: 1\nrules:\n  - { id: api, host: ${API} }\n`, args: ['--resolve', `${API}=127.0.0.1`, '--metrics', '127.0.0.1:0'] });
    try {
      expect((await curlThroughProxy(gateway, [`http://${API}:${plain.port}/anonymous`])).status).toBe(200);
      const line = await gateway.waitForAudit((entry) => entry.kind === 'request' && entry.path === '/anonymous');
      expect('clientId' in line).toBe(false);
      expect(await (await fetch(gateway.metricsUrl!)).text()).not.toContain('srtgw_client_requests_total{');
    } finally {
      await gateway.stop();
      await plain.close();
    }
  });
});
