// The presets library: every shipped preset loads, names its rules after itself, and holds its
// table of decisions (policies/testdata/presets/NAME.test.yaml); parameters fill in as documented.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { parseDecisionTable, renderResults, runDecisionTable } from './decision-table.js';
import { loadPolicyFile, parsePolicy } from './loader.js';
import { checkPresetArguments, fillPresetParameters, presetFile, presetNames, PRESETS_DIRECTORY } from './presets.js';
import type { Policy } from './types.js';
import { errorOf } from '../test/support/srt-gw-error.js';

const tables = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata', 'presets');
const SHIPPED = ['anthropic', 'crates-read', 'github', 'go-proxy', 'npm-read', 'openai', 'pypi-read'];

function extend(entry: string): Policy {
  return parsePolicy(`version: 1\nextends:\n  - ${entry}\n`, 'policy.yaml');
}


describe('the shipped presets', () => {
  test('are exactly the documented ones, in policies/presets/', () => {
    expect(presetNames()).toEqual(SHIPPED);
    expect(PRESETS_DIRECTORY.endsWith(join('policies', 'presets/')) || PRESETS_DIRECTORY.endsWith(join('policies', 'presets'))).toBe(true);
    expect(presetFile('npm-read')).toBe(join(PRESETS_DIRECTORY, 'npm-read.yaml'));
    expect(presetFile('npm')).toBeNull();
  });

  test.each(SHIPPED)('preset:%s loads with its defaults, each rule named "<preset>.<what>" and written in the preset', (name) => {
    const policy = extend(`preset:${name}`);
    expect(policy.rules.length).toBeGreaterThan(0);
    for (const rule of policy.rules) {
      expect(rule.id.startsWith(`${name}.`), rule.id).toBe(true);
      expect(rule.source).toMatchObject({ file: `preset:${name}`, extendedAt: { file: 'policy.yaml', line: 3, column: 5 } });
    }
    // A preset adds network rules only: paths of its own would resolve inside the package.
    expect(policy.filesystem).toBeUndefined();
  });

  test.each(SHIPPED)('preset:%s has a table of decisions that holds', async (name) => {
    const tableFiles = readdirSync(tables).filter((file) => file === `${name}.test.yaml` || (file.startsWith(`${name}-`) && file.endsWith('.test.yaml')));
    expect(tableFiles, `add policies/testdata/presets/${name}.test.yaml`).toContain(`${name}.test.yaml`);
    for (const tableFile of tableFiles) {
      const table = parseDecisionTable(readFileSync(join(tables, tableFile), 'utf8'), tableFile);
      expect(table.policy).toBeDefined();
      const policy = await loadPolicyFile(join(tables, table.policy!));
      expect(policy.origin?.extended.map((source) => source.name)).toContain(`preset:${name}`);
      const results = runDecisionTable(policy, table);
      expect(results.every((result) => result.passed), renderResults(table, results)).toBe(true);
      // Each table shows both sides: what the preset is for, and what it refuses.
      expect(table.cases.some((entry) => entry.expect === 'allow')).toBe(true);
      expect(table.cases.some((entry) => entry.expect === 'deny')).toBe(true);
    }
  });

  test('every table in testdata/presets names an existing policy', () => {
    for (const file of readdirSync(tables).filter((name) => name.endsWith('.test.yaml'))) {
      const table = parseDecisionTable(readFileSync(join(tables, file), 'utf8'), file);
      expect(existsSync(join(tables, table.policy ?? 'missing')), file).toBe(true);
    }
  });
});

