// The published JSON Schema (policies/policy.schema.json) must equal what the zod schema generates;
// regenerate it with `npm run build && node scripts/write-policy-schema.mjs`.
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, test } from 'vitest';
import { policyJsonSchema } from './schema.js';

const committed = readFileSync(new URL('./policy.schema.json', import.meta.url), 'utf8');

describe('policies/policy.schema.json', () => {
  test('is exactly the schema generated from policies/schema.ts', () => {
    expect(committed).toBe(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
  });

  test('validates the example policy shape and rejects an unknown key', () => {
    const validate = new Ajv2020({ strict: false }).compile(JSON.parse(committed) as object);
    expect(validate({ version: 1, rules: [{ id: 'api', host: 'api.example.test', methods: ['GET'], paths: ['/v1/**'] }] })).toBe(true);
    expect(validate({ version: 1, rules: [{ id: 'api', host: 'api.example.test', prot: 443 }] })).toBe(false);
    expect(validate({ version: 1, rules: [], filesystem: { denyRead: ['~/secrets'], allowWrite: ['./build'] } })).toBe(true);
    expect(validate({ version: 1, rules: [], filesystem: { denyread: ['~/secrets'] } })).toBe(false);
    expect(validate({ version: 1, rules: [], filesystem: { allowWrite: '~/.npm' } })).toBe(false);
    expect(validate({ version: 1, rules: [], jail: { allowLocalBinding: true } })).toBe(true);
    expect(validate({ version: 1, rules: [], jail: { allowLocalBinding: 'yes' } })).toBe(false);
    expect(validate({ version: 1, rules: [], jail: { allowLocalbinding: true } })).toBe(false);
  });

  test('validates clients: one way to authenticate each, keys from a file or over https', () => {
    const validate = new Ajv2020({ strict: false }).compile(JSON.parse(committed) as object);
    const hash = 'a'.repeat(64);
    const jwt = { issuer: 'https://kubernetes.default.svc', audience: 'srt-gw', jwksFile: './jwks.json', subject: 'system:serviceaccount:agents:*' };
    expect(validate({ version: 1, rules: [], clients: [{ id: 'ci', token: { sha256: hash }, rules: ['npm-read'] }, { id: 'b', jwt }, { id: 'r', mtls: { subject: 'CN=runner-*' } }, { id: 'l', issued: {} }] })).toBe(true);
    expect(validate({ version: 1, rules: [], clients: [{ id: 'ci', token: { sha256: 'abc' } }] })).toBe(false);
    expect(validate({ version: 1, rules: [], clients: [{ id: 'ci', tokn: { sha256: hash } }] })).toBe(false);
    expect(validate({ version: 1, rules: [], clients: [{ id: 'ci:x', issued: {} }] })).toBe(false);
    expect(validate({ version: 1, rules: [], clients: [{ id: 'b', jwt: { ...jwt, audince: 'x' } }] })).toBe(false);
  });

  test('validates extends: presets and files, with or without rules of the file itself', () => {
    const validate = new Ajv2020({ strict: false }).compile(JSON.parse(committed) as object);
    expect(validate({ version: 1, extends: ['preset:npm-read', './team.yaml'] })).toBe(true);
    expect(validate({ version: 1, extends: [{ preset: 'github', with: { pushRepos: ['me/project'] } }], rules: [] })).toBe(true);
    expect(validate({ version: 1 })).toBe(false);
    expect(validate({ version: 1, extends: 'preset:npm-read' })).toBe(false);
    expect(validate({ version: 1, extends: [{ preset: 'github', width: {} }] })).toBe(false);
    expect(validate({ version: 1, extends: [{ preset: 'GitHub' }] })).toBe(false);
  });
});
