// explain.ts: which rule decides and why, for allowed, denied and path-normalised requests.
import { describe, expect, test } from 'vitest';
import { explainRequest, parseRequestText, parseRequestUrl, renderExplanation, type RequestLine } from './explain.js';
import { parsePolicy } from './loader.js';

const policy = parsePolicy(
  [
    'version: 1',
    'rules:',
    '  - id: api-upload',
    '    host: api.example.test',
    '    port: 443',
    '    methods: [POST]',
    '    paths: ["/v1/upload"]',
    '  - id: api-read',
    '    host: api.example.test',
    '    methods: [GET, HEAD]',
    '    paths: ["/v1/**"]',
    '  - id: block-admin',
    '    host: api.example.test',
    '    paths: ["/v1/admin/**"]',
    '    action: deny',
    '  - id: other',
    '    host: other.example.test',
  ].join('\n'),
  'policy.yaml',
);

function request(method: string, url: string): RequestLine {
  const parsed = parseRequestUrl(method, url);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed.request;
}

describe('parseRequestUrl', () => {
  test('keeps the path as written, so normalisation can be shown', () => {
    expect(request('get', 'https://API.example.test/v1/%2e%2e/admin?x=1')).toEqual({
      method: 'GET',
      scheme: 'https',
      host: 'API.example.test',
      port: 443,
      path: '/v1/%2e%2e/admin?x=1',
    });
  });

  test('default ports, explicit ports, IPv6 brackets, userinfo and fragments', () => {
    expect(request('GET', 'http://a.test')).toMatchObject({ port: 80, path: '/' });
    expect(request('GET', 'https://u:p@a.test:8443/x#frag')).toMatchObject({ host: 'a.test', port: 8443, path: '/x' });
    expect(request('GET', 'https://[::1]:9000/')).toMatchObject({ host: '::1', port: 9000 });
  });

  test.each([
    ['GET', 'ftp://a.test/', 'URL "ftp://a.test/" must start with http:// or https://'],
    ['GET', 'https://a.test:99999/', 'URL "https://a.test:99999/" has an invalid port'],
    ['G T', 'https://a.test/', 'method "G T" is not an HTTP method'],
  ])('%s %s is refused', (method, url, error) => {
    expect(parseRequestUrl(method, url)).toEqual({ error });
  });

  test('parseRequestText wants "METHOD URL"', () => {
    expect(parseRequestText('GET https://a.test/x')).toMatchObject({ request: { method: 'GET', path: '/x' } });
    expect(parseRequestText('https://a.test/x')).toHaveProperty('error');
  });
});

describe('explainRequest', () => {
  test('an allowed request: exact text', () => {
    const text = renderExplanation(explainRequest(policy, request('GET', 'https://api.example.test/v1/files/a')));
    expect(text).toBe(
      [
        'request: GET https://api.example.test/v1/files/a',
        'host:    api.example.test',
        'port:    443',
        'path:    /v1/files/a',
        'rules naming this host:',
        '  no match allow api-upload (line 3), host api.example.test: method GET is not one of POST',
        '  match    allow api-read (line 8), host api.example.test: matches (any port, GET, path /v1/files/a)',
        '  no match deny block-admin (line 12), host api.example.test: path /v1/files/a matches none of /v1/admin/**',
        'decision: ALLOW by api-read: allowed by rule api-read',
        '',
      ].join('\n'),
    );
  });

  test('a deny that wins over a matching allow: exact text with the 403 body', () => {
    const text = renderExplanation(explainRequest(policy, request('GET', 'https://api.example.test/v1/admin/users')));
    expect(text).toBe(
      [
        'request: GET https://api.example.test/v1/admin/users',
        'host:    api.example.test',
        'port:    443',
        'path:    /v1/admin/users',
        'rules naming this host:',
        '  no match allow api-upload (line 3), host api.example.test: method GET is not one of POST',
        '  match    allow api-read (line 8), host api.example.test: matches (any port, GET, path /v1/admin/users)',
        '  match    deny block-admin (line 12), host api.example.test: matches (any port, any method, path /v1/admin/users)',
        'decision: DENY by block-admin: denied by rule block-admin',
        '  (a matching deny wins over the matching allow api-read)',
        'response: 403 {"error":"denied","rule":"block-admin","reason":"denied by rule block-admin"}',
        '',
      ].join('\n'),
    );
  });

  test('a path-normalised request is judged on the normalised path', () => {
    const explanation = explainRequest(policy, request('GET', 'https://API.Example.Test/v1/%2e%2e/admin'));
    expect(explanation.host).toEqual({ written: 'API.Example.Test', normalized: 'api.example.test' });
    expect(explanation.path).toEqual({ written: '/v1/%2e%2e/admin', normalized: '/admin' });
    expect(explanation.decision).toMatchObject({ action: 'deny', ruleId: 'default-deny' });
    expect(explanation.rules.find((rule) => rule.id === 'api-read')).toMatchObject({ matched: false, failedField: 'path' });
    const text = renderExplanation(explanation);
    expect(text).toContain('path:    /v1/%2e%2e/admin → /admin\n');
    expect(text).toContain('host:    API.Example.Test → api.example.test\n');
    expect(text).toContain('response: 403 {"error":"denied","rule":"default-deny","reason":"rules api-upload, api-read allow api.example.test but not GET /admin"}');
  });

  test('the failing field is named: port', () => {
    const explanation = explainRequest(policy, request('POST', 'http://api.example.test/v1/upload'));
    expect(explanation.rules[0]).toMatchObject({ id: 'api-upload', failedField: 'port', detail: 'port 80 is not 443' });
  });

  test('a host no rule names', () => {
    const explanation = explainRequest(policy, request('GET', 'https://nobody.example.test/'));
    expect(explanation.rules).toEqual([]);
    expect(renderExplanation(explanation)).toContain('rules naming this host: none\n');
    expect(explanation.denyBody).toBe('{"error":"denied","rule":"default-deny","reason":"no rule allows host nobody.example.test"}');
  });

  test('a Host header that differs from the URL is called out as fronting', () => {
    const explanation = explainRequest(policy, request('GET', 'https://other.example.test/'), [['Host', 'api.example.test']]);
    expect(explanation.decision.action).toBe('allow');
    expect(explanation.notes[0]).toContain('differs from the URL host');
  });
});
