// `extends:` merging (extends.ts): order, deduplication, unique ids across files, cycles, depth,
// relative paths, and the source of every merged part. Files live in a temporary directory.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { MAX_EXTENDS_DEPTH } from './extends.js';
import { loadPolicyFile, loadPolicyFileSync, parsePolicy, policyFiles } from './loader.js';
import { errorOf } from '../test/support/srt-gw-error.js';

const root = mkdtempSync(join(tmpdir(), 'srt-gw-extends-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes `files` (path relative to a fresh directory → lines) and returns that directory. */
function tree(name: string, files: Record<string, string[]>): string {
  const dir = join(root, name);
  for (const [path, lines] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), `${lines.join('\n')}\n`);
  }
  return dir;
}


const rule = (id: string, host = `${id}.example.test`) => [`  - id: ${id}`, `    host: ${host}`];

describe('merge order', () => {
  const dir = tree('order', {
    'policy.yaml': ['version: 1', 'extends:', '  - ./a.yaml', '  - preset:go-proxy', '  - ./b.yaml', 'rules:', ...rule('own-1'), ...rule('own-2')],
    'a.yaml': ['version: 1', 'extends: [./a-base.yaml]', 'rules:', ...rule('a')],
    'a-base.yaml': ['version: 1', 'rules:', ...rule('a-base')],
    'b.yaml': ['version: 1', 'rules:', ...rule('b-1'), ...rule('b-2')],
  });

  test("extended rules come first, in list order and depth first, then the file's own", () => {
    const policy = loadPolicyFileSync(join(dir, 'policy.yaml'));
    expect(policy.rules.map((r) => r.id)).toEqual(['a-base', 'a', 'go-proxy.modules', 'go-proxy.sumdb-proxied', 'go-proxy.sumdb', 'b-1', 'b-2', 'own-1', 'own-2']);
  });

  test('origin lists every extended file and preset, depth first, each with where it was extended', () => {
    const file = join(dir, 'policy.yaml');
    const policy = loadPolicyFileSync(file);
    expect(policy.origin?.file).toBe(file);
    expect(policy.origin?.extended.map((source) => [source.kind, source.name, source.extendedAt.line])).toEqual([
      ['file', join(dir, 'a.yaml'), 3],
      ['file', join(dir, 'a-base.yaml'), 2],
      ['preset', 'preset:go-proxy', 4],
      ['file', join(dir, 'b.yaml'), 5],
    ]);
    expect(policy.origin?.extended[1]?.extendedAt).toEqual({ file: join(dir, 'a.yaml'), line: 2, column: 11, extendedAt: { file, line: 3, column: 5 } });
  });

  test('policyFiles names the policy and every file it extends, not the presets', () => {
    const file = join(dir, 'policy.yaml');
    expect(policyFiles(loadPolicyFileSync(file), file)).toEqual([file, join(dir, 'a.yaml'), join(dir, 'a-base.yaml'), join(dir, 'b.yaml')]);
  });

  test('the async loader gives the same policy', async () => {
    const file = join(dir, 'policy.yaml');
    expect(await loadPolicyFile(file)).toEqual(loadPolicyFileSync(file));
  });

  test('a policy without extends has no origin (and loads exactly as before)', () => {
    expect('origin' in loadPolicyFileSync(join(dir, 'b.yaml'))).toBe(false);
  });
});

