// The macOS profile on any platform: golden profiles for representative policies, a reader that
// checks every profile is well-formed (hostile path names included), and a last-match-wins
// evaluator that proves the filesystem and network rules decide what the shared rules say.
// Regenerate the goldens after an intended change: UPDATE_GOLDEN=1 npx vitest run jail/macos
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, isSrtGwError } from '../../errors.js';
import type { FilesystemPolicy, FilesystemPolicyKey } from '../../policies/types.js';
import { checkProfile, decideFile, decideNetwork, readSbpl, SbplSyntaxError, type SbplNode } from '../../test/support/sbpl-reader.js';
import { filesystemAccess, resolveFilesystemRules, type FilesystemRule, type ResolvedFilesystemRules } from '../filesystem-rules.js';
import { macosCanonicalPath } from './macos-path.js';
import { macosFilesystemPoints, SBPL_MAX_STRING_BYTES, sbplString, seatbeltProfile, type SeatbeltProfileOptions } from './seatbelt-profile.js';
import { errorOf } from '../../test/support/srt-gw-error.js';

const TESTDATA = join(dirname(fileURLToPath(import.meta.url)), 'testdata');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

// Not under /tmp: the Linux resolver treats /tmp as the jail's private directory, so a fake home
// there would be decided by that rule. The tree is relocated to "/" after resolving (below).
const ROOT = realpathSync(mkdtempSync('/var/tmp/srt-gw-macos-profile-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
const HOME = join(ROOT, 'Users/dev');
const PROJECT = join(HOME, 'project');

function file(path: string, text = 'x'): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}
file(join(HOME, '.ssh/id_ed25519'));
file(join(HOME, '.aws/credentials'));
file(join(HOME, '.netrc'));
file(join(HOME, '.bashrc'));
file(join(HOME, '.gitconfig'));
file(join(HOME, '.config/tool/settings'));
file(join(HOME, '.cache/tool/index'));
file(join(HOME, 'work/shared/notes.md'));
file(join(HOME, 'work/shared/keys/deploy.pem'));
file(join(HOME, 'work/private/plan.md'));
file(join(PROJECT, '.git/HEAD'), 'ref: refs/heads/main\n');
file(join(PROJECT, '.git/config'), '[core]\n\tbare = false\n');
file(join(PROJECT, '.git/hooks/pre-commit'));
file(join(PROJECT, 'src/index.ts'));
file(join(PROJECT, 'vendor/lib.js'));
file(join(PROJECT, '.srt-gw.yaml'));

type Lists = Partial<Record<FilesystemPolicyKey, readonly string[]>>;

function policyOf(lists: Lists): FilesystemPolicy {
  const entries = (key: FilesystemPolicyKey) => (lists[key] ?? []).map((path) => ({ path, baseDirectory: PROJECT }));
  return { denyRead: entries('denyRead'), allowRead: entries('allowRead'), allowWrite: entries('allowWrite'), denyWrite: entries('denyWrite') };
}

/** Every string of `value` with the fixture root cut off: paths become /Users/dev/..., as on a Mac. */
function relocate<T>(value: T): T {
  if (typeof value === 'string') return value.split(ROOT).join('') as T;
  if (Array.isArray(value)) return value.map(relocate) as T;
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, relocate(inner)])) as T;
  return value;
}

interface Scenario {
  name: string;
  lists?: Lists;
  cwd?: string;
  alwaysHidden?: string[];
  alwaysReadOnly?: string[];
  allowLocalBinding?: boolean;
}

/** The shared rules for a scenario, on relocated paths (/Users/dev/project ...). */
function rulesFor(scenario: Scenario): ResolvedFilesystemRules {
  const resolved = resolveFilesystemRules(policyOf(scenario.lists ?? {}), {
    home: HOME,
    cwd: scenario.cwd ?? PROJECT,
    alwaysHidden: scenario.alwaysHidden ?? [join(HOME, '.config/srt-gw/ca')],
    alwaysReadOnly: scenario.alwaysReadOnly ?? [],
    platform: 'darwin',
  });
  return relocate(resolved);
}

