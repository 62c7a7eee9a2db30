// Lint fixtures (policies/testdata/lint-*.yaml) each list their exact findings in "# expect:" lines.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { formatFinding, lintPolicy, secretKind } from './lint.js';
import { parsePolicy } from './loader.js';

const testdata = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata');
const EXPECT_PREFIX = '# expect: ';

const fixtures = readdirSync(testdata)
  .filter((name) => name.startsWith('lint-') && name.endsWith('.yaml'))
  .sort();

describe('lint fixtures produce exactly their "# expect:" findings', () => {
  test('there are fixtures, including one with no findings', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(5);
    expect(fixtures).toContain('lint-clean.yaml');
  });

  test.each(fixtures)('%s', (name) => {
    const text = readFileSync(join(testdata, name), 'utf8');
    const expected = text
      .split('\n')
      .filter((line) => line.startsWith(EXPECT_PREFIX))
      .map((line) => line.slice(EXPECT_PREFIX.length));
    expect(lintPolicy(parsePolicy(text, name, { baseDirectory: testdata })).map(formatFinding)).toEqual(expected);
  });
});

describe('secretKind', () => {
  test.each([
    ['sk-ant-api03-abcdefghijklmnopqrstuvwx', 'an Anthropic/OpenAI-style API key'],
    ['github_pat_11ABCDEFG0123456789abcdefghij', 'a GitHub token'],
    ['xoxb-1234567890-abcdefghij', 'a Slack token'],
    ['eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig', 'a JSON Web Token'],
    ['/v1/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdo', 'a random token (long, high-entropy string)'],
  ])('%s is flagged', (value, kind) => {
    expect(secretKind(value)).toBe(kind);
  });

  test.each([
    '/guides/getting-started-with-the-command-line-interface',
    '/tarball/3f786850e387550fdab836ed7e6dc881de23001b',
    'api.example.test',
    '/v1/files/*',
  ])('%s is not flagged', (value) => {
    expect(secretKind(value)).toBeNull();
  });
});

describe('lint with the machine environment (policy check)', () => {
  const policy = parsePolicy(
    [
      'version: 1',
      'rules:',
      '  - id: from-env',
      '    host: a.test',
      '    credentials: { header: x-api-key, inject: { env: SET_KEY } }',
      '  - id: from-unset-env',
      '    host: b.test',
      '    credentials: { header: x-api-key, inject: { env: UNSET_KEY } }',
      '  - id: from-file',
      '    host: c.test',
      '    credentials: { header: x-api-key, inject: { file: /secrets/c.key } }',
      '  - id: from-missing-file',
      '    host: d.test',
      '    credentials: { header: x-api-key, inject: { file: /secrets/d.key } }',
    ].join('\n'),
    'policy.yaml',
  );

  test('warns about an unset variable and a missing file', () => {
    const findings = lintPolicy(policy, { env: { SET_KEY: 'x' }, fileExists: (path) => path === '/secrets/c.key' }).map(formatFinding);
    expect(findings).toEqual([
      'policy.yaml:6:5: warning: rule from-unset-env injects x-api-key from env UNSET_KEY, but environment variable UNSET_KEY is not set here; the gateway will refuse to start with this policy until it is [inject-source-unavailable]',
      'policy.yaml:12:5: warning: rule from-missing-file injects x-api-key from file /secrets/d.key, but file /secrets/d.key does not exist; the gateway will refuse to start with this policy until it is [inject-source-unavailable]',
    ]);
  });

  test('a source that several rules inject from (a preset) is reported once, naming the others', () => {
    const preset = parsePolicy('version: 1\nextends: [{ preset: github, with: { tokenEnv: UNSET_GH_TOKEN } }]\n', 'policy.yaml');
    const findings = lintPolicy(preset, { env: {} }).filter((finding) => finding.code === 'inject-source-unavailable').map(formatFinding);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatch(
      /^preset:github:\d+:5: warning: rule github\.git-refs injects authorization \(Basic password\) from env UNSET_GH_TOKEN \(as do rules github\.git-fetch, github\.downloads, github\.api-read\), but environment variable UNSET_GH_TOKEN is not set here; .* \[inject-source-unavailable\] \(extended at policy\.yaml:2:11\)$/,
    );
  });

  test('without an environment, those checks are skipped (lint stays pure)', () => {
    expect(lintPolicy(policy)).toEqual([]);
  });
});
