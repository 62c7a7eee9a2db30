// Each client's compiled policy: its rules only, every deny rule kept, the whole policy for a
// client without `rules:`.
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../policies/loader.js';
import { compilePolicy } from '../policies/match.js';
import { compileClientPolicies } from './policy-clients.js';

const compiled = compilePolicy(
  parsePolicy(`version: 1
rules:
  - { id: ci-read, host: api.example.test, paths: ["/ci/**"] }
  - { id: other, host: other.example.test }
  - { id: no-secret, host: api.example.test, paths: ["/ci/secret/**"], action: deny }
clients:
  - { id: ci, token: { sha256: "${'a'.repeat(64)}" }, rules: [ci-read] }
  - { id: all, token: { sha256: "${'b'.repeat(64)}" } }
`),
);
const request = (host: string, path: string) => ({ host, port: 443, method: 'GET', path });

describe('compileClientPolicies', () => {
  const policies = compileClientPolicies(compiled);

  it.each([
    ['ci', request('api.example.test', '/ci/a'), 'allow', 'ci-read'],
    ['ci', request('other.example.test', '/'), 'deny', 'default-deny'],
    ['ci', request('api.example.test', '/ci/secret/k'), 'deny', 'no-secret'],
    ['all', request('other.example.test', '/'), 'allow', 'other'],
    ['all', request('api.example.test', '/ci/secret/k'), 'deny', 'no-secret'],
  ])('%s: %o → %s by %s', (client, facts, action, rule) => {
    const decision = policies.get(client)!.decide(facts);
    expect([decision.action, decision.ruleId]).toEqual([action, rule]);
  });

  it('a client without rules: shares the compiled policy; an unknown id has none', () => {
    expect(policies.get('all')).toBe(compiled);
    expect(policies.get('nobody')).toBeUndefined();
    expect(policies.get('ci')!.couldAllowHost('other.example.test', 443)).toBe(false);
  });
});