describe('preset:github parameters', () => {
  const rule = (policy: Policy, id: string) => policy.rules.find((candidate) => candidate.id === id);

  test('pushRepos becomes one git-receive-pack path per repository, with and without ".git"', () => {
    const policy = extend('{ preset: github, with: { pushRepos: ["me/project", "my-org/*"] } }');
    expect(rule(policy, 'github.git-push')?.paths).toEqual([
      '/me/project/git-receive-pack',
      '/my-org/*/git-receive-pack',
      '/me/project.git/git-receive-pack',
      '/my-org/*.git/git-receive-pack',
    ]);
    expect(rule(policy, 'github.api-write')?.paths).toContain('/repos/me/project/issues/**');
    expect(rule(policy, 'github.api-write')?.paths).toContain('/repos/my-org/*/contents/**');
    expect(rule(policy, 'github.api-write')?.paths?.every((path) => path.startsWith('/repos/me/project/') || path.startsWith('/repos/my-org/*/'))).toBe(true);
  });

  test('without pushRepos the push and write rules are left out, never widened to any path', () => {
    for (const policy of [extend('preset:github'), extend('{ preset: github, with: { pushRepos: [] } }')]) {
      const ids = policy.rules.map((candidate) => candidate.id);
      expect(ids).not.toContain('github.git-push');
      expect(ids).not.toContain('github.api-write');
      expect(ids).toContain('github.git-fetch');
      expect(policy.rules.filter((candidate) => candidate.methods?.some((method) => method !== 'GET' && method !== 'HEAD')).map((candidate) => candidate.id)).toEqual([
        'github.git-fetch',
      ]);
    }
  });

  test('tokenEnv adds an injected token on github.com (Basic) and api.github.com (Bearer); left out, none', () => {
    const withToken = extend('{ preset: github, with: { tokenEnv: GH_TOKEN } }');
    expect(rule(withToken, 'github.git-fetch')?.credentials?.map((credential) => [credential.location, credential.action])).toEqual([
      [{ kind: 'header', name: 'authorization', scheme: 'basic', username: 'x-access-token' }, { kind: 'inject', source: { kind: 'env', name: 'GH_TOKEN' } }],
    ]);
    expect(rule(withToken, 'github.api-read')?.credentials?.[0]?.location).toEqual({ kind: 'header', name: 'authorization', scheme: 'bearer' });
    expect(rule(withToken, 'github.codeload')?.credentials).toBeUndefined();
    expect(extend('preset:github').rules.filter((candidate) => candidate.credentials !== undefined)).toEqual([]);
  });

  test('the parameters used, defaults applied, are recorded for policy show', () => {
    const policy = extend('{ preset: github, with: { pushRepos: ["me/project"] } }');
    expect(policy.origin?.extended).toEqual([
      expect.objectContaining({ kind: 'preset', name: 'preset:github', parameters: { pushRepos: ['me/project'] }, extendedAt: { file: 'policy.yaml', line: 3, column: 5 } }),
    ]);
  });
});

describe('preset:anthropic and preset:openai parameters', () => {
  test.each([
    ['anthropic', 'preset:anthropic', 'ANTHROPIC_API_KEY', 'x-api-key'],
    ['anthropic', '{ preset: anthropic, with: { apiKeyEnv: WORK_ANTHROPIC_KEY } }', 'WORK_ANTHROPIC_KEY', 'x-api-key'],
    ['openai', 'preset:openai', 'OPENAI_API_KEY', 'authorization'],
    ['openai', '{ preset: openai, with: { apiKeyEnv: WORK_OPENAI_KEY } }', 'WORK_OPENAI_KEY', 'authorization'],
  ])('%s: %s injects %s as %s on every rule', (_name, entry, env, header) => {
    const policy = extend(entry);
    for (const rule of policy.rules) {
      const inject = rule.credentials?.find((credential) => credential.action.kind === 'inject');
      expect(inject?.location.name, rule.id).toBe(header);
      expect(inject?.action).toEqual({ kind: 'inject', source: { kind: 'env', name: env } });
    }
  });

  test('anthropic strips any Authorization header, so no other account rides along', () => {
    for (const rule of extend('preset:anthropic').rules) {
      expect(rule.credentials?.some((credential) => credential.location.name === 'authorization' && credential.action.kind === 'strip'), rule.id).toBe(true);
    }
  });

  test('the same preset with other parameters has the same rule ids: both places are named', () => {
    const text = readFileSync(presetFile('anthropic')!, 'utf8').split('\n');
    const idLine = text.findIndex((line) => line.includes('- id: anthropic.messages')) + 1;
    const error = errorOf(() => parsePolicy('version: 1\nextends:\n  - preset:anthropic\n  - { preset: anthropic, with: { apiKeyEnv: OTHER_KEY } }\n', 'policy.yaml'));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message.split('\n')[0]).toBe(
      `preset:anthropic:${idLine}:9: rules[0].id must be unique across the policy and what it extends, but the rule at preset:anthropic:${idLine}:9 (extended at policy.yaml:3:5) already uses it (got "anthropic.messages"); preset:anthropic is extended at policy.yaml:4:5`,
    );
  });
});

