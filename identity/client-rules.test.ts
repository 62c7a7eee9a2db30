// Which rules a client may use, and the bounded metrics label of a client.
import { describe, expect, test } from 'vitest';
import { parsePolicy } from '../policies/loader.js';
import { clientLabeler } from './client-metrics-label.js';
import { clientRuleIds, rulesForClient } from './client-rules.js';

const policy = parsePolicy(`version: 1
rules:
  - { id: npm-read, host: registry.npmjs.org }
  - { id: no-uploads, host: api.example.test, methods: [POST], action: deny }
  - { id: api, host: api.example.test }
  - { id: github-read, host: api.github.com }
clients:
  - { id: ci, issued: {}, rules: [npm-read, github-read] }
  - { id: admins, issued: {} }
`);
const [ci, admins] = policy.clients!;

describe('clientRuleIds and rulesForClient', () => {
  test('a client with rules: its allow rules, plus every deny rule', () => {
    expect([...clientRuleIds(ci!, policy.rules)].sort()).toEqual(['github-read', 'no-uploads', 'npm-read']);
    expect(rulesForClient(ci!, policy.rules).map((rule) => rule.id)).toEqual(['npm-read', 'no-uploads', 'github-read']);
  });

  test('a client without rules: every rule, the same list', () => {
    expect([...clientRuleIds(admins!, policy.rules)]).toEqual(['npm-read', 'no-uploads', 'api', 'github-read']);
    expect(rulesForClient(admins!, policy.rules)).toBe(policy.rules);
  });
});

describe('clientLabeler', () => {
  test('the id of a client the policy names, else "other"', () => {
    const label = clientLabeler(policy.clients);
    expect([label('ci'), label('admins'), label('nobody'), label(undefined), label('__proto__')]).toEqual(['ci', 'admins', 'other', 'other', 'other']);
    expect(clientLabeler(undefined)('ci')).toBe('other');
  });
});
