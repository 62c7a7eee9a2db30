// `policy show`: the resolved policy with where each part came from; its YAML loads back to the
// same rules and filesystem paths.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { loadPolicyFileSync, parsePolicy } from './loader.js';
import { renderShownPolicy, ruleAsWritten, showPolicy } from './show.js';

const dir = mkdtempSync(join(tmpdir(), 'srt-gw-show-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, 'team'));
writeFileSync(
  join(dir, 'team', 'team.yaml'),
  [
    'version: 1',
    'extends: [preset:npm-read]',
    'rules:',
    '  - id: team-api',
    '    host: api.team.test',
    '    port: 8443',
    '    credentials:',
    '      - { header: Authorization, scheme: basic, username: bot, inject: { file: ./team.key } }',
    '      - { query: sig, require: ["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"] }',
    '    budget: { requestBytesPerMinute: 1MiB }',
    'filesystem:',
    '  allowWrite: [./cache, "~/.npm"]',
    'jail:',
    '  allowLocalBinding: true',
    '',
  ].join('\n'),
);
const file = join(dir, 'policy.yaml');
writeFileSync(
  file,
  [
    'version: 1',
    'extends:',
    '  - ./team/team.yaml',
    '  - { preset: github, with: { pushRepos: ["me/project"] } }',
    '  - preset:npm-read',
    'rules:',
    '  - id: own',
    '    host: "*.own.test"',
    '    action: deny',
    'filesystem:',
    '  denyRead: [./secrets]',
    '',
  ].join('\n'),
);
const policy = loadPolicyFileSync(file);

describe('renderShownPolicy', () => {
  const text = renderShownPolicy(policy, file);

  test('is a policy file that loads to the same rules and filesystem paths', () => {
    const reloaded = parsePolicy(text, join(dir, 'shown.yaml'));
    expect(reloaded.rules.map(ruleAsWritten)).toEqual(policy.rules.map(ruleAsWritten));
    expect(reloaded.origin).toBeUndefined();
    const paths = (key: 'allowWrite' | 'denyRead') => reloaded.filesystem?.[key].map((entry) => entry.path);
    expect(paths('allowWrite')).toEqual([join(dir, 'team', 'cache'), '~/.npm']);
    expect(paths('denyRead')).toEqual([join(dir, 'secrets')]);
    expect(reloaded.jail?.allowLocalBinding).toBe(true);
  });

  test('says where each rule came from, in a comment above it', () => {
    const lines = text.split('\n');
    const above = (id: string) => lines[lines.findIndex((line) => line === `  - id: ${id}`) - 1];
    expect(above('own')).toBe(`  # ${file}:7:5`);
    expect(above('team-api')).toBe(`  # ${join(dir, 'team', 'team.yaml')}:4:5, extended at ${file}:3:5`);
    expect(above('npm-read.packuments')).toMatch(new RegExp(`^  # preset:npm-read:\\d+:5, extended at ${join(dir, 'team', 'team.yaml')}:2:11, extended at ${file}:3:5$`));
    expect(above('github.git-push')).toMatch(new RegExp(`^  # preset:github:\\d+:5, extended at ${file}:4:5$`));
  });

  test('says where each filesystem path came from, beside it', () => {
    expect(text).toContain(`    - ${join(dir, 'team', 'cache')} # ${join(dir, 'team', 'team.yaml')}:12:16, extended at ${file}:3:5\n`);
    expect(text).toContain(`    - ${join(dir, 'secrets')} # ${file}:11:14\n`);
  });

  test('says where a jail setting came from, beside it', () => {
    expect(text).toContain(`jail:\n  allowLocalBinding: true # ${join(dir, 'team', 'team.yaml')}:14:22, extended at ${file}:3:5\n`);
  });

  test('lists what was extended, repeats marked, with the parameters used', () => {
    expect(text).toContain(`#   preset:github with {"pushRepos":["me/project"]} (at ${file}:4:5)\n`);
    expect(text).toContain(`#   preset:npm-read (at ${file}:5:5) — already extended at ${join(dir, 'team', 'team.yaml')}:2:11, so this adds nothing\n`);
  });

  test('a policy without extends says so', () => {
    expect(renderShownPolicy(parsePolicy('version: 1\nrules: []\n', 'p.yaml'), 'p.yaml')).toBe(
      ['# The policy p.yaml resolves to: every rule, filesystem path and jail setting, with where it was written.', '# It extends nothing.', '', 'version: 1', 'rules: []', ''].join('\n'),
    );
  });
});

describe('showPolicy (--json)', () => {
  const shown = showPolicy(policy, file);

  test('each rule in the file shape, with its source and the chain of extends', () => {
    expect(shown.rules.find((rule) => rule.id === 'team-api')).toEqual({
      id: 'team-api',
      host: 'api.team.test',
      port: 8443,
      action: 'allow',
      protocol: 'http',
      credentials: [
        { header: 'authorization', scheme: 'basic', username: 'bot', inject: { file: join(dir, 'team', 'team.key') } },
        { query: 'sig', require: ['sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae'] },
      ],
      budget: { requestBytesPerMinute: 1048576 },
      source: `${join(dir, 'team', 'team.yaml')}:4:5`,
      extendedAt: [`${file}:3:5`],
    });
    expect(shown.rules.find((rule) => rule.id === 'own')).toMatchObject({ source: `${file}:7:5`, extendedAt: [] });
  });

  test('what was extended, and the filesystem paths with their sources', () => {
    expect(shown.extends.map((source) => [source.name, source.extendedAt, source.repeatOf])).toEqual([
      [join(dir, 'team', 'team.yaml'), [`${file}:3:5`], undefined],
      ['preset:npm-read', [`${join(dir, 'team', 'team.yaml')}:2:11`, `${file}:3:5`], undefined],
      ['preset:github', [`${file}:4:5`], undefined],
      ['preset:npm-read', [`${file}:5:5`], `${join(dir, 'team', 'team.yaml')}:2:11`],
    ]);
    expect(shown.filesystem?.allowWrite?.[1]).toEqual({ path: '~/.npm', source: `${join(dir, 'team', 'team.yaml')}:12:25`, extendedAt: [`${file}:3:5`] });
  });

  test('the jail settings with their sources; none written: null', () => {
    expect(shown.jail).toEqual({ allowLocalBinding: { value: true, source: `${join(dir, 'team', 'team.yaml')}:14:22`, extendedAt: [`${file}:3:5`] } });
    expect(showPolicy(parsePolicy('version: 1\nrules: []\n', 'p.yaml'), 'p.yaml').jail).toBeNull();
  });
});

describe('clients', () => {
  const policy = parsePolicy(`version: 1
rules:
  - { id: api, host: api.example.test }
clients:
  - { id: ci, token: { sha256: "${'a'.repeat(64)}" }, rules: [api] }
  - { id: laptops, issued: {} }
`);

  test('--json lists each client by id, kind and rules, never its credential', () => {
    const shown = showPolicy(policy, 'policy.yaml');
    expect(shown.clients?.map(({ id, kind, rules }) => ({ id, kind, rules }))).toEqual([
      { id: 'ci', kind: 'token', rules: ['api'] },
      { id: 'laptops', kind: 'issued', rules: undefined },
    ]);
    expect(JSON.stringify(shown)).not.toContain('a'.repeat(64));
  });

  test('the YAML names them in its header, and still loads as a policy', () => {
    const text = renderShownPolicy(policy, 'policy.yaml');
    expect(text).toContain('#   ci: token, rules api');
    expect(text).toContain('#   laptops: issued, every rule');
    expect(text).not.toContain('a'.repeat(64));
    expect(parsePolicy(text).clients).toBeUndefined();
  });

  test('a policy without clients shows no clients key', () => {
    expect('clients' in showPolicy(parsePolicy('version: 1\nrules: []\n'), 'p.yaml')).toBe(false);
  });
});