describe('source locations', () => {
  const dir = tree('sources', {
    'policy.yaml': ['version: 1', 'extends:', '  - ./team/team.yaml', 'rules:', ...rule('own')],
    'team/team.yaml': [
      'version: 1',
      'extends: [preset:anthropic]',
      'rules:',
      '  - id: team-api',
      '    host: api.team.test',
      '    credentials: { header: x-api-key, inject: { file: ./team.key } }',
      'filesystem:',
      '  allowWrite: [./cache]',
    ],
  });
  const file = join(dir, 'policy.yaml');
  const team = join(dir, 'team', 'team.yaml');
  const policy = loadPolicyFileSync(file);
  const byId = (id: string) => policy.rules.find((r) => r.id === id)!;

  test("the policy's own rules keep their plain location", () => {
    expect(byId('own').source).toEqual({ file, line: 5, column: 5 });
  });

  test('a rule of an extended file names that file and the entry that extended it', () => {
    expect(byId('team-api').source).toEqual({ file: team, line: 4, column: 5, extendedAt: { file, line: 3, column: 5 } });
    expect(byId('team-api').credentials?.[0]?.source).toEqual({ file: team, line: 6, column: 18, extendedAt: { file, line: 3, column: 5 } });
  });

  test('a preset rule two levels down carries the whole chain', () => {
    expect(byId('anthropic.messages').source).toMatchObject({
      file: 'preset:anthropic',
      extendedAt: { file: team, line: 2, column: 11, extendedAt: { file, line: 3, column: 5 } },
    });
  });

  test('relative paths in an extended file are relative to that file', () => {
    const action = byId('team-api').credentials?.[0]?.action;
    expect(action?.kind === 'inject' && action.source.kind === 'file' && action.source.path).toBe(join(dir, 'team', 'team.key'));
    expect(policy.filesystem?.allowWrite).toEqual([
      { path: './cache', baseDirectory: join(dir, 'team'), source: { file: team, line: 8, column: 16, extendedAt: { file, line: 3, column: 5 } } },
    ]);
  });

  test('merged parts stay frozen', () => {
    expect(Object.isFrozen(policy)).toBe(true);
    expect(Object.isFrozen(policy.rules)).toBe(true);
    expect(Object.isFrozen(byId('team-api'))).toBe(true);
    expect(Object.isFrozen(byId('team-api').source)).toBe(true);
  });
});

describe('relative paths', () => {
  const dir = tree('relative', {
    'project/conf/policy.yaml': ['version: 1', 'extends: [../../shared/base.yaml]', 'rules: []'],
    'shared/base.yaml': ['version: 1', 'extends: [./more/deep.yaml]', 'rules:', ...rule('base')],
    'shared/more/deep.yaml': ['version: 1', 'rules:', ...rule('deep')],
  });

  test('resolve against the directory of the file that names them, at every level', () => {
    const policy = loadPolicyFileSync(join(dir, 'project/conf/policy.yaml'));
    expect(policy.rules.map((r) => r.id)).toEqual(['deep', 'base']);
    expect(policy.rules[0]?.source?.file).toBe(join(dir, 'shared/more/deep.yaml'));
  });

  test('names in messages follow the name the policy was given', () => {
    const policy = parsePolicy('version: 1\nextends: [../../shared/base.yaml]\nrules: []\n', 'conf/policy.yaml', { baseDirectory: join(dir, 'project/conf') });
    // conf/policy.yaml extends ../../shared/base.yaml: "../shared/base.yaml" from where conf/ is.
    expect(policy.rules.map((r) => r.source?.file)).toEqual(['../shared/more/deep.yaml', '../shared/base.yaml']);
  });

  test('an inline policy resolves against the working directory', () => {
    const error = errorOf(() => parsePolicy('version: 1\nextends: [./srt-gw-no-such-file.yaml]\n'));
    expect(error.message).toBe('<inline>:2:11: extends[0] names ./srt-gw-no-such-file.yaml, which cannot be read: it does not exist; check the path');
  });

  test('an absolute path works from anywhere', () => {
    const policy = parsePolicy(`version: 1\nextends: [${JSON.stringify(join(dir, 'shared/more/deep.yaml'))}]\n`, 'elsewhere.yaml', { baseDirectory: root });
    expect(policy.rules.map((r) => r.id)).toEqual(['deep']);
  });
});

