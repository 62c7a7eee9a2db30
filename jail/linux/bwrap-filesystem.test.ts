// bwrap-filesystem.ts: resolved rules over a real directory tree → bubblewrap arguments. The
// arguments are read back as one line per mount so each case can say what it expects, in order.
// test/e2e/jail-filesystem.test.ts runs them in a real bubblewrap.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCodes } from '../../errors.js';
import type { FilesystemPolicy, FilesystemPolicyKey } from '../../policies/types.js';
import { resolveFilesystemRules, type FilesystemContext, type ResolvedFilesystemRules } from '../filesystem-rules.js';
import { bwrapFilesystemArgs, bwrapMountPointsCreated } from './bwrap-filesystem.js';
import { errorOf } from '../../test/support/srt-gw-error.js';

// Not under /tmp: the jail's /tmp is private, so a fake home there would be out of sight entirely.
const ROOT = realpathSync(mkdtempSync('/var/tmp/srt-gw-bwrap-fs-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
const HOME = join(ROOT, 'home');
const PROJECT = join(HOME, 'project');
const CA = join(ROOT, 'state/ca');
const EMPTY = join(ROOT, 'empty');

function file(path: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, 'x');
}
for (const path of ['.ssh/id_rsa', '.aws/config', '.aws/cli/cache', '.netrc', '.bashrc', '.npm/index', '.npm/secret.env', 'project/src/a.ts', 'project/.git/HEAD', 'project/.git/hooks/pre-commit']) {
  file(join(HOME, path));
}
file(join(ROOT, 'no-repo/readme'));
file(join(ROOT, 'repo-without-hooks/.git/HEAD'));
file(join(ROOT, 'empty-home/.keep'));
file(join(CA, 'ca-key.pem'));
writeFileSync(EMPTY, '', { mode: 0o444 });

type Lists = Partial<Record<FilesystemPolicyKey, readonly string[]>>;

function resolve(lists: Lists = {}, context: Partial<FilesystemContext> = {}): ResolvedFilesystemRules {
  const entries = (key: FilesystemPolicyKey) => (lists[key] ?? []).map((path) => ({ path, baseDirectory: PROJECT }));
  const policy: FilesystemPolicy = { denyRead: entries('denyRead'), allowRead: entries('allowRead'), allowWrite: entries('allowWrite'), denyWrite: entries('denyWrite') };
  return resolveFilesystemRules(policy, { home: HOME, cwd: PROJECT, alwaysHidden: [CA], alwaysReadOnly: [], ...context });
}

/** One line per mount, ROOT written as "$R": "bind $R/home/project", "tmpfs 0555 $R/home/.ssh", "empty-file $R/home/.netrc". */
function mountLines(args: readonly string[]): string[] {
  const short = (path: string) => path.replace(ROOT, '$R');
  const lines: string[] = [];
  let perms: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    const next = () => args[++i]!;
    switch (flag) {
      case '--perms':
        perms = next();
        continue;
      case '--ro-bind': {
        const source = next();
        const dest = next();
        lines.push(source === EMPTY ? `empty-file ${short(dest)}` : source === dest ? `ro-bind ${short(dest)}` : `ro-bind ${short(source)} -> ${short(dest)}`);
        break;
      }
      case '--bind': {
        const source = next();
        const dest = next();
        lines.push(source === dest ? `bind ${short(dest)}` : `bind ${short(source)} -> ${short(dest)}`);
        break;
      }
      case '--tmpfs':
        lines.push(`tmpfs ${perms === undefined ? '' : `${perms} `}${short(next())}`);
        break;
      case '--dev':
      case '--proc':
      case '--dir':
      case '--remount-ro':
        lines.push(`${flag.slice(2)} ${short(next())}`);
        break;
      default:
        throw new Error(`unexpected bwrap argument ${flag}`);
    }
    perms = undefined;
  }
  return lines;
}

