// What the jail and reviewers learn from credential rules: placeholders, secret files, and the
// sentences `policy explain` prints.
import { describe, expect, test } from 'vitest';
import { credentialPlaceholders, credentialSecretFiles, describeBudget, describeCredentialRule, placeholderFor } from './credentials.js';
import { parsePolicy } from './loader.js';

const policy = parsePolicy(
  [
    'version: 1',
    'rules:',
    '  - id: anthropic',
    '    host: api.anthropic.com',
    '    credentials: { header: x-api-key, inject: { env: ANTHROPIC_API_KEY } }',
    '  - id: anthropic-batches',
    '    host: batches.anthropic.com',
    '    credentials: { header: x-api-key, inject: { env: ANTHROPIC_API_KEY } }',
    '  - id: github',
    '    host: api.github.com',
    '    credentials:',
    '      - { header: authorization, inject: { file: ./github.token } }',
    '      - { query: access_token, strip: true }',
    '  - id: gitlab',
    '    host: gitlab.example.test',
    '    credentials: { header: private-token, inject: { file: ./github.token } }',
    '  - id: vault',
    '    host: vault.example.test',
    '    credentials: { header: x-vault-token, inject: { command: [vault, print, token] } }',
    '    budget: { requestBytesPerMinute: 1MiB, requestBytesPerRun: 1500 }',
  ].join('\n'),
  '/home/me/project/policy.yaml',
);

describe('credentialPlaceholders', () => {
  test('one placeholder per injected environment variable, shared by the rules that use it', () => {
    const placeholders = credentialPlaceholders(policy);
    expect([...placeholders.keys()]).toEqual(['ANTHROPIC_API_KEY']);
    expect(placeholders.get('ANTHROPIC_API_KEY')).toMatch(/^srtgw-placeholder-anthropic-api-key-[0-9a-f]{24}$/);
  });

  test('the same for every load of the policy (the jail environment outlives reloads)', () => {
    const again = parsePolicy('version: 1\nrules:\n  - id: other-id\n    host: x.test\n    credentials: { header: x-k, inject: { env: ANTHROPIC_API_KEY } }\n');
    expect(credentialPlaceholders(again).get('ANTHROPIC_API_KEY')).toBe(credentialPlaceholders(policy).get('ANTHROPIC_API_KEY'));
  });

  test('different variables get different placeholders', () => {
    expect(placeholderFor({ kind: 'env', name: 'A_KEY' }, 'r')).not.toBe(placeholderFor({ kind: 'env', name: 'B_KEY' }, 'r'));
  });

  test('file and command sources get placeholders too, labelled by rule id', () => {
    expect(placeholderFor({ kind: 'file', path: '/k', written: '/k' }, 'github')).toMatch(/^srtgw-placeholder-github-[0-9a-f]{24}$/);
    expect(placeholderFor({ kind: 'command', argv: ['vault'], cwd: '/' }, 'vault')).toMatch(/^srtgw-placeholder-vault-/);
  });

  test('a policy without inject rules has none', () => {
    expect(credentialPlaceholders(parsePolicy('version: 1\nrules: []\n')).size).toBe(0);
  });
});

describe('credentialSecretFiles', () => {
  test('absolute paths of the files inject rules read, deduplicated', () => {
    expect(credentialSecretFiles(policy)).toEqual(['/home/me/project/github.token']);
  });
});

describe('describeCredentialRule', () => {
  test.each([
    [0, 0, /^x-api-key is replaced with the secret from env ANTHROPIC_API_KEY; a request may send the placeholder srtgw-placeholder-\S+, which srt-gw run puts in ANTHROPIC_API_KEY inside the jail, or no x-api-key; any other value sent is refused \(403\)$/],
    [2, 0, /^authorization \(Bearer token\) is replaced with the secret from file \/home\/me\/project\/github\.token; a request may send the placeholder \S+, or no authorization \(Bearer token\); any other value sent is refused/],
    [2, 1, /^query parameter access_token is removed before the request is forwarded$/],
    [4, 0, /secret from command vault print token/],
  ])('rule %i credential %i', (ruleIndex, credentialIndex, pattern) => {
    const rule = policy.rules[ruleIndex]!;
    expect(describeCredentialRule(rule.credentials![credentialIndex]!, rule.id)).toMatch(pattern);
  });

  test('require says how many values are allowed', () => {
    const required = parsePolicy(
      'version: 1\nrules:\n  - id: r\n    host: r.test\n    credentials: { header: x-k, require: ["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"] }\n',
    );
    expect(describeCredentialRule(required.rules[0]!.credentials![0]!, 'r')).toBe('x-k must be sent and hash to one of 1 allowed SHA-256 value; any other value, or none, is refused (403)');
  });
});

describe('describeBudget', () => {
  test('both limits, in readable units', () => {
    expect(describeBudget(policy.rules[4]!.budget!)).toBe('1 MiB per minute and 1500 bytes per run');
  });
});

describe('policies/examples/credentials.yaml', () => {
  test('loads, and lint finds no errors', async () => {
    const { loadPolicyFile } = await import('./loader.js');
    const { lintPolicy } = await import('./lint.js');
    const example = await loadPolicyFile(new URL('./examples/credentials.yaml', import.meta.url).pathname);
    expect(example.rules.map((rule) => rule.id)).toEqual(['anthropic', 'internal-api', 'maps', 'partner']);
    expect(lintPolicy(example).filter((finding) => finding.severity === 'error')).toEqual([]);
    expect(credentialPlaceholders(example).has('ANTHROPIC_API_KEY')).toBe(true);
    expect(credentialSecretFiles(example)).toEqual([new URL('./examples/secrets/internal-api.token', import.meta.url).pathname]);
  });
});
