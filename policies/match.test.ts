// Table-driven tests for match.ts; each case's name says what it proves.
import { describe, expect, test } from 'vitest';
import { allowHostRule, parsePolicy } from './loader.js';
import { compilePolicy } from './match.js';
import type { ReasonCode } from '../reason-codes.js';
import { DEFAULT_DENY_RULE_ID, type Decision, type Policy, type RequestFacts } from './types.js';

const policy = parsePolicy(
  `
version: 1
rules:
  - id: api-read
    host: api.example.test
    methods: [GET, HEAD]
    paths: ["/v1/**"]
  - id: api-upload
    host: api.example.test
    port: 443
    methods: [POST]
    paths: ["/v1/upload", "/v1/files/*"]
  - id: api-everything
    host: api.example.test
    port: 8443
  - id: block-admin
    host: api.example.test
    paths: ["/v1/admin/**"]
    action: deny
  - id: cdn
    host: "*.cdn.example.test"
    methods: [GET]
  - id: cdn-ban
    host: bad.cdn.example.test
    action: deny
  - id: lab
    host: 203.0.113.0/24
  - id: v6-lab
    host: fd00::/8
    port: 8080
  - id: single-ip
    host: 198.51.100.7
    methods: [GET]
  - id: all-names-get
    host: "*"
    methods: [GET]
    paths: ["/robots.txt"]
  - id: postgres
    host: db.example.test
    port: 5432
    protocol: tcp
  - id: postgres-lab
    host: 203.0.113.0/24
    port: 5432
    protocol: tcp
  - id: no-smtp
    host: db.example.test
    port: 25
    protocol: tcp
    action: deny
`,
  'match.test.yaml',
);
const compiled = compilePolicy(policy);

function request(host: string, method: string, path: string, port = 443): RequestFacts {
  return { host, port, method, path };
}

const allow = (ruleId: string): Decision => ({ action: 'allow', ruleId, reason: `allowed by rule ${ruleId}`, code: 'allowed-by-rule' });
const denyBy = (ruleId: string): Decision => ({ action: 'deny', ruleId, reason: `denied by rule ${ruleId}`, code: 'denied-by-rule' });
const defaultDeny = (reason: string, code: ReasonCode): Decision => ({ action: 'deny', ruleId: DEFAULT_DENY_RULE_ID, reason, code });