function linesFor(lists: Lists = {}, context: Partial<FilesystemContext> = {}): string[] {
  return mountLines(bwrapFilesystemArgs(resolve(lists, context), { emptyFile: EMPTY }));
}


const BASE = ['ro-bind /', 'dev /dev', 'proc /proc', 'tmpfs /tmp', 'tmpfs /run'];

interface MountCase {
  name: string;
  lists?: Lists;
  context?: Partial<FilesystemContext>;
  /** Lines that must appear, in this order (others may come between). */
  inOrder: string[];
  /** Lines that must not appear. */
  absent?: string[];
}

const cases: MountCase[] = [
  { name: 'the host root read-only, fresh /dev and /proc, private /tmp and /run come first', inOrder: BASE },
  { name: 'cwd is bound writable after the private /tmp', inOrder: ['tmpfs /tmp', 'bind $R/home/project'] },
  { name: 'a hidden directory is an empty tmpfs (mode 0555), made read-only at the end', inOrder: ['tmpfs 0555 $R/home/.ssh', 'remount-ro $R/home/.ssh'] },
  { name: 'a hidden file is the empty readable file bound read-only', inOrder: ['empty-file $R/home/.netrc'] },
  { name: 'the CA directory is hidden', inOrder: ['tmpfs 0555 $R/state/ca', 'remount-ro $R/state/ca'] },
  {
    name: 'allowRead inside a hidden directory: the empty tmpfs, then the path bound back read-only',
    lists: { allowRead: ['~/.aws/config'] },
    inOrder: ['tmpfs 0555 $R/home/.aws', 'ro-bind $R/home/.aws/config', 'remount-ro $R/home/.aws'],
  },
  {
    name: 'allowRead that reopens a whole hidden directory needs no mount at all',
    lists: { allowRead: ['~/.aws'] },
    inOrder: [],
    absent: ['tmpfs 0555 $R/home/.aws', 'ro-bind $R/home/.aws'],
  },
  { name: 'existing .git/hooks in cwd is bound read-only after cwd', inOrder: ['bind $R/home/project', 'ro-bind $R/home/project/.git/hooks'] },
  {
    name: 'a repository without hooks: .git pinned, then an empty read-only .git/hooks',
    context: { cwd: join(ROOT, 'repo-without-hooks') },
    inOrder: ['bind $R/repo-without-hooks', 'bind $R/repo-without-hooks/.git', 'tmpfs 0555 $R/repo-without-hooks/.git/hooks', 'remount-ro $R/repo-without-hooks/.git/hooks'],
  },
  {
    name: 'no repository: .git is blocked as an empty read-only directory, which covers config and hooks',
    context: { cwd: join(ROOT, 'no-repo') },
    inOrder: ['bind $R/no-repo', 'tmpfs 0555 $R/no-repo/.git', 'remount-ro $R/no-repo/.git'],
    absent: ['bind $R/no-repo/.git', 'empty-file $R/no-repo/.git/config', 'tmpfs 0555 $R/no-repo/.git/hooks'],
  },
  {
    name: 'missing editor settings in cwd are blocked too',
    context: { cwd: join(ROOT, 'no-repo') },
    inOrder: ['empty-file $R/no-repo/.mcp.json', 'tmpfs 0555 $R/no-repo/.vscode'],
  },
  { name: 'an existing ~/.bashrc is bound read-only when cwd is home', context: { cwd: HOME }, inOrder: ['bind $R/home', 'ro-bind $R/home/.bashrc'] },
  {
    name: 'a missing ~/.bashrc is blocked with the empty file when cwd is home',
    context: { home: join(ROOT, 'empty-home'), cwd: join(ROOT, 'empty-home') },
    inOrder: ['bind $R/empty-home', 'empty-file $R/empty-home/.bashrc', 'empty-file $R/empty-home/.zshenv'],
  },
  {
    name: 'a missing hidden directory in a writable home is blocked so it cannot be created',
    context: { home: join(ROOT, 'empty-home'), cwd: join(ROOT, 'empty-home') },
    inOrder: ['bind $R/empty-home', 'tmpfs 0555 $R/empty-home/.ssh', 'remount-ro $R/empty-home/.ssh'],
  },
  {
    name: 'a missing hidden path outside any writable directory is left alone',
    inOrder: [],
    absent: ['tmpfs 0555 $R/home/.kube', 'empty-file $R/home/.pgpass'],
  },
  {
    name: 'missing parents of a protected path in a writable directory are blocked (they cannot be pinned)',
    context: { home: join(ROOT, 'empty-home'), cwd: join(ROOT, 'empty-home') },
    inOrder: ['tmpfs 0555 $R/empty-home/.config', 'remount-ro $R/empty-home/.config'],
    absent: ['bind $R/empty-home/.config', 'tmpfs 0555 $R/empty-home/.config/fish'],
  },
  { name: 'allowWrite is bound writable', lists: { allowWrite: ['~/.npm'] }, inOrder: ['bind $R/home/.npm'] },
  { name: 'denyWrite under allowWrite is bound read-only after it', lists: { allowWrite: ['~/.npm'], denyWrite: ['~/.npm/secret.env'] }, inOrder: ['bind $R/home/.npm', 'ro-bind $R/home/.npm/secret.env'] },
  { name: 'denyWrite above an allowWrite: the allowWrite is never bound writable', lists: { denyWrite: ['~/.npm'], allowWrite: ['~/.npm/index'] }, inOrder: [], absent: ['bind $R/home/.npm/index', 'bind $R/home/.npm'] },
  { name: 'allowWrite inside a hidden directory is not bound', lists: { allowWrite: ['~/.aws/cli'] }, inOrder: ['tmpfs 0555 $R/home/.aws'], absent: ['bind $R/home/.aws/cli'] },
  {
    name: 'allowWrite inside a hidden directory with allowRead is bound inside the hiding tmpfs',
    lists: { allowWrite: ['~/.aws/cli'], allowRead: ['~/.aws/cli'] },
    inOrder: ['tmpfs 0555 $R/home/.aws', 'bind $R/home/.aws/cli', 'remount-ro $R/home/.aws'],
  },
  { name: 'a denyRead in cwd is hidden over the cwd bind', lists: { denyRead: ['src'] }, inOrder: ['bind $R/home/project', 'tmpfs 0555 $R/home/project/src'] },
];

