// The reason codes are one list: kebab-case, each documented (docs/monitoring.md) and in the
// audit log's schema; and the decisions made outside the request verdict (request-verdict.test.ts)
// — the policy's, the DNS resolver's, upstream failures', the gateway's own answers — each yield
// a code from it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dnsReasonCode, type DnsDecision } from './gateway/dns/query-events.js';
import { denialResponse, upstreamFailureResponse } from './gateway/http/responses.js';
import { parsePolicy } from './policies/loader.js';
import { compilePolicy } from './policies/match.js';
import { isReasonCode, REASON_CODE_MEANINGS, REASON_CODES, UPSTREAM_FAILURE_KINDS, upstreamFailureCode, type UpstreamFailureKind } from './reason-codes.js';

const MONITORING = readFileSync(new URL('docs/monitoring.md', import.meta.url), 'utf8');
const SCHEMA = JSON.parse(readFileSync(new URL('docs/audit-log.schema.json', import.meta.url), 'utf8')) as { $defs: { reasonCode: { enum: string[] } } };

describe('REASON_CODES', () => {
  it('are kebab-case, unique, and each has a meaning', () => {
    expect(new Set(REASON_CODES).size).toBe(REASON_CODES.length);
    for (const code of REASON_CODES) {
      expect(code).toMatch(/^[a-z]+(-[a-z0-9]+)*$/);
      expect(REASON_CODE_MEANINGS[code].length).toBeGreaterThan(10);
    }
    expect(isReasonCode('host-not-allowed')).toBe(true);
    expect(isReasonCode('toString')).toBe(false);
  });

  it('are the codes of the table in docs/monitoring.md, in its order', () => {
    const documented = [...MONITORING.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((match) => match[1]);
    expect(documented).toEqual([...REASON_CODES]);
  });

  it("are the audit log schema's reasonCode enum", () => {
    expect(SCHEMA.$defs.reasonCode.enum).toEqual([...REASON_CODES]);
  });
});

describe('every decision yields a code from the list', () => {
  const policy = compilePolicy(
    parsePolicy(`version: 1
rules:
  - { id: read, host: api.example.test, port: 443, methods: [GET], paths: ["/v1/**"] }
  - { id: no-admin, host: api.example.test, paths: ["/v1/admin/**"], action: deny }
  - { id: ssh, host: git.example.test, port: 22, protocol: tcp }
  - { id: no-smtp, host: git.example.test, port: 25, protocol: tcp, action: deny }
`),
  );

  it.each([
    ['GET', 'api.example.test', 443, '/v1/a', 'allowed-by-rule'],
    ['GET', 'api.example.test', 443, '/v1/admin/x', 'denied-by-rule'],
    ['GET', 'evil.test', 443, '/', 'host-not-allowed'],
    ['GET', 'api.example.test', 8443, '/v1/a', 'port-not-allowed'],
    ['POST', 'api.example.test', 443, '/v1/a', 'method-not-allowed'],
    ['GET', 'api.example.test', 443, '/v2', 'path-not-allowed'],
    ['GET', 'a..b', 443, '/', 'invalid-host'],
    ['GET', 'api.example.test', 443, '/v1/%zz', 'invalid-path'],
  ] as const)('policy: %s %s:%s%s is %s', (method, host, port, path, code) => {
    const decision = policy.decide({ host, port, method, path });
    expect(decision.code).toBe(code);
    expect(isReasonCode(decision.code)).toBe(true);
  });

  it.each([
    ['git.example.test', 22, 'allowed-by-rule'],
    ['git.example.test', 25, 'denied-by-rule'],
    ['git.example.test', 2222, 'port-not-allowed'],
    ['api.example.test', 22, 'host-not-allowed'],
    ['a b', 22, 'invalid-host'],
  ] as const)('policy, tcp: %s:%s is %s', (host, port, code) => {
    expect(policy.tcpRuleFor(host, port).code).toBe(code);
  });

  it.each([
    ['synthetic', false, 'name-allowed'],
    ['nodata', false, 'record-type-not-answered'],
    ['denied', false, 'host-not-allowed'],
    ['denied', true, 'wildcard-cap-reached'],
    ['refused', false, 'query-refused'],
    ['rate-limited', false, 'rate-limited'],
    ['malformed', false, 'malformed-query'],
  ] as const)('dns: %s (wildcard cap: %s) is %s', (decision: DnsDecision, capped, code) => {
    expect(dnsReasonCode(decision, capped)).toBe(code);
  });

  it.each<UpstreamFailureKind>(UPSTREAM_FAILURE_KINDS)('upstream failure %s has a code', (kind) => {
    expect(isReasonCode(upstreamFailureCode(kind))).toBe(true);
  });

  it.each([
    ['proxy-refused', 'upstream-proxy-refused'],
    ['proxy-auth-failed', 'upstream-proxy-auth-failed'],
    ['proxy-denied', 'upstream-proxy-denied'],
  ] as const)('upstream proxy failure %s is %s', (kind, code) => {
    expect(upstreamFailureCode(kind)).toBe(code);
  });

  it("the gateway's own answers carry the code in their JSON body", () => {
    expect(JSON.parse(denialResponse(403, 'default-deny', 'no rule allows host evil.test', 'host-not-allowed').body)).toEqual({
      error: 'denied',
      code: 'host-not-allowed',
      rule: 'default-deny',
      reason: 'no rule allows host evil.test',
    });
    expect(JSON.parse(upstreamFailureResponse('could not resolve x.test', 'upstream-dns').body)).toMatchObject({ error: 'upstream', code: 'upstream-dns' });
  });
});

describe('client authentication codes', () => {
  it('every code a 407 can carry is a reason code', async () => {
    const { CLIENT_AUTHENTICATION_CODES } = await import('./identity/authenticate-client.js');
    for (const code of CLIENT_AUTHENTICATION_CODES) expect(isReasonCode(code), code).toBe(true);
  });
});