describe('decide', () => {
  test.each<[string, RequestFacts, Decision]>([
    ['allowed by method and path', request('api.example.test', 'GET', '/v1/models'), allow('api-read')],
    ['"**" rule covers its own directory', request('api.example.test', 'GET', '/v1'), allow('api-read')],
    ['query string does not affect the match', request('api.example.test', 'GET', '/v1/models?key=abc'), allow('api-read')],
    ['second rule allows what the first does not', request('api.example.test', 'POST', '/v1/upload'), allow('api-upload')],
    ['"*" glob allows one segment', request('api.example.test', 'POST', '/v1/files/report.pdf'), allow('api-upload')],
    [
      'rule names the host but not the method and path, so the candidates are named',
      request('api.example.test', 'DELETE', '/v1/models'),
      defaultDeny('rules api-read, api-upload allow api.example.test but not DELETE /v1/models', 'method-not-allowed'),
    ],
    [
      '"*" glob does not cover two segments',
      request('api.example.test', 'POST', '/v1/files/a/b'),
      defaultDeny('rules api-read, api-upload allow api.example.test but not POST /v1/files/a/b', 'path-not-allowed'),
    ],
    [
      'port-limited rule does not allow another port',
      request('api.example.test', 'POST', '/v1/upload', 444),
      defaultDeny('rule api-read allows api.example.test but not POST /v1/upload', 'method-not-allowed'),
    ],
    ['a rule without methods or paths allows everything on its port', request('api.example.test', 'PATCH', '/x', 8443), allow('api-everything')],
    ['deny wins over an earlier allow', request('api.example.test', 'GET', '/v1/admin/users'), denyBy('block-admin')],
    ['deny wins on every port and method', request('api.example.test', 'PUT', '/v1/admin', 8443), denyBy('block-admin')],
    [
      '/v1/%2e%2e/admin cannot slip past a /v1/** rule',
      request('api.example.test', 'GET', '/v1/%2e%2e/admin'),
      defaultDeny('rules api-read, api-upload allow api.example.test but not GET /admin', 'path-not-allowed'),
    ],
    ['encoded dots cannot dodge a deny rule', request('api.example.test', 'GET', '/v1/x/%2E%2E/admin/users'), denyBy('block-admin')],
    ['doubled slashes cannot dodge a deny rule', request('api.example.test', 'GET', '//v1//admin//users'), denyBy('block-admin')],
    [
      'a malformed path is denied with the problem named',
      request('api.example.test', 'GET', '/v1/%zz'),
      defaultDeny('request path has an invalid percent escape "%zz"; write "%" as %25', 'invalid-path'),
    ],
    [
      '..; segment is denied rather than passed to a server that reads it as ..',
      request('api.example.test', 'GET', '/v1/..;/admin'),
      defaultDeny('request path has an ambiguous segment "..;"; servers disagree whether it means "." or ".."', 'invalid-path'),
    ],
    [
      'a "*" rule is not named as a candidate for a host it does not name',
      request('evil.test', 'GET', '/'),
      defaultDeny('no rule allows GET / on host evil.test', 'host-not-allowed'),
    ],
    ['the "*" rule still allows its one path on an unknown host', request('evil.test', 'GET', '/robots.txt'), allow('all-names-get')],
    ['wildcard allows a subdomain', request('img.cdn.example.test', 'GET', '/a.png'), allow('cdn')],
    ['wildcard allows a deeper subdomain', request('a.b.cdn.example.test', 'GET', '/a.png'), allow('cdn')],
    [
      'wildcard does not match the apex',
      request('cdn.example.test', 'GET', '/a.png'),
      defaultDeny('no rule allows GET /a.png on host cdn.example.test', 'host-not-allowed'),
    ],
    ['exact deny wins over a wildcard allow', request('bad.cdn.example.test', 'GET', '/a.png'), denyBy('cdn-ban')],
    ['host comparison is case-insensitive', request('API.Example.Test', 'GET', '/v1/models'), allow('api-read')],
    ['trailing dot ignored', request('api.example.test.', 'GET', '/v1/models'), allow('api-read')],
    ['IP literal inside an allowed CIDR', request('203.0.113.50', 'POST', '/anything'), allow('lab')],
    ['IPv4-mapped IPv6 compares as the IPv4', request('::ffff:203.0.113.50', 'POST', '/anything'), allow('lab')],
    ['IPv6 literal inside an allowed CIDR on its port', request('fd00::1', 'GET', '/', 8080), allow('v6-lab')],
    [
      'IPv6 literal inside an allowed CIDR on another port',
      request('fd00::1', 'GET', '/', 8081),
      defaultDeny('rule v6-lab allows fd00::1 but not port 8081', 'port-not-allowed'),
    ],
    ['named IP literal', request('198.51.100.7', 'GET', '/'), allow('single-ip')],
    [
      'IP literal never matches a name wildcard: "*" does not allow an address',
      request('192.0.2.1', 'GET', '/robots.txt'),
      defaultDeny('no rule allows host 192.0.2.1', 'host-not-allowed'),
    ],
    [
      'numeric host spelling is judged as the address it means',
      request('3221225985', 'GET', '/robots.txt'),
      defaultDeny('no rule allows host 192.0.2.1', 'host-not-allowed'),
    ],
    [
      'an invalid host is denied',
      request('a..b', 'GET', '/'),
      defaultDeny('host "a..b" is not a valid host name or IP address', 'invalid-host'),
    ],
    [
      'tcp rules never allow HTTP requests',
      request('db.example.test', 'GET', '/', 5432),
      defaultDeny('no rule allows GET / on host db.example.test', 'host-not-allowed'),
    ],
    [
      'methods are case-sensitive on the wire',
      request('api.example.test', 'get', '/v1/models'),
      defaultDeny('rules api-read, api-upload allow api.example.test but not get /v1/models', 'method-not-allowed'),
    ],
  ])('%s', (_name, facts, expected) => {
    expect(compiled.decide(facts)).toEqual(expected);
  });

  test('the answer does not change when it comes from the cache', () => {
    const facts = request('api.example.test', 'GET', '/v1/admin/x');
    expect(compiled.decide(facts)).toEqual(compiled.decide(facts));
    expect(compiled.decide(facts)).toEqual(denyBy('block-admin'));
  });

  test('a very long path is shortened in the reason', () => {
    const decision = compiled.decide(request('api.example.test', 'DELETE', `/${'a'.repeat(500)}`));
    expect(decision.action).toBe('deny');
    expect(decision.reason.length).toBeLessThan(250);
    expect(decision.reason).toMatch(/\.\.\.$/);
  });

  test('more than three candidate rules are summarised', () => {
    const many = compilePolicy(
      parsePolicy(
        `version: 1\nrules:\n${['a', 'b', 'c', 'd', 'e'].map((id) => `  - id: ${id}\n    host: x.test\n    methods: [GET]\n`).join('')}`,
      ),
    );
    expect(many.decide(request('x.test', 'POST', '/'))).toEqual(defaultDeny('rules a, b, c and 2 more allow x.test but not POST /', 'method-not-allowed'));
  });

  test('no rule allows an unknown host', () => {
    const narrow = compilePolicy(parsePolicy('version: 1\nrules:\n  - id: a\n    host: api.example.test\n'));
    expect(narrow.decide(request('evil.test', 'GET', '/'))).toEqual(defaultDeny('no rule allows host evil.test', 'host-not-allowed'));
  });

  test('an empty policy denies everything', () => {
    const empty = compilePolicy(parsePolicy('version: 1\nrules: []\n'));
    expect(empty.decide(request('api.example.test', 'GET', '/'))).toEqual(defaultDeny('no rule allows host api.example.test', 'host-not-allowed'));
  });

  test('the first matching allow decides, by policy order', () => {
    const ordered = compilePolicy(
      parsePolicy('version: 1\nrules:\n  - id: wide\n    host: "*.example.test"\n  - id: narrow\n    host: api.example.test\n'),
    );
    expect(ordered.decide(request('api.example.test', 'GET', '/'))).toEqual(allow('wide'));
  });

  test('a rule from --allow allows every request to its host', () => {
    const cli = compilePolicy({ version: 1, rules: [allowHostRule('Registry.NPMJS.org')] });
    expect(cli.decide(request('registry.npmjs.org', 'PUT', '/-/x', 8080))).toEqual(allow('cli-allow-registry.npmjs.org'));
  });
});