describe('bwrapFilesystemArgs', () => {
  test.each(cases)('$name', ({ lists, context, inOrder, absent }) => {
    const lines = linesFor(lists, context);
    let from = 0;
    for (const expected of inOrder) {
      const at = lines.indexOf(expected, from);
      expect(at, `${expected}\nafter line ${from} of\n${lines.join('\n')}`).toBeGreaterThanOrEqual(from);
      from = at + 1;
    }
    for (const line of absent ?? []) expect(lines).not.toContain(line);
  });

  test('the base layout is exactly the first five mounts', () => {
    expect(linesFor().slice(0, 5)).toEqual(BASE);
  });

  test('every --remount-ro comes after every mount, so bubblewrap can still create mount points inside', () => {
    const lines = linesFor({ allowRead: ['~/.aws/config'], allowWrite: ['~/.npm'] }, { cwd: join(ROOT, 'no-repo') });
    const firstRemount = lines.findIndex((line) => line.startsWith('remount-ro '));
    expect(firstRemount).toBeGreaterThan(0);
    expect(lines.slice(firstRemount).every((line) => line.startsWith('remount-ro '))).toBe(true);
  });

  test('a parent is always mounted before anything below it, and no path twice', () => {
    const lines = linesFor({ allowRead: ['~/.aws/config'], allowWrite: ['~', '~/.npm'], denyWrite: ['~/.npm/secret.env'], denyRead: ['src'] });
    const paths = lines.filter((line) => !line.startsWith('remount-ro ') && !line.startsWith('dir ')).map((line) => line.split(' ').at(-1)!);
    expect(new Set(paths).size).toBe(paths.length);
    paths.forEach((path, index) => {
      for (const later of paths.slice(index + 1)) expect(path.startsWith(`${later}/`), `${later} is mounted after ${path}, below which it lies`).toBe(false);
    });
  });

  test('a cwd below /tmp is bound back into the private /tmp', () => {
    const cwd = realpathSync(mkdtempSync('/tmp/srt-gw-bwrap-cwd-'));
    try {
      const lines = linesFor({}, { cwd });
      expect(lines.indexOf(`bind ${cwd}`)).toBeGreaterThan(lines.indexOf('tmpfs /tmp'));
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test('nothing inside the private /tmp is mounted unless a writable path brings the host back', () => {
    const ca = realpathSync(mkdtempSync('/tmp/srt-gw-bwrap-ca-'));
    try {
      expect(linesFor({}, { alwaysHidden: [ca] }).some((line) => line.includes(ca))).toBe(false);
    } finally {
      rmSync(ca, { recursive: true, force: true });
    }
  });
});

describe('bwrapMountPointsCreated', () => {
  test('lists the protections of missing paths in writable directories, deepest first', () => {
    const created = bwrapMountPointsCreated(resolve({}, { cwd: join(ROOT, 'no-repo') })).map((path) => path.replace(ROOT, '$R'));
    expect(created).toEqual(expect.arrayContaining(['$R/no-repo/.git', '$R/no-repo/.vscode', '$R/no-repo/.mcp.json']));
    // Mount points inside the blocking tmpfs over .git are made in that tmpfs, not on the host.
    expect(created).not.toContain('$R/no-repo/.git/hooks');
    expect(created).not.toContain('$R/no-repo/.git/config');
    expect(created.some((path) => path.includes('/home/'))).toBe(false);
  });

  test('existing paths are never listed', () => {
    expect(bwrapMountPointsCreated(resolve())).not.toContain(join(PROJECT, '.git/hooks'));
    expect(bwrapMountPointsCreated(resolve())).not.toContain(join(PROJECT, '.git'));
  });
});

describe('paths bubblewrap must not be given', () => {
  test('a working directory with a line break in its name', () => {
    const cwd = join(ROOT, 'line\nbreak');
    mkdirSync(cwd);
    const error = errorOf(() => bwrapFilesystemArgs(resolve({}, { cwd }), { emptyFile: EMPTY }));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    expect(error.message).toBe(`cannot hand a filesystem rule path ${JSON.stringify(cwd)} to bubblewrap: it contains a line break; rename it`);
  });

  test('an empty file with a NUL in its name', () => {
    const error = errorOf(() => bwrapFilesystemArgs(resolve(), { emptyFile: `${EMPTY}\0x` }));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    expect(error.message).toMatch(/it contains a NUL character; rename it$/);
  });

  test('odd but legal characters pass through unchanged (argv, no shell)', () => {
    const cwd = join(ROOT, "it's $HOME; `x` \\ *");
    mkdirSync(cwd);
    expect(bwrapFilesystemArgs(resolve({}, { cwd }), { emptyFile: EMPTY })).toContain(cwd);
  });

  test.each([
    ['a relative empty file', 'empty', 'the empty file must be an absolute path (got "empty")'],
    ['an empty file inside the working directory', join(PROJECT, 'src/a.ts'), `the empty file ${join(PROJECT, 'src/a.ts')} is writable inside the jail; create it outside the working directory and allowWrite paths`],
  ])('%s', (_name, emptyFile, message) => {
    const error = errorOf(() => bwrapFilesystemArgs(resolve(), { emptyFile }));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    expect(error.message).toBe(message);
  });
});
