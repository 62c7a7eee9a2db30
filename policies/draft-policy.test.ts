import { describe, expect, it } from 'vitest';
import { buildDraftPolicy, draftPathGlob, MAX_PATHS_PER_RULE, type ObservedRequest } from './draft-policy.js';
import { lintPolicy } from './lint.js';
import { parsePolicy } from './loader.js';
import { compilePolicy } from './match.js';

const seen = (host: string, method: string, path: string, outcome: ObservedRequest['outcome'] = 'allowed', port = 443, count?: number): ObservedRequest => ({
  host,
  port,
  method,
  path,
  outcome,
  ...(count === undefined ? {} : { count }),
});

/** The draft must load with the real loader, lint without errors, and allow every request it was drafted from. */
function expectUsable(text: string, requests: readonly ObservedRequest[]): void {
  const policy = parsePolicy(text, 'draft.yaml');
  expect(lintPolicy(policy).filter((finding) => finding.severity === 'error')).toEqual([]);
  const compiled = compilePolicy(policy);
  for (const request of requests) {
    const path = request.path.startsWith('/') ? request.path : new URL(request.path).pathname;
    expect(compiled.decide({ host: request.host, port: request.port, method: request.method, path }), `${request.method} ${request.host}:${request.port}${path}`).toMatchObject({ action: 'allow' });
  }
}

describe('draftPathGlob', () => {
  it.each([
    ['/', '/'],
    ['/v1', '/v1/**'],
    ['/v1/messages', '/v1/messages/**'],
    ['/v1/messages/abc/def', '/v1/messages/**'],
    ['/repos/acme/widget/issues?state=open', '/repos/acme/**'],
    ['//v1//./messages/../models/x', '/v1/models/**'],
    ['/@types%2fnode', '/@types%2Fnode/**'],
    ['/files/a*b/c', '/files/**'],
    ['/a b/c', '/**'],
    ['http://plain.example.test/simple/pkg/', '/simple/pkg/**'],
    ['not-a-path', '/**'],
  ])('%s → %s', (path, glob) => {
    expect(draftPathGlob(path)).toBe(glob);
  });
});

