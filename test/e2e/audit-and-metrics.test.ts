// Every decision is explainable: one audit line per request and per CONNECT with the rule, the
// decision and what happened, and Prometheus counters by decision and rule on /metrics.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { curlThroughProxy, type AuditLine, type CurlResult, type GatewayProcess } from '../support/gateway-process.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import type { Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'), missingCommand('dig'));
const AUDIT_SCHEMA = JSON.parse(readFileSync(new URL('../../docs/audit-log.schema.json', import.meta.url), 'utf8')) as object;

const API = 'api.example.test';
const UNLISTED = 'unlisted.test';

const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET, POST]
    paths: ["/v1/**", "/bytes"]
  - id: api-admin-deny
    host: ${API}
    paths: ["/admin/**"]
    action: deny
`;

const isRequest = (path: string) => (line: AuditLine) => line.kind === 'request' && line.path === path;

describe.skipIf(skip !== null)('audit log and metrics', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  const results: Record<string, CurlResult> = {};
  let startedAt: number;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: POLICY, names: [API], args: ['--metrics', '127.0.0.1:0', '--dns', '127.0.0.1:0'] });
    ({ upstream, gateway } = fixture);
    startedAt = Date.now();
    results.allowedH1 = await curlThroughProxy(gateway, ['--http1.1', upstream.url('/v1/audited')]);
    results.allowedH2 = await curlThroughProxy(gateway, ['--http2', upstream.url('/v1/audited-h2')]);
    results.withQuery = await curlThroughProxy(gateway, [upstream.url('/v1/with-query?token=do-not-log-me')]);
    results.denied = await curlThroughProxy(gateway, [upstream.url('/admin/audited')]);
    results.unlisted = await curlThroughProxy(gateway, [upstream.url('/v1/x', UNLISTED)]);
    results.post = await curlThroughProxy(gateway, [upstream.url('/bytes?n=5000')], { input: randomBytes(3000) });
    for (const name of [API, `${'x'.repeat(60)}.${UNLISTED}`]) {
      execFileSync('dig', ['@127.0.0.1', '-p', String(gateway.dnsPort), '+tries=1', '+time=2', name, 'A'], { stdio: 'ignore' });
    }
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('the traffic behind these assertions went as expected', () => {
    expect(results.allowedH1?.status).toBe(200);
    expect(results.allowedH2?.status).toBe(200);
    expect(results.allowedH2?.httpVersion).toBe('2');
    expect(results.withQuery?.status).toBe(200);
    expect(results.denied?.status).toBe(403);
    expect(results.unlisted?.connectStatus).toBe(403);
    expect(results.post?.status).toBe(200);
    expect(results.post?.body.length).toBe(5000);
  });

  describe('audit log', () => {
    it('an allowed HTTP/1.1 request has exactly one line with decision, rule, status, host, port, path', async () => {
      const line = await gateway.waitForAudit(isRequest('/v1/audited'));
      expect(line).toMatchObject({
        level: 30,
        kind: 'request',
        decision: 'allow',
        rule: 'api-read',
        method: 'GET',
        host: API,
        port: upstream.port,
        path: '/v1/audited',
        status: 200,
        protocol: 'http/1.1',
      });
      expect(line.reason).toEqual(expect.any(String));
      expect(line.conn).toEqual(expect.any(String));
      expect(line.bytesIn).toEqual(expect.any(Number));
      expect(line.bytesOut).toEqual(expect.any(Number));
      expect(line.durationMs).toEqual(expect.any(Number));
      expect(line.durationMs as number).toBeGreaterThanOrEqual(0);
      expect(line.time).toEqual(expect.any(Number));
      expect(line.time as number).toBeGreaterThanOrEqual(startedAt - 1000);
      expect(line.time as number).toBeLessThanOrEqual(Date.now() + 1000);
      expect((await gateway.auditLines()).filter(isRequest('/v1/audited'))).toHaveLength(1);
    });

    it('an allowed HTTP/2 request is logged with protocol h2', async () => {
      const line = await gateway.waitForAudit(isRequest('/v1/audited-h2'));
      expect(line).toMatchObject({ decision: 'allow', rule: 'api-read', status: 200, protocol: 'h2', host: API });
    });

    it('a denied request is logged with the deny rule, its reason and status 403', async () => {
      const line = await gateway.waitForAudit(isRequest('/admin/audited'));
      expect(line).toMatchObject({
        kind: 'request',
        decision: 'deny',
        rule: 'api-admin-deny',
        code: 'denied-by-rule',
        method: 'GET',
        host: API,
        port: upstream.port,
        status: 403,
      });
      expect(typeof line.reason === 'string' && line.reason.length > 0).toBe(true);
    });

    it('CONNECT decisions are logged: denied for the unlisted host, allowed for the API host', async () => {
      const denied = await gateway.waitForAudit((l) => l.kind === 'connect' && l.host === UNLISTED);
      expect(denied).toMatchObject({ kind: 'connect', decision: 'deny', host: UNLISTED, port: upstream.port, code: 'host-not-allowed' });
      expect(typeof denied.reason === 'string' && denied.reason.length > 0).toBe(true);
      const allowed = await gateway.waitForAudit((l) => l.kind === 'connect' && l.host === API);
      expect(allowed).toMatchObject({ decision: 'allow', port: upstream.port, code: 'checked-per-request' });
    });

    it('request and CONNECT lines of one tunnel share the conn id', async () => {
      const request = await gateway.waitForAudit(isRequest('/v1/audited'));
      const connects = (await gateway.auditLines()).filter((l) => l.kind === 'connect' && l.conn === request.conn);
      expect(connects).toHaveLength(1);
      expect(connects[0]).toMatchObject({ host: API, decision: 'allow' });
    });

    it('bytes in and out count the request and response bodies (3000 up, 5000 down)', async () => {
      const line = await gateway.waitForAudit(isRequest('/bytes'));
      expect(line).toMatchObject({ method: 'POST', decision: 'allow', status: 200 });
      const bytesIn = line.bytesIn as number;
      const bytesOut = line.bytesOut as number;
      // Which side is "in" is the schema's business; both bodies must be counted.
      expect(Math.min(bytesIn, bytesOut)).toBeGreaterThanOrEqual(3000);
      expect(Math.max(bytesIn, bytesOut)).toBeGreaterThanOrEqual(5000);
    });

    it('the query string, which often carries secrets, is not logged', async () => {
      await gateway.waitForAudit((l) => l.kind === 'request' && typeof l.path === 'string' && l.path.startsWith('/v1/with-query'));
      const everything = JSON.stringify(await gateway.auditLines());
      expect(everything).not.toContain('do-not-log-me');
    });
  });

  it('every line of the run validates against the published schema (docs/audit-log.schema.json)', async () => {
    await gateway.waitForAudit((l) => l.kind === 'dns' && l.decision === 'denied');
    const lines = await gateway.auditLines();
    const kinds = new Set(lines.map((l) => l.kind));
    expect([...kinds].sort()).toEqual(['connect', 'dns', 'request']);
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(AUDIT_SCHEMA);
    const invalid = lines.filter((line) => !validate(line)).map((line) => ({ line, errors: validate.errors }));
    expect(invalid).toEqual([]);
    // A broken line must fail: the schema is not vacuous.
    expect(validate({ level: 30, time: 1, kind: 'request', decision: 'maybe' })).toBe(false);
  });

  describe('/metrics', () => {
    it('serves Prometheus text with srtgw_requests_total samples for allow and deny, by rule', async () => {
      expect(gateway.metricsUrl).not.toBeNull();
      const res = await fetch(gateway.metricsUrl ?? '');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type') ?? '').toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toMatch(/^# TYPE srtgw_requests_total counter$/m);
      const samples = [...text.matchAll(/^srtgw_requests_total\{([^}]*)\} (\S+)$/gm)].map((m) => ({
        labels: Object.fromEntries([...(m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]])),
        value: Number(m[2]),
      }));
      const sum = (decision: string, rule: string) =>
        samples.filter((s) => s.labels.decision === decision && s.labels.rule === rule).reduce((total, s) => total + s.value, 0);
      // h1, h2, the query one and the POST
      expect(sum('allow', 'api-read')).toBeGreaterThanOrEqual(4);
      expect(sum('deny', 'api-admin-deny')).toBeGreaterThanOrEqual(1);
    });
  });
});