describe('couldAllowHost', () => {
  test.each<[string, string, number | undefined, boolean]>([
    ['host with an allow rule', 'api.example.test', undefined, true],
    ['host with an allow rule on that port', 'api.example.test', 443, true],
    ['wildcard subdomain', 'img.cdn.example.test', 443, true],
    ['whole-host deny rule wins', 'bad.cdn.example.test', 443, false],
    ['path-limited deny does not block the host', 'api.example.test', 8443, true],
    ['"*" rule makes any name possible', 'anything.test', undefined, true],
    ['IP literal outside every CIDR', '192.0.2.1', 443, false],
    ['IP literal inside a CIDR', '203.0.113.1', 443, true],
    ['port-limited allow on the wrong port', 'fd00::1', 443, false],
    ['port-limited allow on its port', 'fd00::1', 8080, true],
    ['port-limited allow, port not known yet', 'fd00::1', undefined, true],
    ['invalid host', 'a..b', undefined, false],
  ])('%s: %s port %s → %s', (_name, host, port, expected) => {
    expect(compiled.couldAllowHost(host, port)).toBe(expected);
  });

  test('tcp rules do not make a host possible for HTTP', () => {
    const tcpOnly = compilePolicy(parsePolicy('version: 1\nrules:\n  - id: pg\n    host: db.test\n    port: 5432\n    protocol: tcp\n'));
    expect(tcpOnly.couldAllowHost('db.test', 5432)).toBe(false);
  });

  test('a port-limited whole-host deny blocks only its port', () => {
    const portDeny = compilePolicy(
      parsePolicy('version: 1\nrules:\n  - id: a\n    host: x.test\n  - id: no-8080\n    host: x.test\n    port: 8080\n    action: deny\n'),
    );
    expect(portDeny.couldAllowHost('x.test', 8080)).toBe(false);
    expect(portDeny.couldAllowHost('x.test', 443)).toBe(true);
    expect(portDeny.couldAllowHost('x.test')).toBe(true);
  });
});

describe('tcpRuleFor', () => {
  test.each<[string, string, number, Decision]>([
    ['tcp rule allows its host and port', 'db.example.test', 5432, allow('postgres')],
    ['tcp rule on a CIDR', '203.0.113.5', 5432, allow('postgres-lab')],
    ['deny tcp rule', 'db.example.test', 25, denyBy('no-smtp')],
    ['another port', 'db.example.test', 5433, defaultDeny('rule postgres allows tcp to db.example.test but not port 5433', 'port-not-allowed')],
    ['http rules never allow tcp', 'api.example.test', 8443, defaultDeny('no tcp rule allows host api.example.test', 'host-not-allowed')],
    ['the "*" http rule never allows tcp', 'anything.test', 443, defaultDeny('no tcp rule allows host anything.test', 'host-not-allowed')],
    ['invalid host', 'a b', 5432, defaultDeny('host "a b" is not a valid host name or IP address', 'invalid-host')],
  ])('%s', (_name, host, port, expected) => {
    expect(compiled.tcpRuleFor(host, port)).toEqual(expected);
  });
});

describe('compilePolicy', () => {
  test('keeps the policy it was given', () => {
    expect(compiled.policy).toBe(policy);
  });

  test('rejects a hand-built rule with an invalid host', () => {
    const bad: Policy = { version: 1, rules: [{ id: 'x', host: 'api.*.test', action: 'allow', protocol: 'http' }] };
    expect(() => compilePolicy(bad)).toThrow(/rule x: host "api\.\*\.test"/);
  });
});

describe('couldResolveHost (what the gateway DNS may answer)', () => {
  const compiled = compilePolicy(
    parsePolicy(`
version: 1
rules:
  - id: web
    host: api.example.test
  - id: ssh
    host: git.example.test
    port: 22
    protocol: tcp
  - id: ssh-blocked
    host: blocked.example.test
    port: 22
    protocol: tcp
    action: deny
`),
  );
  test.each([
    ['api.example.test', true],
    ['git.example.test', true],
    ['blocked.example.test', false],
    ['other.example.test', false],
  ])('%s → %s', (host, expected) => {
    expect(compiled.couldResolveHost(host)).toBe(expected);
  });
  test('a tcp-only host is still not an HTTP host', () => {
    expect(compiled.couldAllowHost('git.example.test')).toBe(false);
  });
});