describe('buildDraftPolicy', () => {
  it('one rule per host, methods and path prefixes seen, counts as comments', () => {
    const requests = [
      seen('api.example.test', 'GET', '/v1/models', 'allowed', 443, 3),
      seen('api.example.test', 'POST', '/v1/messages', 'would-be-denied'),
      seen('api.example.test', 'POST', '/v1/messages/count_tokens', 'would-be-denied'),
      seen('registry.example.test', 'GET', '/lodash'),
      seen('registry.example.test', 'GET', '/lodash/-/lodash-4.17.21.tgz'),
      seen('registry.example.test', 'GET', '/@types%2fnode', 'denied'),
    ];
    const text = buildDraftPolicy(requests, { source: 'srt-gw run -- npm install' });
    expect(text).toBe(
      [
        '# Draft policy: what srt-gw run -- npm install did, 8 requests to 2 hosts.',
        '# Every rule allows what was seen, nothing more and nothing judged: review the hosts, methods',
        '# and paths before you use it, and add credential rules where a secret should be injected.',
        'version: 1',
        'rules:',
        '  # 5 requests: 3 allowed, 2 would have been denied (--monitor)',
        '  - id: api.example.test',
        '    host: api.example.test',
        '    methods: [GET, POST] # GET 3, POST 2',
        '    paths:',
        '      - /v1/messages/** # 2',
        '      - /v1/models/** # 3',
        '  # 3 requests: 2 allowed, 1 denied',
        '  - id: registry.example.test',
        '    host: registry.example.test',
        '    methods: [GET] # GET 3',
        '    paths:',
        '      - "/@types%2Fnode/**" # 1',
        '      - /lodash/** # 2',
        '',
      ].join('\n'),
    );
    expectUsable(text, requests);
  });

  it('a host seen on another port than 443/80 gets a rule per port, with the port', () => {
    const requests = [seen('api.example.test', 'GET', '/a', 'allowed', 443), seen('api.example.test', 'GET', '/b', 'denied', 8443), seen('plain.example.test', 'GET', '/c', 'allowed', 80)];
    const text = buildDraftPolicy(requests);
    expect(text).toContain(['  - id: api.example.test-443', '    host: api.example.test', '    port: 443'].join('\n'));
    expect(text).toContain(['  - id: api.example.test-8443', '    host: api.example.test', '    port: 8443'].join('\n'));
    expect(text).toContain(['  - id: plain.example.test', '    host: plain.example.test', '    methods'].join('\n'));
    expectUsable(text, requests);
    // Port 8443's rule does not open port 9443.
    expect(compilePolicy(parsePolicy(text)).decide({ host: 'api.example.test', port: 9443, method: 'GET', path: '/b' }).action).toBe('deny');
  });

  it('a wider prefix takes in the narrower ones; the root path stays exact', () => {
    const requests = [seen('h.example.test', 'GET', '/v1'), seen('h.example.test', 'GET', '/v1/messages/1'), seen('h.example.test', 'GET', '/')];
    const text = buildDraftPolicy(requests);
    expect(text).toContain(['    paths:', '      - / # 1', '      - /v1/** # 2', ''].join('\n'));
    expectUsable(text, requests);
  });

  it('a path that cannot be written as a glob means any path: paths are left out', () => {
    const requests = [seen('h.example.test', 'GET', '/a*b/c'), seen('h.example.test', 'GET', '/ok')];
    const text = buildDraftPolicy(requests);
    expect(text).not.toContain('paths:');
    expectUsable(text, requests);
  });

  it(`more than ${MAX_PATHS_PER_RULE} prefixes are cut to first segments, then left out, so a draft is never one entry per URL`, () => {
    const ids = Array.from({ length: 30 }, (_, i) => seen('h.example.test', 'GET', `/items/${i}/detail`));
    const byItem = buildDraftPolicy(ids);
    expect(byItem).toContain(['    paths:', '      - /items/** # 30', ''].join('\n'));
    const top = Array.from({ length: 30 }, (_, i) => seen('h.example.test', 'GET', `/item${i}`));
    const any = buildDraftPolicy(top);
    expect(any).toContain(`# paths left out (any path): more than ${MAX_PATHS_PER_RULE} distinct prefixes were seen`);
    expectUsable(any, top);
  });

  it('IP literals become rules for that address; odd hosts, methods and ids are quoted or left out', () => {
    const requests = [seen('203.0.113.9', 'GET', '/x', 'would-be-denied'), seen('2001:db8::1', 'GET', '/y', 'would-be-denied'), seen('null', 'GET', '/z'), seen('true.example.test', 'PATCH', '/w')];
    const text = buildDraftPolicy([...requests, seen('-', 'GET', '/'), seen('*.example.test', 'GET', '/'), seen('h.example.test', 'BAD METHOD', '/')]);
    expect(text).toContain('# 3 requests with no usable host or method left out.');
    expect(text).toContain('    host: "2001:db8::1"');
    expect(text).toContain('  - id: "2001-db8--1"');
    expect(text).toContain('    host: "null"');
    expectUsable(text, requests);
  });

  it('no requests: an empty rule list, which denies everything', () => {
    const text = buildDraftPolicy([], { lookedUpOnly: ['only-dns.example.test'] });
    expect(text).toContain('version: 1\nrules: []\n');
    expect(text).toContain('# Looked up but never requested (no rule drafted):\n#   only-dns.example.test\n');
    expect(parsePolicy(text).rules).toEqual([]);
  });

  it('names that were requested are not listed as only looked up', () => {
    const text = buildDraftPolicy([seen('api.example.test', 'GET', '/')], { lookedUpOnly: ['api.example.test', 'other.example.test'] });
    expect(text).toMatch(/# {3}other\.example\.test\n$/);
    expect(text.match(/api\.example\.test/g)).toHaveLength(2); // id and host
  });
});
