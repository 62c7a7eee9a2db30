// Node clients through the gateway: undici's fetch and request with a ProxyAgent that trusts the
// gateway CA, the way a Node program inside `srt-gw run` would be configured.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { fetch, ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import type { EchoResponse, Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('openssl'));

const API = 'api.example.test';

const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET]
    paths: ["/v1/**"]
  - id: api-upload
    host: ${API}
    methods: [POST]
    paths: ["/v1/upload"]
`;

describe.skipIf(skip !== null)('node fetch and undici request through the gateway (ProxyAgent)', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let plainUpstream: Upstream;
  let gateway: GatewayProcess;
  let agent: ProxyAgent;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API], plainUpstream: true });
    ({ upstream, gateway } = fixture);
    plainUpstream = fixture.plainUpstream!;
    agent = new ProxyAgent({ uri: gateway.proxyUrl, requestTls: { ca: fixture.gatewayCa } });
  });

  afterAll(async () => {
    await agent?.close();
    await fixture?.close();
  });

  it('fetch GET over HTTPS is allowed and reaches the upstream', async () => {
    const res = await fetch(upstream.url('/v1/fetch-get'), { dispatcher: agent });
    expect(res.status).toBe(200);
    expect((await res.json()) as EchoResponse).toMatchObject({ method: 'GET', path: '/v1/fetch-get', servername: API });
    expect(upstream.received.filter((r) => r.path === '/v1/fetch-get')).toHaveLength(1);
  });

  it('fetch POST carries its body intact', async () => {
    const body = randomBytes(100_000);
    const sha = createHash('sha256').update(body).digest('hex');
    const res = await fetch(upstream.url('/v1/upload'), {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/octet-stream' },
      dispatcher: agent,
    });
    expect(res.status).toBe(200);
    expect((await res.json()) as EchoResponse).toMatchObject({ method: 'POST', bodyBytes: body.length, bodySha256: sha });
    expect(upstream.received.find((r) => r.path === '/v1/upload' && r.method === 'POST')?.bodySha256).toBe(sha);
  });

  it('fetch of a denied request gets the 403 JSON and the reason header', async () => {
    const res = await fetch(upstream.url('/admin'), { dispatcher: agent });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-srt-gw-reason')).toBeTruthy();
    expect(await res.json()).toMatchObject({ error: 'denied', reason: expect.any(String) });
    expect(upstream.received.filter((r) => r.path === '/admin')).toEqual([]);
  });

  it('undici request GET and POST (streamed body) are allowed', async () => {
    const get = await request(upstream.url('/v1/request-get'), { dispatcher: agent });
    expect(get.statusCode).toBe(200);
    expect((await get.body.json()) as EchoResponse).toMatchObject({ method: 'GET', path: '/v1/request-get' });

    const chunks = [randomBytes(30_000), randomBytes(30_000), randomBytes(30_000)];
    const sha = createHash('sha256').update(Buffer.concat(chunks)).digest('hex');
    const post = await request(upstream.url('/v1/upload'), { method: 'POST', body: Readable.from(chunks), dispatcher: agent });
    expect(post.statusCode).toBe(200);
    expect((await post.body.json()) as EchoResponse).toMatchObject({ method: 'POST', bodyBytes: 90_000, bodySha256: sha });
  });

  it('undici request over plain http (proxyTunnel: false) goes absolute-form and is policy-checked', async () => {
    // undici tunnels plain http through CONNECT by default; absolute-form is what this case is about.
    const absoluteForm = new ProxyAgent({ uri: gateway.proxyUrl, proxyTunnel: false });
    const allowed = await request(plainUpstream.url('/v1/plain'), { dispatcher: absoluteForm });
    expect(allowed.statusCode).toBe(200);
    expect((await allowed.body.json()) as EchoResponse).toMatchObject({ path: '/v1/plain' });

    const denied = await request(plainUpstream.url('/admin'), { dispatcher: absoluteForm });
    expect(denied.statusCode).toBe(403);
    await denied.body.dump();
    await absoluteForm.close();
    expect(plainUpstream.received.map((r) => r.path)).toEqual(['/v1/plain']);
  });

  it('a host no rule names fails to tunnel (CONNECT refused)', async () => {
    await expect(fetch(upstream.url('/v1/x', 'unlisted.test'), { dispatcher: agent })).rejects.toThrow();
    expect(upstream.received.filter((r) => r.path === '/v1/x')).toEqual([]);
  });
});
