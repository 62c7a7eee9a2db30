// Per-API credential rules and egress budgets, end to end: the real `srt-gw serve`, real curl
// (HTTP/1.1 and HTTP/2), and a fake API that records every request it receives, so each test can
// prove what did NOT reach it. Closes the approved-domain leak: an allowed host must not become a
// place to upload stolen data with the attacker's own API key.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialPlaceholders } from '../../policies/credentials.js';
import { parsePolicy } from '../../policies/loader.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { curlThroughProxy, runGatewayToExit, type AuditLine, type GatewayProcess } from '../support/gateway-process.js';
import { openTlsTunnel } from '../support/raw-tunnel.js';
import { startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';
import { encodeFrame, newWebsocketKey, OPCODE } from '../support/websocket-frames.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));

const API = 'api.example.test';
const ENV_NAME = 'SRTGW_E2E_EXAMPLE_API_KEY';
const SECRET = `real-key-${randomBytes(12).toString('hex')}`;
const FILE_SECRET = `file-token-${randomBytes(12).toString('hex')}`;
const ROTATED_SECRET = `rotated-token-${randomBytes(12).toString('hex')}`;
const COMMAND_SECRET = `command-key-${randomBytes(12).toString('hex')}`;
const ATTACKER_KEY = 'sk-ant-attacker-0000111122223333';
const GOOD_REQUIRED = `allowed-${randomBytes(8).toString('hex')}`;
const BUDGET_BYTES = 100_000;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

function policyYaml(secretDir: string): string {
  return `
version: 1
rules:
  - id: inject-api
    host: ${API}
    paths: ["/v1/**", "/ws"]
    credentials:
      header: x-api-key
      inject: { env: ${ENV_NAME} }
  - id: bearer-api
    host: ${API}
    paths: ["/bearer/**"]
    credentials:
      header: authorization
      inject: { file: ${join(secretDir, 'bearer.key')} }
  - id: query-api
    host: ${API}
    paths: ["/q/**"]
    credentials:
      query: key
      inject: { command: [cat, ${join(secretDir, 'query.key')}] }
  - id: require-api
    host: ${API}
    paths: ["/r/**"]
    credentials: { header: x-api-key, require: ["sha256:${sha256(GOOD_REQUIRED)}"] }
  - id: strip-api
    host: ${API}
    paths: ["/s/**"]
    credentials: { header: authorization, strip: true }
  - id: strip-key-api
    host: ${API}
    paths: ["/sx/**"]
    credentials: { header: x-api-key, strip: true }
  - id: strip-query-api
    host: ${API}
    paths: ["/sq/**"]
    credentials: { query: key, strip: true }
  - id: budget-api
    host: ${API}
    paths: ["/upload/**"]
    budget: { requestBytesPerRun: ${BUDGET_BYTES} }
`;
}

interface DenialBody {
  error: string;
  rule: string | null;
  reason: string;
}

const received = (upstream: Upstream, prefix: string) => upstream.received.filter((r) => r.path.startsWith(prefix));
const requestLine = (path: string) => (line: AuditLine) => line.kind === 'request' && line.path === path;

describe.skipIf(skip !== null)('credential rules and budgets through the gateway', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let secretDir: string;
  let placeholder: string;
  let policyText: string;
  const curl = (args: string[], input?: Buffer | string) => curlThroughProxy(gateway, args, input === undefined ? {} : { input });

  beforeAll(async () => {
    secretDir = mkdtempSync(join(tmpdir(), 'srt-gw-secrets-'));
    writeFileSync(join(secretDir, 'bearer.key'), `${FILE_SECRET}\n`, { mode: 0o600 });
    writeFileSync(join(secretDir, 'query.key'), COMMAND_SECRET, { mode: 0o600 });
    policyText = policyYaml(secretDir);
    // What `srt-gw run` would put into the jail's environment instead of the real key.
    placeholder = credentialPlaceholders(parsePolicy(policyText)).get(ENV_NAME) ?? '';
    fixture = await startGatewayFixture({ policyYaml: policyText, names: [API], args: ['--metrics', '127.0.0.1:0'], env: { [ENV_NAME]: SECRET } });
    ({ upstream, gateway } = fixture);
  });

  afterAll(async () => {
    await fixture?.close();
    if (secretDir) rmSync(secretDir, { recursive: true, force: true });
  });

  it('the placeholder is derived from the variable name, not the secret', () => {
    expect(placeholder).toMatch(/^srtgw-placeholder-/);
    expect(placeholder).not.toContain(SECRET);
  });

  describe('the approved-domain attack', () => {
    it.each([['--http1.1'], ['--http2']])("a POST with the attacker's own x-api-key to the allowed host is refused (%s); neither key nor body reaches the API", async (version) => {
      const stolen = `stolen-data-${randomBytes(16).toString('hex')}`;
      const path = `/v1/files/upload-${version.slice(2)}`;
      const res = await curl([version, '-H', `x-api-key: ${ATTACKER_KEY}`, '-H', 'content-type: text/plain', upstream.url(path)], stolen);
      expect(res.status).toBe(403);
      const body = res.json<DenialBody>();
      expect(body).toMatchObject({ error: 'denied', rule: 'inject-api' });
      expect(body.reason).toContain('x-api-key');
      expect(res.headers['x-srt-gw-reason']).toContain('inject-api');
      // SECURITY: the 403 names the rule, never a value.
      expect(res.text).not.toContain(ATTACKER_KEY);
      expect(res.text).not.toContain(SECRET);
      // The fake API's log: no request, so neither the attacker key nor the body arrived.
      expect(received(upstream, path)).toEqual([]);
      expect(JSON.stringify(upstream.received)).not.toContain(ATTACKER_KEY);
      const line = await gateway.waitForAudit(requestLine(path));
      expect(line).toMatchObject({ decision: 'deny', step: 'credentials', rule: 'inject-api', status: 403, credential: 'refused' });
      expect(JSON.stringify(line)).not.toContain(ATTACKER_KEY);
    });
  });

  describe('plain HTTP', () => {
    it('a rule that injects never sends its secret over plain HTTP: 403, and the plain upstream receives nothing', async () => {
      const plain = await startUpstream({ plain: true, names: [API] });
      try {
        const url = `http://${API}:${plain.port}/v1/plain`;
        const res = await curl(['-H', `x-api-key: ${placeholder}`, url]);
        expect(res.status).toBe(403);
        expect(res.json<DenialBody>()).toMatchObject({ rule: 'inject-api' });
        expect(res.json<DenialBody>().reason).toContain('only over https');
        expect(plain.received).toEqual([]);
        const line = await gateway.waitForAudit(requestLine('/v1/plain'));
        expect(line).toMatchObject({ decision: 'deny', step: 'credentials', credential: 'refused', status: 403 });
      } finally {
        await plain.close();
      }
    });
  });

  describe('inject', () => {
    it.each([
      ['HTTP/1.1 with the placeholder', ['--http1.1'], true, '1.1'],
      ['HTTP/2 with the placeholder', ['--http2'], true, '2'],
      ['HTTP/1.1 with no key at all', ['--http1.1'], false, '1.1'],
      ['HTTP/2 with no key at all', ['--http2'], false, '2'],
    ])('%s: the API receives the real key; its echo comes back with the placeholder', async (_name, flags, sendPlaceholder, httpVersion) => {
      const path = `/v1/echo-${httpVersion}-${sendPlaceholder ? 'placeholder' : 'none'}`;
      const res = await curl([...flags, ...(sendPlaceholder ? ['-H', `x-api-key: ${placeholder}`] : []), upstream.url(path)]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(200);
      expect(res.httpVersion).toBe(httpVersion);
      const seen = received(upstream, path);
      expect(seen).toHaveLength(1);
      expect(seen[0]?.headers['x-api-key']).toBe(SECRET);
      // The fake API echoes its request headers: the secret is masked on the way back.
      expect(res.text).not.toContain(SECRET);
      expect(res.json<EchoResponse>().headers['x-api-key']).toBe(placeholder);
    });

    it('a request body posted with the placeholder arrives intact', async () => {
      const body = randomBytes(64 * 1024);
      const res = await curl(['-H', `x-api-key: ${placeholder}`, upstream.url('/v1/upload-ok')], body);
      expect(res.status).toBe(200);
      expect(res.json<EchoResponse>()).toMatchObject({ bodyBytes: body.length, bodySha256: createHash('sha256').update(body).digest('hex') });
      expect(received(upstream, '/v1/upload-ok')[0]?.headers['x-api-key']).toBe(SECRET);
    });

    it('Authorization: Bearer <placeholder> becomes Bearer <secret from the file>', async () => {
      const res = await curl(['-H', 'authorization: Bearer anything-else', upstream.url('/bearer/a')]);
      expect(res.status).toBe(403);
      const ok = await curl(['--http2', upstream.url('/bearer/b')]);
      expect(ok.status).toBe(200);
      expect(received(upstream, '/bearer/b')[0]?.headers.authorization).toBe(`Bearer ${FILE_SECRET}`);
      expect(ok.text).not.toContain(FILE_SECRET);
      expect(received(upstream, '/bearer/a')).toEqual([]);
    });

    it('a query parameter gets the secret from a command; the echoed URL is masked', async () => {
      const refused = await curl([upstream.url(`/q/x?key=${ATTACKER_KEY}`)]);
      expect(refused.status).toBe(403);
      const res = await curl([upstream.url('/q/y?page=2')]);
      expect(res.status).toBe(200);
      expect(received(upstream, '/q/y')[0]?.path).toBe(`/q/y?page=2&key=${COMMAND_SECRET}`);
      expect(res.text).not.toContain(COMMAND_SECRET);
      expect(received(upstream, '/q/x')).toEqual([]);
    });

    it('a WebSocket upgrade gets the key injected, and an attacker key is refused before the upstream', async () => {
      const authority = `${API}:${upstream.port}`;
      const upgrade = (key: string | null) =>
        `GET /ws HTTP/1.1\r\nHost: ${authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${newWebsocketKey()}\r\nSec-WebSocket-Version: 13\r\n${key === null ? '' : `x-api-key: ${key}\r\n`}\r\n`;
      const gatewayCa = readFileSync(gateway.caPath, 'utf8');
      const refused = await openTlsTunnel(gateway.proxyPort, authority, { ca: gatewayCa, alpn: ['http/1.1'] });
      try {
        refused.write(upgrade(ATTACKER_KEY));
        expect((await refused.readResponse()).status).toBe(403);
      } finally {
        refused.destroy();
      }
      expect(upstream.received.filter((r) => r.websocket)).toEqual([]);
      const accepted = await openTlsTunnel(gateway.proxyPort, authority, { ca: gatewayCa, alpn: ['http/1.1'] });
      try {
        accepted.write(upgrade(placeholder));
        expect((await accepted.readResponse()).status).toBe(101);
      } finally {
        accepted.destroy();
      }
      const upgrades = upstream.received.filter((r) => r.websocket);
      expect(upgrades).toHaveLength(1);
      expect(upgrades[0]?.headers['x-api-key']).toBe(SECRET);
    });

    it('a WebSocket upstream that echoes the injected key in fragments, a ping between them, sends it masked', async () => {
      const authority = `${API}:${upstream.port}`;
      const conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: readFileSync(gateway.caPath, 'utf8'), alpn: ['http/1.1'] });
      try {
        // 7-byte fragments: the key (and the placeholder) spans several frames.
        conn.write(
          `GET /ws?echo-headers=7 HTTP/1.1\r\nHost: ${authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${newWebsocketKey()}\r\nSec-WebSocket-Version: 13\r\nx-api-key: ${placeholder}\r\n\r\n`,
        );
        expect((await conn.readResponse()).status).toBe(101);
        const fragments: Buffer[] = [];
        let ping = false;
        for (let frame = await conn.readFrame(); ; frame = await conn.readFrame()) {
          if (frame.opcode === OPCODE.ping) {
            ping = true;
            continue;
          }
          fragments.push(frame.payload);
          if (frame.fin) break;
        }
        expect(ping).toBe(true);
        expect(fragments.length).toBeGreaterThan(SECRET.length / 7);
        const message = Buffer.concat(fragments).toString();
        expect(message).not.toContain(SECRET);
        // Same length as the secret: the placeholder, cut or padded to fit the frames.
        expect(JSON.parse(message)['x-api-key']).toHaveLength(SECRET.length);
        expect(received(upstream, '/ws?echo-headers=7')[0]?.headers['x-api-key']).toBe(SECRET);
      } finally {
        conn.destroy();
      }
    });

    it('a WebSocket frame that cannot be searched for the key (compressed) ends the connection, and the audit line says why', async () => {
      const authority = `${API}:${upstream.port}`;
      const conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: readFileSync(gateway.caPath, 'utf8'), alpn: ['http/1.1'] });
      try {
        conn.write(
          `GET /ws?compressed-frame HTTP/1.1\r\nHost: ${authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${newWebsocketKey()}\r\nSec-WebSocket-Version: 13\r\nx-api-key: ${placeholder}\r\n\r\n`,
        );
        expect((await conn.readResponse()).status).toBe(101);
        expect(await conn.waitForClose()).toBe(true);
        // Not a byte of the frame reached the client.
        expect(conn.pending.length).toBe(0);
      } finally {
        conn.destroy();
      }
      const line = await gateway.waitForAudit((entry) => entry.path === '/ws' && entry.decision === 'error');
      expect(line).toMatchObject({ decision: 'error', step: 'upstream', status: 101 });
      expect(line.reason).toMatch(/compressed or extended WebSocket frame/);
    });

    it('after a rotated secret file and SIGHUP, the new secret is injected', async () => {
      writeFileSync(join(secretDir, 'bearer.key'), ROTATED_SECRET);
      process.kill(gateway.pid, 'SIGHUP');
      await gateway.waitForAudit((line) => line.kind === 'policy-reload' && line.outcome === 'ok');
      const res = await curl([upstream.url('/bearer/rotated')]);
      expect(res.status).toBe(200);
      expect(received(upstream, '/bearer/rotated')[0]?.headers.authorization).toBe(`Bearer ${ROTATED_SECRET}`);
      expect(res.text).not.toContain(ROTATED_SECRET);
    });
  });

  describe('require', () => {
    it('a value whose hash is listed passes unchanged; any other value, or none, is refused', async () => {
      const good = await curl(['-H', `x-api-key: ${GOOD_REQUIRED}`, upstream.url('/r/good')]);
      expect(good.status).toBe(200);
      expect(received(upstream, '/r/good')[0]?.headers['x-api-key']).toBe(GOOD_REQUIRED);
      const bad = await curl(['--http2', '-H', `x-api-key: ${ATTACKER_KEY}`, upstream.url('/r/bad')]);
      expect(bad.status).toBe(403);
      expect(bad.json<DenialBody>()).toMatchObject({ rule: 'require-api' });
      const none = await curl([upstream.url('/r/none')]);
      expect(none.status).toBe(403);
      expect(received(upstream, '/r/bad')).toEqual([]);
      expect(received(upstream, '/r/none')).toEqual([]);
      expect(await gateway.waitForAudit(requestLine('/r/good'))).toMatchObject({ decision: 'allow', credential: 'required-ok' });
    });
  });

  describe('strip', () => {
    it('the header never reaches the upstream', async () => {
      const res = await curl(['-H', `authorization: Bearer ${ATTACKER_KEY}`, upstream.url('/s/x')]);
      expect(res.status).toBe(200);
      expect(received(upstream, '/s/x')[0]?.headers.authorization).toBeUndefined();
      expect(await gateway.waitForAudit(requestLine('/s/x'))).toMatchObject({ decision: 'allow', credential: 'stripped' });
    });
  });

  describe('header spellings', () => {
    it('"x_api_key" (read as HTTP_X_API_KEY by CGI, WSGI and PHP) with the attacker\'s key is refused beside an injected x-api-key; nothing reaches the API', async () => {
      for (const spelling of ['x_api_key', 'X.Api.Key']) {
        const path = `/v1/spelling-${spelling.replace(/\W/g, '')}`;
        const res = await curl(['-H', `x-api-key: ${placeholder}`, '-H', `${spelling}: ${ATTACKER_KEY}`, upstream.url(path)]);
        expect(res.status).toBe(403);
        expect(res.json<DenialBody>()).toMatchObject({ rule: 'inject-api' });
        expect(received(upstream, path)).toEqual([]);
      }
      expect(JSON.stringify(upstream.received)).not.toContain(ATTACKER_KEY);
    });

    it('a placeholder sent as "x_api_key" is replaced: the API sees one x-api-key with the secret and no x_api_key', async () => {
      const res = await curl(['--http2', '-H', `x_api_key: ${placeholder}`, upstream.url('/v1/spelling-placeholder')]);
      expect(res.status).toBe(200);
      const seen = received(upstream, '/v1/spelling-placeholder')[0]?.headers;
      expect(seen?.['x-api-key']).toBe(SECRET);
      expect(seen?.x_api_key).toBeUndefined();
      expect(res.json<EchoResponse>().headers).not.toHaveProperty('x_api_key');
    });

    it('a strip rule removes every spelling: the echoing API shows no x_api_key: ATTACKER', async () => {
      const res = await curl(['-H', `x_api_key: ${ATTACKER_KEY}`, '-H', `X-API-KEY: ${ATTACKER_KEY}`, '-H', `x.api.key: ${ATTACKER_KEY}`, '-H', 'x-api-key-id: 7', upstream.url('/sx/echo')]);
      expect(res.status).toBe(200);
      const echoed = res.json<EchoResponse>().headers;
      expect(echoed).not.toHaveProperty('x_api_key');
      expect(echoed).not.toHaveProperty('x-api-key');
      expect(echoed).not.toHaveProperty('x.api.key');
      expect(echoed['x-api-key-id']).toBe('7');
      expect(res.text).not.toContain(ATTACKER_KEY);
    });
  });

  describe('query spellings', () => {
    it('a stripped parameter goes in every spelling PHP, Rack, ASP.NET and C stacks fold to it', async () => {
      const spellings = ['key[]', 'key[x]', 'key%00', 'key%20', 'key.', 'k%65y', 'KEY'];
      const query = [...spellings.map((spelling) => `${spelling}=${ATTACKER_KEY}`), 'page=2'].join('&');
      const res = await curl(['-g', upstream.url(`/sq/a?${query}`)]);
      expect(res.status).toBe(200);
      expect(received(upstream, '/sq/a')[0]?.path).toBe('/sq/a?page=2');
    });

    it('an injected parameter sent as "key[]" with the attacker\'s key is refused', async () => {
      const res = await curl(['-g', upstream.url(`/q/spelling?key[]=${ATTACKER_KEY}`)]);
      expect(res.status).toBe(403);
      expect(received(upstream, '/q/spelling')).toEqual([]);
    });
  });

  describe('reflected encodings', () => {
    it('an API that reflects the injected key as base64 (inside a larger blob), every byte %XX, hex and \\uXXXX sends it masked', async () => {
      // An upstream of its own: it answers with the x-api-key it received, encoded.
      const reflector = https.createServer({ cert: fixture!.pki.server.cert, key: fixture!.pki.server.key }, (req, res) => {
        const key = String(req.headers['x-api-key'] ?? '');
        const bytes = [...Buffer.from(key)];
        const body = JSON.stringify({
          base64: Buffer.from(`{"user":"bot","key":"${key}"}`).toString('base64'),
          base64url: Buffer.from(`k=${key}`).toString('base64url'),
          percent: bytes.map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join(''),
          hex: Buffer.from(key).toString('hex').toUpperCase(),
        });
        // Every character as a JSON \\uXXXX escape, written into the JSON text as such.
        const unicode = [...key].map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
        const text = `${body.slice(0, -1)},"unicode":"${unicode}"}`;
        res.writeHead(200, { 'content-type': 'application/json', 'x-key-hex': Buffer.from(key).toString('hex') });
        res.end(text);
      });
      await new Promise<void>((resolve) => reflector.listen(0, '127.0.0.1', resolve));
      try {
        const port = (reflector.address() as AddressInfo).port;
        const res = await curl(['-H', `x-api-key: ${placeholder}`, `https://${API}:${port}/v1/reflect`]);
        expect(res.status).toBe(200);
        const echoed = res.json<Record<string, string>>();
        const decoded = [
          Buffer.from(echoed.base64 ?? '', 'base64').toString('latin1'),
          Buffer.from(echoed.base64url ?? '', 'base64url').toString('latin1'),
          decodeURIComponent(echoed.percent ?? ''),
          Buffer.from(echoed.hex ?? '', 'hex').toString(),
          echoed.unicode ?? '',
          Buffer.from(String(res.headers['x-key-hex']), 'hex').toString(),
        ];
        for (const [index, text] of decoded.entries()) expect(text, `form ${index}`).not.toContain(SECRET);
        // Whole encodings come back as the same encoding of the placeholder.
        expect(decodeURIComponent(echoed.percent ?? '')).toBe(placeholder);
        expect(Buffer.from(echoed.hex ?? '', 'hex').toString()).toBe(placeholder);
        expect(echoed.unicode).toBe(placeholder);
        expect(res.text).not.toContain(Buffer.from(SECRET).toString('hex'));
      } finally {
        await new Promise((resolve) => reflector.close(resolve));
      }
    });
  });

  describe('budgets', () => {
    it('the request that would cross the per-run budget gets 429 and the upstream never gets its body', async () => {
      const first = await curl([upstream.url('/upload/one')], randomBytes(60_000));
      expect(first.status).toBe(200);
      const second = await curl(['--http1.1', upstream.url('/upload/two')], randomBytes(60_000));
      expect(second.status).toBe(429);
      expect(second.json<DenialBody>()).toMatchObject({ error: 'budget-exceeded', rule: 'budget-api' });
      expect(second.headers['x-srt-gw-reason']).toContain('budget');
      expect(received(upstream, '/upload/two')).toEqual([]);
      const h2 = await curl(['--http2', upstream.url('/upload/three')], randomBytes(60_000));
      expect(h2.status).toBe(429);
      expect(received(upstream, '/upload/three')).toEqual([]);
      // What is left (40,000 bytes) can still be used.
      const small = await curl([upstream.url('/upload/four')], randomBytes(30_000));
      expect(small.status).toBe(200);
      expect(await gateway.waitForAudit(requestLine('/upload/two'))).toMatchObject({ decision: 'deny', step: 'budget', rule: 'budget-api', status: 429 });
    });

    it('a chunked body (no Content-Length) is cut off where it would cross the budget: 429, and the upstream never gets it whole', async () => {
      const body = randomBytes(60_000);
      const res = await curl(['-H', 'transfer-encoding: chunked', upstream.url('/upload/chunked')], body);
      expect(res.status).toBe(429);
      expect(res.json<DenialBody>()).toMatchObject({ rule: 'budget-api' });
      for (const seen of received(upstream, '/upload/chunked')) expect(seen.bodyBytes === null || seen.bodyBytes < body.length).toBe(true);
      const line = await gateway.waitForAudit(requestLine('/upload/chunked'));
      expect(line).toMatchObject({ decision: 'deny', step: 'budget', status: 429 });
      expect(line.bytesIn as number).toBeLessThanOrEqual(10_000);
    });

    it('a GET carrying data in its URL and headers counts too: once they would cross the budget, 429 and nothing forwarded', async () => {
      // Under 10 kB is left (90,000 body bytes and the heads so far); a smaller head still passes.
      const small = await curl(['-H', `x-data: ${'a'.repeat(2_000)}`, upstream.url('/upload/get-small?q=1')]);
      expect(small.status).toBe(200);
      const large = await curl(['-H', `x-data: ${'b'.repeat(6_000)}`, upstream.url(`/upload/get-large?q=${'c'.repeat(4_000)}`)]);
      expect(large.status).toBe(429);
      expect(large.json<DenialBody>()).toMatchObject({ error: 'budget-exceeded', rule: 'budget-api' });
      expect(received(upstream, '/upload/get-large')).toEqual([]);
    });

    it('/metrics counts budget rejections and credential injections by rule', async () => {
      const text = await (await fetch(gateway.metricsUrl ?? '')).text();
      const value = (name: string, rule: string) => Number(new RegExp(`^${name}\\{rule="${rule}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 'NaN');
      expect(value('srtgw_budget_rejections_total', 'budget-api')).toBe(4);
      expect(value('srtgw_credential_injections_total', 'inject-api')).toBeGreaterThanOrEqual(5);
      expect(value('srtgw_credential_injections_total', 'bearer-api')).toBeGreaterThanOrEqual(2);
      expect(text).toMatch(/^srtgw_denied_requests_total\{reason="credentials"\} [1-9]/m);
      expect(text).toMatch(/^srtgw_denied_requests_total\{reason="budget"\} 4$/m);
      for (const secret of [SECRET, FILE_SECRET, COMMAND_SECRET, ROTATED_SECRET]) expect(text).not.toContain(secret);
    });
  });

  it('no secret appears anywhere in the audit log or on stderr, and every line validates against the schema', async () => {
    await gateway.waitForAudit(requestLine('/s/x'));
    const raw = readFileSync(gateway.logPath, 'utf8');
    expect(raw).toContain('"credential":"injected"');
    for (const secret of [SECRET, FILE_SECRET, COMMAND_SECRET, ROTATED_SECRET, ATTACKER_KEY, GOOD_REQUIRED]) {
      expect(raw).not.toContain(secret);
      expect(gateway.stderr()).not.toContain(secret);
    }
    const { Ajv2020 } = await import('ajv/dist/2020.js');
    const schema = JSON.parse(readFileSync(new URL('../../docs/audit-log.schema.json', import.meta.url), 'utf8')) as object;
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    const invalid = (await gateway.auditLines()).filter((line) => !validate(line));
    expect(invalid).toEqual([]);
  });
});

describe.skipIf(skip !== null)('credential rules in --monitor mode', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    fixture = await startGatewayFixture({
      policyYaml: `
version: 1
rules:
  - id: inject-api
    host: ${API}
    credentials: { header: x-api-key, inject: { env: ${ENV_NAME} } }
    budget: { requestBytesPerRun: 1000 }
`,
      names: [API],
      args: ['--monitor'],
      env: { [ENV_NAME]: SECRET },
    });
    ({ upstream, gateway } = fixture);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('a refused credential is logged as a would-deny and passed through as sent, without injection', async () => {
    const res = await curlThroughProxy(gateway, ['-H', `x-api-key: ${ATTACKER_KEY}`, upstream.url('/monitored')]);
    expect(res.status).toBe(200);
    expect(received(upstream, '/monitored')[0]?.headers['x-api-key']).toBe(ATTACKER_KEY);
    const line = await gateway.waitForAudit(requestLine('/monitored'));
    expect(line).toMatchObject({ decision: 'deny', monitored: true, step: 'credentials', credential: 'refused', rule: 'inject-api' });
  });

  it('an over-budget body is logged as a would-deny and forwarded', async () => {
    const res = await curlThroughProxy(gateway, [upstream.url('/monitored-upload')], { input: randomBytes(5000) });
    expect(res.status).toBe(200);
    expect(received(upstream, '/monitored-upload')[0]?.bodyBytes).toBe(5000);
    expect(await gateway.waitForAudit(requestLine('/monitored-upload'))).toMatchObject({ decision: 'deny', monitored: true, step: 'budget' });
  });
});

describe.skipIf(skip !== null)('a WebSocket under a budget', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    fixture = await startGatewayFixture({
      policyYaml: `version: 1\nrules:\n  - id: ws-limited\n    host: ${API}\n    paths: ["/ws"]\n    budget: { requestBytesPerRun: 2000 }\n`,
      names: [API],
    });
    ({ upstream, gateway } = fixture);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('frames within the budget are relayed; the frame that would cross it closes the connection before the upstream gets it', async () => {
    const authority = `${API}:${upstream.port}`;
    const conn = await openTlsTunnel(gateway.proxyPort, authority, { ca: readFileSync(gateway.caPath, 'utf8'), alpn: ['http/1.1'] });
    try {
      conn.write(`GET /ws HTTP/1.1\r\nHost: ${authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${newWebsocketKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      expect((await conn.readResponse()).status).toBe(101);
      conn.write(encodeFrame(OPCODE.binary, randomBytes(500), true));
      expect((await conn.readFrame()).payload.length).toBe(500);
      const framesBefore = upstream.websocketFrames;
      conn.write(encodeFrame(OPCODE.binary, randomBytes(3000), true));
      expect(await conn.waitForClose()).toBe(true);
      expect(upstream.websocketFrames).toBe(framesBefore);
    } finally {
      conn.destroy();
    }
    const line = await gateway.waitForAudit((l) => l.kind === 'request' && l.path === '/ws');
    expect(line).toMatchObject({ decision: 'deny', step: 'budget', rule: 'ws-limited', status: 101 });
  });
});

describe.skipIf(skip !== null)('a secret that cannot be read', () => {
  it('fails the start with exit 2 and a message naming the rule and the variable', async () => {
    const result = await runGatewayToExit({
      policyYaml: `version: 1\nrules:\n  - id: example-api\n    host: ${API}\n    credentials: { header: x-api-key, inject: { env: SRTGW_E2E_UNSET_VARIABLE } }\n`,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('rule example-api');
    expect(result.stderr).toContain('environment variable SRTGW_E2E_UNSET_VARIABLE is not set');
    expect(result.stdout).not.toContain('listening');
  });

  it('a secret file that is missing fails the start too', async () => {
    const result = await runGatewayToExit({
      policyYaml: `version: 1\nrules:\n  - id: example-api\n    host: ${API}\n    credentials: { header: x-api-key, inject: { file: ./no-such.key } }\n`,
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot be read from file \/.*\/no-such\.key: it does not exist/);
  });
});
