// The `clients:` section at run time: what the loader makes of each kind of client, and how
// clients merge across `extends:`. Bad sections are fixtures: testdata/invalid-clients-*.yaml.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { parsePolicy } from './loader.js';

const HASH = 'AB'.repeat(32);
const root = mkdtempSync(join(tmpdir(), 'srt-gw-clients-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('clients: at run time', () => {
  test('each kind of client, with jwksFile paths resolved against the policy file', () => {
    const policy = parsePolicy(
      `version: 1
rules:
  - { id: npm-read, host: registry.npmjs.org }
  - { id: api, host: api.example.test }
clients:
  - id: ci
    token: { sha256: "${HASH}" }
    rules: [npm-read, api, npm-read]
  - id: builders
    jwt:
      issuer: https://kubernetes.default.svc
      audience: srt-gw
      jwksFile: ./keys/jwks.json
      subject: "system:serviceaccount:agents:*"
    rules: [api]
  - id: remote
    jwt: { issuer: https://issuer.example.test, audience: srt-gw, jwksUrl: "http://127.0.0.1:8200/jwks", subject: [a, b, a] }
  - id: home
    jwt: { issuer: x, audience: y, jwksFile: ~/jwks.json }
  - id: runners
    mtls: { subject: "CN=runner-*" }
  - id: agents
    mtls: { uri: "spiffe://corp/ns/agents/*" }
  - id: laptops
    issued: {}
`,
      join(root, 'conf', 'policy.yaml'),
    );
    expect(policy.clients).toEqual([
      { id: 'ci', credential: { kind: 'token', sha256: HASH.toLowerCase() }, rules: ['npm-read', 'api'], source: { file: join(root, 'conf', 'policy.yaml'), line: 6, column: 5 } },
      {
        id: 'builders',
        credential: {
          kind: 'jwt',
          issuer: 'https://kubernetes.default.svc',
          audience: 'srt-gw',
          jwks: { kind: 'file', path: join(root, 'conf', 'keys', 'jwks.json'), written: './keys/jwks.json' },
          subjects: ['system:serviceaccount:agents:*'],
        },
        rules: ['api'],
        source: expect.objectContaining({ line: 9 }),
      },
      {
        id: 'remote',
        credential: { kind: 'jwt', issuer: 'https://issuer.example.test', audience: 'srt-gw', jwks: { kind: 'url', url: 'http://127.0.0.1:8200/jwks' }, subjects: ['a', 'b'] },
        source: expect.any(Object),
      },
      { id: 'home', credential: expect.objectContaining({ jwks: { kind: 'file', path: join(homedir(), 'jwks.json'), written: '~/jwks.json' } }), source: expect.any(Object) },
      { id: 'runners', credential: { kind: 'mtls', field: 'cn', pattern: 'runner-*' }, source: expect.any(Object) },
      { id: 'agents', credential: { kind: 'mtls', field: 'uri', pattern: 'spiffe://corp/ns/agents/*' }, source: expect.any(Object) },
      { id: 'laptops', credential: { kind: 'issued' }, source: expect.any(Object) },
    ]);
  });

  test('no clients: section, no clients', () => {
    expect(parsePolicy('version: 1\nrules: []\n').clients).toBeUndefined();
  });

  test('clients of extended files come first, may name their rules, and keep where they were written', () => {
    writeFileSync(join(root, 'base.yaml'), `version: 1\nrules:\n  - { id: api, host: api.example.test }\nclients:\n  - { id: laptops, issued: {}, rules: [api] }\n`);
    const policy = parsePolicy(`version: 1\nextends: [./base.yaml]\nrules:\n  - { id: own, host: own.example.test }\nclients:\n  - { id: ci, issued: {}, rules: [api, own] }\n`, join(root, 'policy.yaml'));
    expect(policy.clients?.map((client) => [client.id, client.rules])).toEqual([
      ['laptops', ['api']],
      ['ci', ['api', 'own']],
    ]);
    expect(policy.clients?.[0]?.source).toEqual({ file: join(root, 'base.yaml'), line: 5, column: 5, extendedAt: { file: join(root, 'policy.yaml'), line: 2, column: 11 } });
  });

  test('an extended file may name rules of the file that extends it', () => {
    writeFileSync(join(root, 'clients-only.yaml'), `version: 1\nrules: []\nclients:\n  - { id: ci, issued: {}, rules: [own] }\n`);
    const policy = parsePolicy(`version: 1\nextends: [./clients-only.yaml]\nrules:\n  - { id: own, host: own.example.test }\n`, join(root, 'policy.yaml'));
    expect(policy.clients?.map((client) => client.id)).toEqual(['ci']);
  });
});