describe('checkPresetArguments', () => {
  const section = {
    description: 'test',
    parameters: {
      repos: { type: 'repositories' as const, description: 'r', default: [] },
      key: { type: 'env-name' as const, description: 'k' },
    },
  };

  test('applies defaults and leaves optional parameters without a value', () => {
    expect(checkPresetArguments('t', section, undefined)).toEqual({ values: new Map<string, unknown>([['repos', []], ['key', undefined]]) });
    expect(checkPresetArguments('t', section, { key: 'MY_KEY', repos: ['a/b'] })).toEqual({ values: new Map<string, unknown>([['repos', ['a/b']], ['key', 'MY_KEY']]) });
  });

  test.each([
    [{ repo: [] }, "unknown parameter 'repo'; did you mean 'repos'?"],
    [{ colour: 1 }, "unknown parameter 'colour'; the parameters of preset t are 'repos', 'key'"],
    [{ repos: 'a/b' }, 'repos must be a list of repositories, such as ["octo-org/app", "me/*"] (got "a/b")'],
    [{ repos: ['a/..'] }, 'repos[0] must be "owner/repo" or "owner/*" (every repository of owner), such as "octo-org/app", without ".git" (got "a/..")'],
    [{ repos: ['-a/b'] }, 'repos[0] must be "owner/repo" or "owner/*" (every repository of owner), such as "octo-org/app", without ".git" (got "-a/b")'],
    [{ repos: ['a/b/c'] }, 'repos[0] must be "owner/repo" or "owner/*" (every repository of owner), such as "octo-org/app", without ".git" (got "a/b/c")'],
    [{ repos: ['a/*b'] }, 'repos[0] must be "owner/repo" or "owner/*" (every repository of owner), such as "octo-org/app", without ".git" (got "a/*b")'],
    [{ key: '1KEY' }, 'key must be an environment variable name such as "GITHUB_TOKEN" (got "1KEY")'],
  ])('%j: %s', (given, message) => {
    const result = checkPresetArguments('t', section, given);
    expect('problems' in result && result.problems.map((problem) => problem.message)).toEqual([message]);
  });
});

describe('fillPresetParameters', () => {
  const values = new Map<string, string | string[] | undefined>([
    ['repos', ['a/b', 'c/*']],
    ['none', []],
    ['key', 'KEY'],
    ['unset', undefined],
  ]);

  test('a string parameter is substituted; a list parameter makes one list item per value', () => {
    const filled = fillPresetParameters({ rules: [{ id: 'x', paths: ['/${repos}/push', '/fixed'], credentials: [{ inject: { env: '${key}' } }] }] }, values);
    expect(filled.data).toEqual({ rules: [{ id: 'x', paths: ['/a/b/push', '/c/*/push', '/fixed'], credentials: [{ inject: { env: 'KEY' } }] }] });
    // Both expanded items point back at the one written item.
    expect(filled.originalPath(['rules', 0, 'paths', 1])).toEqual(['rules', 0, 'paths', 0]);
    expect(filled.originalPath(['rules', 0, 'paths', 2])).toEqual(['rules', 0, 'paths', 1]);
  });

  test('an item naming a parameter without a value is left out; an emptied credentials list goes too', () => {
    const filled = fillPresetParameters({ rules: [{ id: 'x', paths: ['/${none}', '/kept'], credentials: [{ inject: { env: '${unset}' } }] }] }, values);
    expect(filled.data).toEqual({ rules: [{ id: 'x', paths: ['/kept'] }] });
  });

  test('a rule whose paths or methods empty is left out, never widened to any path', () => {
    const filled = fillPresetParameters(
      {
        rules: [
          { id: 'gone', host: 'h', paths: ['/${none}/a', '/${unset}/b'] },
          { id: 'gone-too', host: 'h', methods: ['${unset}'] },
          { id: 'kept', host: 'h', paths: ['/x'] },
        ],
      },
      values,
    );
    expect(filled.data).toEqual({ rules: [{ id: 'kept', host: 'h', paths: ['/x'] }] });
    expect(filled.originalPath(['rules', 0])).toEqual(['rules', 2]);
  });

  test('a reference to an undeclared parameter is reported, with where it is written', () => {
    expect(fillPresetParameters({ rules: [{ id: 'x', paths: ['/${typo}'] }] }, values).unknownReferences).toEqual([{ name: 'typo', path: ['rules', 0, 'paths', 0] }]);
  });
});