/** Test doubles for macOS: no symlinks but the /private aliases (which macosCanonicalPath maps itself). */
const noSymlinks = (path: string) => path;
const TMPDIR = '/var/folders/zz/abc/T/srt-gw-run-1-x/tmp';

function profileFor(scenario: Scenario, extra: Partial<SeatbeltProfileOptions> = {}): string {
  return seatbeltProfile(rulesFor(scenario), {
    proxyPort: 8877,
    logTag: 'srt-gw-golden',
    allowLocalBinding: scenario.allowLocalBinding,
    extraWritable: [{ path: TMPDIR, reason: "writable: this run's own TMPDIR, removed after the run" }],
    realpath: noSymlinks,
    ...extra,
  });
}

const SCENARIOS: Scenario[] = [
  { name: 'default' },
  {
    name: 'policy-filesystem',
    lists: {
      denyRead: ['~/work/', '~/work/shared/keys/'],
      allowRead: ['~/work/shared/'],
      allowWrite: ['~/.cache/tool'],
      denyWrite: ['vendor/'],
    },
    alwaysReadOnly: [join(PROJECT, '.srt-gw.yaml')],
  },
  { name: 'home-as-cwd-local-binding', cwd: HOME, allowLocalBinding: true },
  // The CA directory below /tmp: the host's /tmp on a Mac, so it must stay hidden there.
  { name: 'ca-under-tmp', alwaysHidden: ['/tmp/srt-gw-golden-ca-never-created'] },
];


