// explain.ts: which rule decides and why, for allowed, denied and path-normalised requests.
import { describe, expect, test } from 'vitest';
import { credentialPlaceholders } from './credentials.js';
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
        'response: 403 {"error":"denied","code":"denied-by-rule","rule":"block-admin","reason":"denied by rule block-admin"}',
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
    // The gateway itself refuses such a target before the policy: the explanation says so.
    expect(explanation.notes).toContainEqual(expect.stringMatching(/^the gateway answers 400 before the policy is asked: request path .*decodes it could read another path\)$/));
    expect(explainRequest(policy, request('GET', 'https://API.Example.Test/v1/admin')).notes).toEqual([]);
    expect(text).toContain('host:    API.Example.Test → api.example.test\n');
    expect(text).toContain('response: 403 {"error":"denied","code":"path-not-allowed","rule":"default-deny","reason":"rules api-upload, api-read allow api.example.test but not GET /admin"}');
  });

  test('the failing field is named: port', () => {
    const explanation = explainRequest(policy, request('POST', 'http://api.example.test/v1/upload'));
    expect(explanation.rules[0]).toMatchObject({ id: 'api-upload', failedField: 'port', detail: 'port 80 is not 443' });
  });

  test('a host no rule names', () => {
    const explanation = explainRequest(policy, request('GET', 'https://nobody.example.test/'));
    expect(explanation.rules).toEqual([]);
    expect(renderExplanation(explanation)).toContain('rules naming this host: none\n');
    expect(explanation.denyBody).toBe('{"error":"denied","code":"host-not-allowed","rule":"default-deny","reason":"no rule allows host nobody.example.test"}');
  });

  test('a Host header that differs from the URL is called out as fronting', () => {
    const explanation = explainRequest(policy, request('GET', 'https://other.example.test/'), [['Host', 'api.example.test']]);
    expect(explanation.decision.action).toBe('allow');
    expect(explanation.notes[0]).toContain('differs from the URL host');
  });
});

describe('explain: credentials and budgets', () => {
  const keyed = parsePolicy(
    [
      'version: 1',
      'rules:',
      '  - id: example-api',
      '    host: api.example.test',
      '    credentials: { header: x-api-key, inject: { env: EXAMPLE_API_KEY } }',
      '    budget: { requestBytesPerMinute: 1MiB, requestBytesPerRun: 100MiB }',
      '  - id: required',
      '    host: required.example.test',
      '    credentials: { header: authorization, require: ["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"] }',
    ].join('\n'),
    'policy.yaml',
  );
  const placeholder = credentialPlaceholders(keyed).get('EXAMPLE_API_KEY')!;

  test('says what happens to the credential and the budget', () => {
    const explanation = explainRequest(keyed, request('POST', 'https://api.example.test/v1/messages'));
    expect(explanation.credentials).toEqual([expect.stringMatching(/^x-api-key is replaced with the secret from env EXAMPLE_API_KEY; .*any other value sent is refused \(403\)$/)]);
    expect(explanation.budget).toBe('1 MiB per minute and 100 MiB per run');
    expect(explanation.credentialCheck).toEqual({ outcome: 'injected' });
    const text = renderExplanation(explanation);
    expect(text).toContain('credentials: x-api-key is replaced with the secret from env EXAMPLE_API_KEY;');
    expect(text).toContain('credentials step: injected with the headers given');
    expect(text).toContain('budget: 1 MiB per minute and 100 MiB per run of requests (line, headers and body); a request that would cross it gets 429');
  });

  test("an attacker's key given with -H is refused, with the 403 body", () => {
    const explanation = explainRequest(keyed, request('POST', 'https://api.example.test/v1/messages'), [['X-Api-Key', 'sk-attacker-123456789']]);
    expect(explanation.credentialCheck?.outcome).toBe('refused');
    expect(explanation.denyBody).toContain('"rule":"example-api"');
    expect(explanation.denyBody).not.toContain('sk-attacker');
    expect(renderExplanation(explanation)).toContain('credentials step: REFUSED: rule example-api refuses the x-api-key sent');
    expect(explanation.notes).toEqual([]);
  });

  test('the placeholder given with -H is accepted', () => {
    expect(explainRequest(keyed, request('GET', 'https://api.example.test/'), [['x-api-key', placeholder]]).credentialCheck).toEqual({ outcome: 'injected' });
  });

  test('require checks the hash of the value given', () => {
    const line = request('GET', 'https://required.example.test/');
    expect(explainRequest(keyed, line, [['authorization', 'Bearer foo']]).credentialCheck).toEqual({ outcome: 'required-ok' });
    expect(explainRequest(keyed, line, [['authorization', 'Bearer bar']]).credentialCheck?.outcome).toBe('refused');
    expect(explainRequest(keyed, line).credentialCheck?.reason).toContain('requires a authorization (Bearer token) and the request has none');
  });

  test('other headers are noted as not read', () => {
    const explanation = explainRequest(keyed, request('GET', 'https://api.example.test/'), [['accept', '*/*']]);
    expect(explanation.notes).toEqual(['headers given (accept) do not affect the decision: only the credential header x-api-key of rule example-api is read']);
  });
});

describe('rules from extended presets and files', () => {
  const extended = parsePolicy(
    ['version: 1', 'extends:', '  - { preset: github, with: { pushRepos: [me/project] } }', 'rules:', '  - id: github-own', '    host: github.com', '    methods: [DELETE]'].join('\n'),
    'policy.yaml',
  );

  test('name where they were written and where they were extended; own rules keep "line N"', () => {
    const explanation = explainRequest(extended, request('POST', 'https://github.com/me/project.git/git-receive-pack'));
    expect(explanation.decision).toMatchObject({ action: 'allow', ruleId: 'github.git-push' });
    const verdict = explanation.rules.find((rule) => rule.id === 'github.git-push');
    expect(verdict?.from).toMatch(/^preset:github:\d+:5, extended at policy\.yaml:3:5$/);
    expect(explanation.rules.find((rule) => rule.id === 'github-own')).toMatchObject({ line: 5 });
    expect(explanation.rules.find((rule) => rule.id === 'github-own')?.from).toBeUndefined();
    const text = renderExplanation(explanation);
    expect(text).toMatch(/^ {2}match {4}allow github\.git-push \(preset:github:\d+:5, extended at policy\.yaml:3:5\), host github\.com: matches/m);
    expect(text).toContain('  no match allow github-own (line 5), host github.com: method POST is not one of DELETE');
  });
});
