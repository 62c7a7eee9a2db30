// The gateway as curl users meet it: `curl -x` for HTTPS (CONNECT, HTTP/1.1 and HTTP/2) and plain
// absolute-form HTTP, allowed and denied, against real local upstreams.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { curlThroughProxy, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { TestPki } from '../support/test-pki.js';
import { expectedBytesSha256, startUpstream, type EchoResponse, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));

const API = 'api.example.test';
const FLAG_ALLOWED = 'flag-allowed.test';
const UNLISTED = 'unlisted.test';

const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET]
    paths: ["/v1/**", "/bytes"]
  - id: api-upload
    host: ${API}
    methods: [POST]
    paths: ["/v1/upload"]
  - id: api-admin-deny
    host: ${API}
    paths: ["/v1/admin/**"]
    action: deny
`;

interface DenialBody {
  error: string;
  code: string;
  rule: string | null;
  reason: string;
}

describe.skipIf(skip !== null)('curl through the gateway', () => {
  let fixture: GatewayFixture | undefined;
  let pki: TestPki;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let gateway: GatewayProcess;
  const curl = (args: string[], input?: Buffer) => curlThroughProxy(gateway, args, input === undefined ? {} : { input });

  beforeAll(async () => {
    fixture = await startGatewayFixture({
      policyYaml: POLICY,
      names: [API, FLAG_ALLOWED, UNLISTED],
      plainUpstream: true,
      args: ['--allow', FLAG_ALLOWED],
    });
    ({ pki, upstream, gateway } = fixture);
    plainUpstream = fixture.plainUpstream!;
  });

  afterAll(async () => {
    await fixture?.close();
  });

  describe('allowed HTTPS requests', () => {
    it('GET over HTTP/1.1 reaches the upstream with SNI = host and curl gets its 200 and echo', async () => {
      const res = await curl(['--http1.1', upstream.url('/v1/items?page=2')]);
      expect(res.stderr).toBe('');
      expect(res.exitCode).toBe(0);
      expect(res.connectStatus).toBe(200);
      expect(res.status).toBe(200);
      expect(res.httpVersion).toBe('1.1');
      const echo = res.json<EchoResponse>();
      expect(echo).toMatchObject({ method: 'GET', path: '/v1/items?page=2', servername: API, bodyBytes: 0 });
      const seen = upstream.received.filter((r) => r.path === '/v1/items?page=2');
      expect(seen).toHaveLength(1);
      expect(seen[0]?.servername).toBe(API);
    });

    it('GET over HTTP/2 (curl --http2) reaches the upstream and curl gets 200 over h2', async () => {
      const res = await curl(['--http2', upstream.url('/v1/h2-items')]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(200);
      expect(res.httpVersion).toBe('2');
      expect(res.json<EchoResponse>()).toMatchObject({ method: 'GET', path: '/v1/h2-items', servername: API });
      expect(upstream.received.filter((r) => r.path === '/v1/h2-items')).toHaveLength(1);
    });

    it('TLS is terminated by the gateway: the upstream CA alone does not verify what curl is served', async () => {
      const before = upstream.received.length;
      // A later --cacert replaces the gateway CA that curlThroughProxy passes.
      const res = await curl(['--cacert', pki.ca.certPath, upstream.url('/v1/terminated')]);
      expect(res.exitCode).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
      expect(upstream.received.length).toBe(before);
    });

    it('POST with a 256 KiB body arrives intact (upstream sha256 matches)', async () => {
      const body = randomBytes(256 * 1024);
      const sha = createHash('sha256').update(body).digest('hex');
      const res = await curl(['-H', 'content-type: application/octet-stream', upstream.url('/v1/upload')], body);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(200);
      expect(res.json<EchoResponse>()).toMatchObject({ method: 'POST', bodyBytes: body.length, bodySha256: sha });
      const seen = upstream.received.find((r) => r.path === '/v1/upload');
      expect(seen?.bodySha256).toBe(sha);
    });

    it('a 5 MiB download streams through intact', async () => {
      const n = 5 * 1024 * 1024;
      const res = await curl([upstream.url(`/bytes?n=${n}`)]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(n);
      expect(createHash('sha256').update(res.body).digest('hex')).toBe(expectedBytesSha256(n));
    });

    it('--allow HOST adds an allow-all rule for a host the policy file does not name', async () => {
      const res = await curl([upstream.url('/anything/at/all', FLAG_ALLOWED)]);
      expect(res.stderr).toBe('');
      expect(res.status).toBe(200);
      expect(res.json<EchoResponse>()).toMatchObject({ path: '/anything/at/all', servername: FLAG_ALLOWED });
    });
  });

  describe('denied HTTPS requests', () => {
    it('a path a deny rule matches gets 403 with rule and reason, and never reaches the upstream', async () => {
      const res = await curl([upstream.url('/v1/admin/users')]);
      expect(res.exitCode).toBe(0);
      expect(res.connectStatus).toBe(200); // the host is allowed: the denial is per request
      expect(res.status).toBe(403);
      const body = res.json<DenialBody>();
      expect(body).toMatchObject({ error: 'denied', code: 'denied-by-rule', rule: 'api-admin-deny' });
      expect(body.reason).toEqual(expect.any(String));
      expect(body.reason.length).toBeGreaterThan(0);
      expect(res.headers['x-srt-gw-reason']).toBeTruthy();
      expect(upstream.received.filter((r) => r.path.startsWith('/v1/admin'))).toEqual([]);
    });

    it('a path no rule allows gets 403 (default deny) and never reaches the upstream', async () => {
      const res = await curl([upstream.url('/private/keys')]);
      expect(res.status).toBe(403);
      expect(res.json<DenialBody>()).toMatchObject({ error: 'denied', code: 'path-not-allowed', rule: 'default-deny' });
      expect(res.headers['x-srt-gw-reason']).toBeTruthy();
      expect(upstream.received.filter((r) => r.path.startsWith('/private'))).toEqual([]);
    });

    it('a method no rule allows gets 403 over HTTP/2 too', async () => {
      const res = await curl(['--http2', '-X', 'DELETE', upstream.url('/v1/items/1')]);
      expect(res.status).toBe(403);
      expect(res.httpVersion).toBe('2');
      expect(res.json<DenialBody>()).toMatchObject({ error: 'denied', code: 'method-not-allowed' });
      expect(upstream.received.filter((r) => r.method === 'DELETE')).toEqual([]);
    });

    it('CONNECT to an unlisted host is refused with 403 before any TLS', async () => {
      const before = upstream.connections;
      const res = await curl([upstream.url('/v1/items', UNLISTED)]);
      expect(res.connectStatus).toBe(403);
      expect(res.exitCode).toBe(56); // CURLE_RECV_ERROR: the tunnel was refused
      expect(res.stderr).toContain('CONNECT tunnel failed, response 403');
      expect(upstream.connections).toBe(before);
    });

    it('CONNECT to an IP literal no rule names is refused with 403', async () => {
      const before = upstream.connections;
      const res = await curl([`https://127.0.0.1:${upstream.port}/v1/items`]);
      expect(res.connectStatus).toBe(403);
      expect(res.stderr).toContain('CONNECT tunnel failed, response 403');
      expect(upstream.connections).toBe(before);
    });
  });

  describe('absolute-form plain HTTP', () => {
    it('an allowed request is forwarded over http', async () => {
      const res = await curl([plainUpstream.url('/v1/plain?q=1')]);
      expect(res.stderr).toBe('');
      expect(res.connectStatus).toBe(0);
      expect(res.status).toBe(200);
      expect(res.json<EchoResponse>()).toMatchObject({ method: 'GET', path: '/v1/plain?q=1' });
      expect(plainUpstream.received.filter((r) => r.path === '/v1/plain?q=1')).toHaveLength(1);
    });

    it('a denied path gets 403 with rule and reason and never reaches the upstream', async () => {
      const res = await curl([plainUpstream.url('/v1/admin/plain')]);
      expect(res.status).toBe(403);
      expect(res.json<DenialBody>()).toMatchObject({ error: 'denied', rule: 'api-admin-deny' });
      expect(res.headers['x-srt-gw-reason']).toBeTruthy();
      expect(plainUpstream.received.filter((r) => r.path.startsWith('/v1/admin'))).toEqual([]);
    });

    it('an unlisted host gets 403 and nothing is forwarded', async () => {
      const before = plainUpstream.connections;
      const res = await curl([plainUpstream.url('/v1/items', UNLISTED)]);
      expect(res.status).toBe(403);
      // The stable code beside the English reason, for programs that branch on why.
      expect(res.json<DenialBody>()).toMatchObject({ error: 'denied', code: 'host-not-allowed', rule: 'default-deny' });
      expect(plainUpstream.connections).toBe(before);
    });

    it('an IP-literal destination no rule names gets 403 and nothing is forwarded', async () => {
      const before = plainUpstream.connections;
      const res = await curl([`http://127.0.0.1:${plainUpstream.port}/v1/items`]);
      expect(res.status).toBe(403);
      expect(plainUpstream.connections).toBe(before);
    });
  });
});

describe.skipIf(skip !== null)('curl through a gateway whose policy names an IP', () => {
  let plainUpstream: Upstream;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    plainUpstream = await startUpstream({ plain: true });
    gateway = await startGatewayProcess({
      policyYaml: `
version: 1
rules:
  - id: loopback-ip
    host: 127.0.0.1
    paths: ["/ip-allowed/**"]
`,
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await plainUpstream?.close();
  });

  it('an IP-literal destination a rule names is forwarded', async () => {
    const res = await curlThroughProxy(gateway, [`http://127.0.0.1:${plainUpstream.port}/ip-allowed/x`]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    expect(plainUpstream.received.map((r) => r.path)).toEqual(['/ip-allowed/x']);
  });

  it('another IP literal is still denied', async () => {
    const res = await curlThroughProxy(gateway, [`http://127.0.0.2:${plainUpstream.port}/ip-allowed/x`]);
    expect(res.status).toBe(403);
  });
});