describe('sbplString', () => {
  it.each([
    ['/Users/dev/plain', '"/Users/dev/plain"'],
    ['/Users/dev/a"b', '"/Users/dev/a\\"b"'],
    ['/Users/dev/back\\slash', '"/Users/dev/back\\\\slash"'],
    ['/Users/dev/x")(allow default)', '"/Users/dev/x\\")(allow default)"'],
    ['/Users/dev/ünïcødé ☃', '"/Users/dev/ünïcødé ☃"'],
  ])('quotes %j as %s', (value, quoted) => {
    expect(sbplString(value)).toBe(quoted);
    const [node] = readSbpl(quoted);
    expect(node).toEqual({ type: 'string', value });
  });

  it.each([
    ['a line break', '/Users/dev/a\nb'],
    ['a carriage return', '/Users/dev/a\rb'],
    ['a tab', '/Users/dev/a\tb'],
    ['NUL', '/Users/dev/a\u0000b'],
    ['DEL', '/Users/dev/a\u007fb'],
  ])('rejects %s with JAIL_FILESYSTEM_INVALID', (_what, value) => {
    const error = errorOf(() => sbplString(value));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    expect(error.message).toContain('control character');
  });

  it(`rejects a string longer than sandbox-exec reads (${SBPL_MAX_STRING_BYTES} bytes)`, () => {
    expect(sbplString(`/${'a'.repeat(SBPL_MAX_STRING_BYTES - 1)}`)).toHaveLength(SBPL_MAX_STRING_BYTES + 2);
    expect(errorOf(() => sbplString(`/${'a'.repeat(SBPL_MAX_STRING_BYTES)}`)).code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    // Escapes count: 600 quotes become 1200 bytes.
    expect(errorOf(() => sbplString(`/${'"'.repeat(600)}`)).code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
  });
});

describe('macosCanonicalPath', () => {
  const links: Record<string, string> = { '/Users/dev/link': '/Volumes/data/real', '/Users/dev/proj': '/Users/dev/work/proj' };
  const existing = new Set(['/', '/Users', '/Users/dev', '/Users/dev/work', '/Users/dev/work/proj', '/Volumes', '/Volumes/data', '/Volumes/data/real', '/tmp', '/var', '/var/folders', '/etc', '/private', '/private/tmp']);
  const fakeRealpath = (path: string): string => {
    const resolved = links[path] ?? path;
    if (!existing.has(resolved) && !Object.keys(links).includes(path)) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return resolved;
  };
  it.each([
    ['/tmp is /private/tmp', '/tmp', '/private/tmp'],
    ['below /tmp', '/tmp/build/out', '/private/tmp/build/out'],
    ['/var/folders (the user temp dir)', '/var/folders/zz/T', '/private/var/folders/zz/T'],
    ['/etc', '/etc/hosts', '/private/etc/hosts'],
    ['already /private', '/private/tmp/x', '/private/tmp/x'],
    ['a name that only starts like an alias', '/tmpfoo/x', '/tmpfoo/x'],
    ['a symlink is followed', '/Users/dev/link/file', '/Volumes/data/real/file'],
    ['a missing tail is kept below the resolved ancestor', '/Users/dev/proj/new/dir', '/Users/dev/work/proj/new/dir'],
    ['".." after a symlink applies to its target', '/Users/dev/link/../other', '/Volumes/data/other'],
    ['"." and doubled slashes', '/Users//dev/./work', '/Users/dev/work'],
    ['the root', '/', '/'],
  ])('%s', (_name, path, expected) => {
    expect(macosCanonicalPath(path, fakeRealpath)).toBe(expected);
  });

  it('refuses a relative path', () => {
    expect(() => macosCanonicalPath('tmp/x', fakeRealpath)).toThrow(TypeError);
  });
});

describe('golden profiles (jail/macos/testdata/*.sb)', () => {
  // The shared resolver reads this machine's /tmp and /run; the goldens are recorded on Linux, where CI runs them.
  describe.runIf(process.platform === 'linux')('on Linux', () => {
    it.each(SCENARIOS.map((scenario) => [scenario.name, scenario] as const))('%s', (name, scenario) => {
      const profile = profileFor(scenario);
      const golden = join(TESTDATA, `${name}.sb`);
      if (UPDATE) {
        mkdirSync(TESTDATA, { recursive: true });
        writeFileSync(golden, profile);
      }
      expect(profile, `regenerate with UPDATE_GOLDEN=1 if this change is intended`).toBe(readFileSync(golden, 'utf8'));
    });
  });
});

describe('well-formed profiles', () => {
  it.each(SCENARIOS.map((scenario) => [scenario.name, scenario] as const))('%s: balanced, known operations and filters, quoted paths', (_name, scenario) => {
    const forms = checkProfile(profileFor(scenario));
    expect(forms.length).toBeGreaterThan(20);
  });

  const HOSTILE = ['a"b', 'x)(allow default)', 'x")(allow default)(deny "', 'back\\slash\\', 'ünïcødé ☃ 名前', 'semi;colon', 'hash#"x', 'paren(open', ' leading space', '\\"'];
  it.each(HOSTILE)('hostile directory name %j stays one quoted string in every rule', (name) => {
    const hostile = join(HOME, 'hostile', name);
    mkdirSync(join(hostile, 'inner'), { recursive: true });
    const profile = profileFor({
      name: 'hostile',
      lists: { allowWrite: [`${hostile}/`], denyRead: [`${hostile}/inner/`], denyWrite: [`${hostile}/ro`] },
    });
    const forms = checkProfile(profile);
    const strings = collectStrings(forms);
    const relocated = hostile.slice(ROOT.length);
    expect(strings).toContain(relocated);
    expect(strings).toContain(`${relocated}/inner`);
    expect(strings).toContain(`${relocated}/ro`);
    // Nothing in the profile allows `default`, and the hostile directory is exactly as writable as intended.
    expect(forms.some((form) => form.type === 'list' && JSON.stringify(form.items.slice(0, 2)) === JSON.stringify([sym('allow'), sym('default')]))).toBe(false);
    expect(decideFile(forms, 'file-write-data', `${relocated}/file`)).toBe('allow');
    expect(decideFile(forms, 'file-read-data', `${relocated}/inner/file`)).toBe('deny');
    expect(decideFile(forms, 'file-write-data', `${relocated}/ro`)).toBe('deny');
    expect(decideFile(forms, 'file-write-data', '/Users/dev/elsewhere')).toBe('deny');
  });

  it('a path with a line break in the policy is refused with JAIL_FILESYSTEM_INVALID, not written into the profile', () => {
    const hostile = join(HOME, 'hostile', 'line\nbreak');
    mkdirSync(hostile, { recursive: true });
    const error = errorOf(() => profileFor({ name: 'newline', lists: { allowWrite: [`${hostile}/`] } }));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
  });

  it('a hostile policy file name in a rule reason cannot end its comment line', () => {
    const rules = rulesFor({ name: 'reason' });
    const forged: FilesystemRule = { ...rules.points[0]!.rule, reason: 'x\n(allow default)\n; y' };
    const points = rules.points.map((point, index) => (index === 0 ? { ...point, rule: forged } : point));
    const profile = seatbeltProfile({ ...rules, points }, { proxyPort: 8877, logTag: 'srt-gw-test', realpath: noSymlinks });
    expect(profile).toContain('; x?(allow default)?; y');
    checkProfile(profile);
  });

  describe('the checker rejects what the generator must never produce', () => {
    it.each([
      ['an unbalanced "("', '(version 1)\n(allow file-read* (subpath "/x")'],
      ['an unbalanced ")"', '(version 1)\n(allow file-read*))'],
      ['an unterminated string', '(version 1)\n(allow file-read* (subpath "/x))'],
      ['an unknown escape', '(version 1)\n(allow file-read* (subpath "/x\\n"))'],
      ['a raw line break in a string', '(version 1)\n(allow file-read* (subpath "/x\ny"))'],
      ['an unknown operation', '(version 1)\n(allow file-everything)'],
      ['an unknown filter', '(version 1)\n(allow file-read* (prefix "/x"))'],
      ['an unquoted path', '(version 1)\n(allow file-read* (subpath /x))'],
      ['a relative path', '(version 1)\n(allow file-read* (subpath "x"))'],
      ['a remote address that is not loopback', '(version 1)\n(allow network-outbound (remote ip "203.0.113.9:443"))'],
      ['no version', '(allow file-read*)'],
    ])('%s', (_what, text) => {
      expect(() => checkProfile(text)).toThrow(SbplSyntaxError);
    });
  });
});

function sym(name: string): SbplNode {
  return { type: 'symbol', name };
}

function collectStrings(nodes: readonly SbplNode[]): string[] {
  return nodes.flatMap((node) => (node.type === 'list' ? collectStrings(node.items) : node.type === 'string' ? [node.value] : []));
}

describe('filesystem: each kind of rule point becomes the right rule, in the right order', () => {
  const scenario = SCENARIOS[1]!; // policy-filesystem
  const text = profileFor(scenario);
  const forms = checkProfile(text);
  const read = (path: string) => decideFile(forms, 'file-read-data', path);
  const write = (path: string) => decideFile(forms, 'file-write-data', path);

  it.each([
    // [what, path, readable, writable]
    ['a hidden directory (~/.ssh) and what is in it', '/Users/dev/.ssh/id_ed25519', false, false],
    ['a hidden directory itself', '/Users/dev/.ssh', false, false],
    ['a hidden file (~/.netrc, existing: a literal)', '/Users/dev/.netrc', false, false],
    ['a sibling of a hidden file', '/Users/dev/.netrc-backup', true, false],
    ['the CA directory (always hidden)', '/Users/dev/.config/srt-gw/ca/ca-key.pem', false, false],
    ['the working directory', '/Users/dev/project/src/index.ts', true, true],
    ['a new file in the working directory', '/Users/dev/project/new.txt', true, true],
    ['read-only under writable: .git/hooks', '/Users/dev/project/.git/hooks/pre-commit', true, false],
    ['read-only under writable: .git/config', '/Users/dev/project/.git/config', true, false],
    ['read-only under writable: a missing .vscode', '/Users/dev/project/.vscode/tasks.json', true, false],
    ['read-only under writable: denyWrite vendor/', '/Users/dev/project/vendor/lib.js', true, false],
    ['read-only under writable: the policy file', '/Users/dev/project/.srt-gw.yaml', true, false],
    ['the rest of .git stays writable', '/Users/dev/project/.git/objects/ab/cd', true, true],
    ['allowWrite outside cwd', '/Users/dev/.cache/tool/index', true, true],
    ['home outside cwd is read-only', '/Users/dev/notes.txt', true, false],
    ['a shell startup file', '/Users/dev/.bashrc', true, false],
    ['denyRead directory', '/Users/dev/work/private/plan.md', false, false],
    ['allowRead inside a hidden directory', '/Users/dev/work/shared/notes.md', true, false],
    ['a denyRead inside the allowRead hides again', '/Users/dev/work/shared/keys/deploy.pem', false, false],
    ["the run's TMPDIR", '/private/var/folders/zz/abc/T/srt-gw-run-1-x/tmp/build.o', true, true],
    ["the user's temp dir outside the run's", '/private/var/folders/zz/abc/T/other', true, false],
    ['the host /tmp, shared on macOS', '/private/tmp/x', true, true],
    ['system files', '/usr/bin/env', true, false],
    ['/etc by its real name', '/private/etc/hosts', true, false],
    ['/dev/null', '/dev/null', true, true],
    ['the terminal', '/dev/ttys003', true, true],
    ['a disk device', '/dev/disk0', true, false],
  ])('%s: %s', (_what, path, readable, writable) => {
    expect(read(path)).toBe(readable ? 'allow' : 'deny');
    expect(write(path)).toBe(writable ? 'allow' : 'deny');
  });

  it('every point decides its subtree as the shared evaluator does (macOS: /tmp shared, not private)', () => {
    const rules = rulesFor(scenario);
    const shared = { ...rules, rules: rules.rules.map((rule): FilesystemRule => (rule.effect === 'private' ? { ...rule, effect: 'allow-write' } : rule)) };
    for (const point of rules.points) {
      if (point.path === '/run') continue; // not on a Mac; see macosFilesystemPoints
      for (const path of [point.path, `${point.path}/below`]) {
        if (point.kind === 'file' && path !== point.path && point.exists) continue;
        const access = filesystemAccess(shared, path).access;
        const canonical = macosCanonicalPath(path, noSymlinks);
        expect(read(canonical), `read ${canonical} (${access})`).toBe(access === 'hidden' ? 'deny' : 'allow');
        expect(write(canonical), `write ${canonical} (${access})`).toBe(access === 'read-write' || access === 'private' ? 'allow' : 'deny');
      }
    }
  });

  it('stat() of the hidden directories above an allowRead works, reading them does not', () => {
    expect(decideFile(forms, 'file-read-metadata', '/Users/dev/work')).toBe('allow');
    expect(decideFile(forms, 'file-read-data', '/Users/dev/work')).toBe('deny');
    expect(decideFile(forms, 'file-read-metadata', '/Users/dev/work/private')).toBe('deny');
    expect(decideFile(forms, 'file-read-metadata', '/Users/dev/.ssh')).toBe('deny');
  });

  it('rename pins: writable directories above a protected path cannot be renamed or re-created', () => {
    // mv .git x; mkdir .git — would leave a .git/hooks no rule names.
    expect(decideFile(forms, 'file-write-unlink', '/Users/dev/project/.git')).toBe('deny');
    expect(decideFile(forms, 'file-write-create', '/Users/dev/project/.git')).toBe('deny');
    expect(decideFile(forms, 'file-write-unlink', '/Users/dev/project')).toBe('deny');
    // Ordinary files and directories in the working directory can still be removed and renamed.
    expect(decideFile(forms, 'file-write-unlink', '/Users/dev/project/src/index.ts')).toBe('allow');
    expect(decideFile(forms, 'file-write-unlink', '/Users/dev/project/src')).toBe('allow');
    expect(decideFile(forms, 'file-write-unlink', '/Users/dev/project/.git/objects')).toBe('allow');
  });

  it('a working directory without .git: .git cannot be created (a prepared directory could be moved in as .git)', () => {
    const bare = join(HOME, 'no-git-project');
    mkdirSync(join(bare, 'src'), { recursive: true });
    const bareForms = checkProfile(profileFor({ name: 'no-git', cwd: bare }));
    expect(decideFile(bareForms, 'file-write-create', '/Users/dev/no-git-project/.git')).toBe('deny');
    expect(decideFile(bareForms, 'file-write-data', '/Users/dev/no-git-project/.git/hooks/pre-commit')).toBe('deny');
    expect(decideFile(bareForms, 'file-write-create', '/Users/dev/no-git-project/src/new.ts')).toBe('allow');
  });

  it('orders the rules so that the last match is the deepest point', () => {
    const lines = text.split('\n');
    const lineOf = (needle: string) => {
      const index = lines.findIndex((line) => line.includes(needle));
      expect(index, needle).toBeGreaterThan(-1);
      return index;
    };
    const root = lineOf('(allow file-read* (subpath "/"))');
    const work = lineOf('(deny file-read* file-write* (subpath "/Users/dev/work")');
    const shared = lineOf('(allow file-read* (subpath "/Users/dev/work/shared"))');
    const keys = lineOf('(deny file-read* file-write* (subpath "/Users/dev/work/shared/keys")');
    const project = lineOf('(allow file-read* file-write* (subpath "/Users/dev/project"))');
    const hooks = lineOf('(deny file-write* (subpath "/Users/dev/project/.git/hooks")');
    const pins = lineOf('(deny file-write-unlink file-write-create');
    const devices = lineOf('(literal "/dev/null")');
    expect(root).toBeLessThan(work);
    expect(work).toBeLessThan(shared);
    expect(shared).toBeLessThan(keys);
    expect(root).toBeLessThan(project);
    expect(project).toBeLessThan(hooks);
    expect(Math.max(keys, hooks)).toBeLessThan(pins);
    expect(root).toBeLessThan(devices);
    const lastRule = lines.filter((line) => line.startsWith('(')).at(-1);
    expect(lastRule).toContain('(deny network-outbound (remote unix-socket (path-literal "/private/var/run/mDNSResponder"))');
  });

  it('the order matters: the same rules shallowest-last would show ~/work/shared/keys and make the project read-only', () => {
    const [version, ...rules] = forms;
    const start = rules.findIndex((form) => JSON.stringify(form).includes('"value":"/"}]}'));
    const end = rules.findIndex((form) => JSON.stringify(form).includes('file-write-unlink'));
    const reversed = [version!, ...rules.slice(0, start), ...rules.slice(start, end).reverse(), ...rules.slice(end)];
    expect(decideFile(reversed, 'file-read-data', '/Users/dev/work/shared/keys/deploy.pem')).toBe('allow');
    expect(decideFile(reversed, 'file-write-data', '/Users/dev/project/src/index.ts')).toBe('deny');
  });

  it('a TMPDIR the rules hide is an error, not a silently hidden scratch directory', () => {
    const error = errorOf(() => profileFor(scenario, { extraWritable: [{ path: '/Users/dev/.ssh/tmp', reason: 'test' }] }));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    expect(error.message).toContain('/Users/dev/.ssh/tmp');
  });

  it('the CA directory below /tmp stays hidden although /tmp is writable on a Mac', () => {
    const caForms = checkProfile(profileFor(SCENARIOS[3]!));
    expect(decideFile(caForms, 'file-read-data', '/private/tmp/srt-gw-golden-ca-never-created/ca-key.pem')).toBe('deny');
    expect(decideFile(caForms, 'file-write-data', '/private/tmp/srt-gw-golden-ca-never-created/ca-key.pem')).toBe('deny');
    expect(decideFile(caForms, 'file-write-data', '/private/tmp/other')).toBe('allow');
    // And /tmp itself cannot be renamed to carry the CA directory out from under its rule.
    expect(decideFile(caForms, 'file-write-unlink', '/private/tmp')).toBe('deny');
  });

  it('home as the working directory: writable home, its protected files still protected and pinned', () => {
    const homeForms = checkProfile(profileFor(SCENARIOS[2]!));
    expect(decideFile(homeForms, 'file-write-data', '/Users/dev/notes.txt')).toBe('allow');
    expect(decideFile(homeForms, 'file-write-data', '/Users/dev/.bashrc')).toBe('deny');
    expect(decideFile(homeForms, 'file-write-data', '/Users/dev/.config/git/config')).toBe('deny');
    expect(decideFile(homeForms, 'file-read-data', '/Users/dev/.ssh/id_ed25519')).toBe('deny');
    expect(decideFile(homeForms, 'file-write-unlink', '/Users/dev/.config')).toBe('deny');
    expect(decideFile(homeForms, 'file-write-unlink', '/Users/dev/.config/tool')).toBe('allow');
  });
});

describe('network: the gateway port is the only way out', () => {
  const plain = checkProfile(profileFor(SCENARIOS[0]!));
  const binding = checkProfile(profileFor(SCENARIOS[2]!));

  it.each([
    ['the gateway', 'network-outbound', { ip: 'localhost:8877' }, 'allow', 'allow'],
    ['another loopback port', 'network-outbound', { ip: 'localhost:8878' }, 'deny', 'deny'],
    ['an address outside', 'network-outbound', { ip: '203.0.113.9:443' }, 'deny', 'deny'],
    ['mDNSResponder (name resolution)', 'network-outbound', { unixSocket: '/private/var/run/mDNSResponder' }, 'deny', 'deny'],
    ['a host daemon socket', 'network-outbound', { unixSocket: '/private/var/run/docker.sock' }, 'deny', 'deny'],
    ['listening on loopback', 'network-bind', { ip: 'localhost:3000' }, 'deny', 'allow'],
    ['accepting on loopback', 'network-inbound', { ip: 'localhost:3000' }, 'deny', 'allow'],
    ['listening on every interface', 'network-bind', { ip: '0.0.0.0:3000' }, 'deny', 'deny'],
  ] as const)('%s: %s → %s, with allowLocalBinding %s', (_what, operation, target, withoutBinding, withBinding) => {
    expect(decideNetwork(plain, operation, target)).toBe(withoutBinding);
    expect(decideNetwork(binding, operation, target)).toBe(withBinding);
  });

  it('tags every deny rule with the run\'s log tag, so its violations can be found', () => {
    const text = profileFor(SCENARIOS[1]!);
    const denies = text.split('\n').filter((line) => line.startsWith('(deny '));
    expect(denies.length).toBeGreaterThan(5);
    for (const line of denies.filter((line) => !line.includes('sysctl-name-prefix'))) expect(line).toContain('(with message "srt-gw-golden")');
  });
});

describe('base rules', () => {
  const text = profileFor(SCENARIOS[0]!);
  it('allows no Mach service that holds secrets or starts programs outside the jail', () => {
    for (const name of ['com.apple.SecurityServer', 'com.apple.securityd', 'com.apple.trustd', 'launchservicesd', 'com.apple.lsd', 'cfprefsd', 'SystemConfiguration', 'mDNSResponder', 'distributed_notifications', 'appleevents']) {
      const allowed = text.split('\n').filter((line) => line.includes('global-name') && line.includes(name));
      expect(allowed, name).toEqual([]);
    }
    expect(text).not.toContain('(allow network*');
    expect(text).not.toContain('iokit-open');
    expect(text).not.toContain('(allow default');
  });

  it('justifies every Mach service it allows in a comment just above it', () => {
    const lines = text.split('\n');
    const services = lines.flatMap((line, index) => (line.includes('(global-name') ? [index] : []));
    expect(services.length).toBeGreaterThan(0);
    for (const index of services) {
      const above = lines[index - 1]!.trim();
      expect(above.startsWith(';') || lines[index - 1]!.includes('(global-name'), lines[index]).toBe(true);
    }
  });

  it.each([
    ['port 0', { proxyPort: 0 }, ErrorCodes.CONFIG_INVALID],
    ['port 70000', { proxyPort: 70000 }, ErrorCodes.CONFIG_INVALID],
    ['a log tag with a quote', { logTag: 'a"b' }, ErrorCodes.CONFIG_INVALID],
  ])('refuses %s', (_what, options, code) => {
    expect(isSrtGwError(errorOf(() => profileFor(SCENARIOS[0]!, options)), code)).toBe(true);
  });

  it('lists the points it emits, for srt-gw policy show and denial messages', () => {
    const points = macosFilesystemPoints(rulesFor(SCENARIOS[0]!), { realpath: noSymlinks });
    expect(points[0]).toMatchObject({ path: '/', access: 'read-only' });
    expect(points.find((point) => point.path === '/Users/dev/.netrc')).toMatchObject({ access: 'hidden', filter: 'literal' });
    expect(points.find((point) => point.path === '/Users/dev/.ssh')).toMatchObject({ access: 'hidden', filter: 'subpath' });
    expect(points.find((point) => point.path === '/private/tmp')).toMatchObject({ access: 'read-write' });
  });
});