describe('filesystem lists', () => {
  const dir = tree('filesystem', {
    'policy.yaml': [
      'version: 1',
      'extends: [./base.yaml, ./sub/other.yaml]',
      'rules: []',
      'filesystem:',
      '  allowWrite: [build, "~/.npm", ./mine]',
      '  denyRead: [./secrets]',
    ],
    'base.yaml': ['version: 1', 'rules: []', 'filesystem:', '  allowWrite: [./build, ~/.npm/]', '  denyWrite: [.env]'],
    'sub/other.yaml': ['version: 1', 'rules: []', 'filesystem:', '  allowWrite: [./build]'],
  });

  test('append in merge order and keep a path once, where it was first written', () => {
    const policy = loadPolicyFileSync(join(dir, 'policy.yaml'));
    const shown = (key: 'allowWrite' | 'denyRead' | 'denyWrite' | 'allowRead') =>
      policy.filesystem?.[key].map((entry) => `${entry.path} @ ${entry.source?.file.slice(dir.length + 1)}`);
    // "./build" of base.yaml and "build" of policy.yaml are one place; sub/other.yaml's is another.
    expect(shown('allowWrite')).toEqual(['./build @ base.yaml', '~/.npm/ @ base.yaml', './build @ sub/other.yaml', './mine @ policy.yaml']);
    expect(shown('denyWrite')).toEqual(['.env @ base.yaml']);
    expect(shown('denyRead')).toEqual(['./secrets @ policy.yaml']);
    expect(shown('allowRead')).toEqual([]);
  });

  test('no file with a filesystem section: no filesystem field', () => {
    const plain = tree('filesystem-none', { 'p.yaml': ['version: 1', 'extends: [./q.yaml]', 'rules: []'], 'q.yaml': ['version: 1', 'rules: []'] });
    expect('filesystem' in loadPolicyFileSync(join(plain, 'p.yaml'))).toBe(false);
  });
});

describe('jail settings', () => {
  const jail = (value: boolean) => ['jail:', `  allowLocalBinding: ${value}`];
  const dir = tree('jail', {
    'on.yaml': ['version: 1', 'rules: []', ...jail(true)],
    'off.yaml': ['version: 1', 'rules: []', ...jail(false)],
    'plain.yaml': ['version: 1', 'rules: []'],
    'turns-on.yaml': ['version: 1', 'extends: [./plain.yaml]', 'rules: []', ...jail(true)],
    'inherits.yaml': ['version: 1', 'extends: [./on.yaml]', 'rules: []'],
    'turns-off.yaml': ['version: 1', 'extends: [./on.yaml]', 'rules: []', ...jail(false)],
    'later-wins.yaml': ['version: 1', 'extends: [./on.yaml, ./off.yaml]', 'rules: []'],
    'none.yaml': ['version: 1', 'extends: [./plain.yaml]', 'rules: []'],
  });
  const load = (name: string) => loadPolicyFileSync(join(dir, name)).jail;

  test('an extending file can turn allowLocalBinding on', () => {
    expect(load('turns-on.yaml')).toEqual({ allowLocalBinding: true, sources: { allowLocalBinding: { file: join(dir, 'turns-on.yaml'), line: 5, column: 22 } } });
  });

  test("an extended file's true is inherited, with where it was written and extended", () => {
    expect(load('inherits.yaml')).toEqual({
      allowLocalBinding: true,
      sources: { allowLocalBinding: { file: join(dir, 'on.yaml'), line: 4, column: 22, extendedAt: { file: join(dir, 'inherits.yaml'), line: 2, column: 11 } } },
    });
  });

  test("the extending file's own false overrides an extended true (scalars: the last file in merge order decides)", () => {
    expect(load('turns-off.yaml')?.allowLocalBinding).toBe(false);
    expect(load('later-wins.yaml')?.allowLocalBinding).toBe(false);
    expect(load('later-wins.yaml')?.sources?.allowLocalBinding?.file).toBe(join(dir, 'off.yaml'));
  });

  test('no file with a jail setting: no jail field', () => {
    expect(load('none.yaml')).toBeUndefined();
  });
});

describe('repeats', () => {
  const dir = tree('diamond', {
    'policy.yaml': ['version: 1', 'extends: [./b.yaml, ./c.yaml]', 'rules: []'],
    'b.yaml': ['version: 1', 'extends: [./d.yaml]', 'rules:', ...rule('b')],
    'c.yaml': ['version: 1', 'extends: [./d.yaml, preset:npm-read]', 'rules:', ...rule('c')],
    'd.yaml': ['version: 1', 'extends: [preset:npm-read]', 'rules:', ...rule('d')],
  });

  test('a file or preset reached twice is merged once, where first reached; the repeat is recorded', () => {
    const file = join(dir, 'policy.yaml');
    const policy = loadPolicyFileSync(file);
    expect(policy.rules.map((r) => r.id)).toEqual(['npm-read.packuments', 'npm-read.tarballs', 'npm-read.search', 'npm-read.audit', 'd', 'b', 'c']);
    const repeats = policy.origin?.extended.filter((source) => source.repeatOf !== undefined).map((source) => [source.name, source.extendedAt.file, source.repeatOf?.file]);
    expect(repeats).toEqual([
      [join(dir, 'd.yaml'), join(dir, 'c.yaml'), join(dir, 'b.yaml')],
      ['preset:npm-read', join(dir, 'c.yaml'), join(dir, 'd.yaml')],
    ]);
  });

  test('the same file through a symbolic link is the same file', () => {
    const linked = tree('symlink', { 'policy.yaml': ['version: 1', 'extends: [./base.yaml, ./link.yaml]', 'rules: []'], 'base.yaml': ['version: 1', 'rules:', ...rule('base')] });
    symlinkSync(join(linked, 'base.yaml'), join(linked, 'link.yaml'));
    expect(loadPolicyFileSync(join(linked, 'policy.yaml')).rules.map((r) => r.id)).toEqual(['base']);
  });
});

describe('refused', () => {
  test('a rule id used in two extended files: both places are named', () => {
    const dir = tree('duplicate', {
      'policy.yaml': ['version: 1', 'extends:', '  - ./one.yaml', '  - ./two.yaml', 'rules: []'],
      'one.yaml': ['version: 1', 'rules:', ...rule('api')],
      'two.yaml': ['version: 1', 'rules:', ...rule('other'), ...rule('api', 'api2.example.test')],
    });
    const error = errorOf(() => parsePolicy('version: 1\nextends:\n  - ./one.yaml\n  - ./two.yaml\nrules: []\n', 'policy.yaml', { baseDirectory: dir }));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message).toBe(
      'two.yaml:5:9: rules[1].id must be unique across the policy and what it extends, but the rule at one.yaml:3:9 (extended at policy.yaml:3:5) already uses it (got "api"); two.yaml is extended at policy.yaml:4:5',
    );
  });

  test('a file that extends itself', () => {
    const dir = tree('self', { 'self.yaml': ['version: 1', 'extends: [./self.yaml]', 'rules: []'] });
    expect(errorOf(() => loadPolicyFileSync(join(dir, 'self.yaml'))).message).toBe(
      `${join(dir, 'self.yaml')}:2:11: extends[0] makes a cycle: ${join(dir, 'self.yaml')} → ${join(dir, 'self.yaml')}; remove one of these extends`,
    );
  });

  test('a longer cycle is refused with the whole chain, at the entry that closes it', () => {
    const dir = tree('cycle', {
      'a.yaml': ['version: 1', 'extends: [./b.yaml]', 'rules: []'],
      'b.yaml': ['version: 1', 'extends: [./sub/c.yaml]', 'rules: []'],
      'sub/c.yaml': ['version: 1', 'rules: []', 'extends: [../a.yaml]'],
    });
    const error = errorOf(() => parsePolicy('version: 1\nextends: [./b.yaml]\nrules: []\n', 'a.yaml', { baseDirectory: dir }));
    expect(error.message).toBe('sub/c.yaml:3:11: extends[0] makes a cycle: a.yaml → b.yaml → sub/c.yaml → a.yaml; remove one of these extends');
  });

  test(`a chain of ${MAX_EXTENDS_DEPTH} files loads; one more is refused with the chain`, () => {
    const files: Record<string, string[]> = {};
    for (let i = 1; i <= MAX_EXTENDS_DEPTH + 1; i++) {
      files[`f${i}.yaml`] = i <= MAX_EXTENDS_DEPTH ? ['version: 1', `extends: [./f${i + 1}.yaml]`, 'rules:', ...rule(`r${i}`)] : ['version: 1', 'rules:', ...rule(`r${i}`)];
    }
    const dir = tree('depth', files);
    // f2 → … → f17 is 16 files.
    expect(loadPolicyFileSync(join(dir, 'f2.yaml')).rules).toHaveLength(MAX_EXTENDS_DEPTH);
    const error = errorOf(() => parsePolicy(`version: 1\nextends: [./f2.yaml]\nrules: []\n`, 'f1.yaml', { baseDirectory: dir }));
    const chain = Array.from({ length: MAX_EXTENDS_DEPTH + 1 }, (_, i) => `f${i + 1}.yaml`).join(' → ');
    expect(error.message).toBe(`f16.yaml:2:11: extends[0] goes deeper than ${MAX_EXTENDS_DEPTH} files: ${chain}; extend fewer files from files that are themselves extended`);
  });

  test('an unknown preset lists the valid ones', () => {
    expect(errorOf(() => parsePolicy('version: 1\nextends: [{ preset: github-readonly }]\n', 'p.yaml')).message).toBe(
      'p.yaml:2:11: extends[0] names no preset "github-readonly"; the presets are anthropic, crates-read, github, go-proxy, npm-read, openai, pypi-read',
    );
  });

  test('an extended file with another version is refused in that file', () => {
    const dir = tree('version', { 'v2.yaml': ['version: 2', 'rules: []'] });
    expect(errorOf(() => parsePolicy('version: 1\nextends: [./v2.yaml]\n', 'p.yaml', { baseDirectory: dir })).message).toBe(
      'v2.yaml:1:10: version must be 1, the only policy format version (got 2)',
    );
  });

  test('a directory is not a policy file', () => {
    const dir = tree('directory', { 'sub/x.yaml': ['version: 1', 'rules: []'] });
    expect(errorOf(() => parsePolicy('version: 1\nextends: [./sub]\n', 'p.yaml', { baseDirectory: dir })).message).toBe(
      'p.yaml:2:11: extends[0] names ./sub, which cannot be read: it is a directory; name the policy file inside it',
    );
  });
});

describe('rules may be left out when a file extends others', () => {
  test('a policy of presets only', () => {
    expect(parsePolicy('version: 1\nextends: [preset:crates-read]\n').rules.map((r) => r.id)).toEqual(['crates-read.index', 'crates-read.downloads', 'crates-read.api']);
  });

  test('an empty extends list still counts as extending nothing, like an empty rules list', () => {
    expect(parsePolicy('version: 1\nextends: []\n').rules).toEqual([]);
  });
});

test('the documented example built from presets loads, and lint finds nothing to say without an environment', async () => {
  const { lintPolicy } = await import('./lint.js');
  const policy = await loadPolicyFile(join(import.meta.dirname, 'examples', 'presets.yaml'));
  expect(policy.origin?.extended.map((source) => source.name)).toEqual(['preset:anthropic', 'preset:npm-read', 'preset:pypi-read', 'preset:github']);
  expect(policy.rules.at(-1)?.id).toBe('docs');
  expect(lintPolicy(policy)).toEqual([]);
});

// Found by fuzz/targets/policy-loader.fuzz.mjs: reading a device or FIFO never ends.
describe('a device or FIFO named by extends is refused, not read', () => {
  test('a character device (/dev/zero) is refused with a message naming it', () => {
    const error = errorOf(() => parsePolicy('version: 1\nextends: [/dev/zero]\n'));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message).toBe('<inline>:2:11: extends[0] names /dev/zero, which is not a regular file (a device, FIFO or socket); name a policy file');
  });

  test('a FIFO no one writes to is refused instead of blocking the load', () => {
    const dir = tree('fifo', { 'policy.yaml': ['version: 1', 'extends: [./pipe.yaml]'] });
    execFileSync('mkfifo', [join(dir, 'pipe.yaml')]);
    expect(errorOf(() => loadPolicyFileSync(join(dir, 'policy.yaml'))).message).toMatch(/extends\[0\] names \.\/pipe\.yaml, which is not a regular file/);
  });
});
