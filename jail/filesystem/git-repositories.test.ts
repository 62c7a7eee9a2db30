// The git directories and hook paths found in a writable root (worktrees, common directories,
// submodules, core.hooksPath, husky), checked through the rules they become.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import type { FilesystemPolicy, FilesystemPolicyKey } from '../../policies/types.js';
import { filesystemAccess, resolveFilesystemRules, type FilesystemContext, type ResolvedFilesystemRules } from '../filesystem-rules.js';
import { GIT_DIRECTORY_PROTECTED } from './built-in-paths.js';
import { hooksPathsIn } from './git-repositories.js';

// Not under /tmp: the jail's /tmp is private, so a fake home there would be out of sight entirely.
const ROOT = realpathSync(mkdtempSync('/var/tmp/srt-gw-git-repositories-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const HOME = join(ROOT, 'home');
const PROJECT = join(HOME, 'project');

function file(path: string, text = 'x'): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

file(join(PROJECT, '.git/config'), '[core]\n\tbare = false\n\thooksPath = "tools/hooks" ; comment\n');
file(join(PROJECT, '.git/HEAD'), 'ref: refs/heads/main\n');
file(join(PROJECT, '.git/modules/lib/HEAD'), 'ref: refs/heads/main\n');
file(join(PROJECT, '.git/modules/lib/config'));
file(join(PROJECT, 'tools/hooks/pre-commit'));
// A worktree whose .git is a file pointing into another repository's git directory.
file(join(ROOT, 'worktree/.git'), `gitdir: ${join(ROOT, 'main-repo/.git/worktrees/wt')}\n`);
file(join(ROOT, 'main-repo/.git/worktrees/wt/commondir'), '../..\n');
file(join(ROOT, 'main-repo/.git/hooks/pre-commit'));
file(join(ROOT, 'main-repo/.git/config'));
// A husky repository: core.hooksPath .husky/_ runs the scripts in .husky.
file(join(ROOT, 'husky-repo/.git/HEAD'), 'ref: refs/heads/main\n');
file(join(ROOT, 'husky-repo/.git/config'), '[core]\n\thooksPath = .husky/_\n');
file(join(ROOT, 'husky-repo/.husky/_/h'));
file(join(ROOT, 'husky-repo/.husky/pre-commit'));
file(join(ROOT, 'husky-repo/src/index.ts'));

type Lists = Partial<Record<FilesystemPolicyKey, readonly string[]>>;

function resolve(lists: Lists = {}, overrides: Partial<FilesystemContext> = {}): ResolvedFilesystemRules {
  const entries = (key: FilesystemPolicyKey) => (lists[key] ?? []).map((path) => ({ path, baseDirectory: PROJECT }));
  const policy: FilesystemPolicy = { denyRead: entries('denyRead'), allowRead: entries('allowRead'), allowWrite: entries('allowWrite'), denyWrite: entries('denyWrite') };
  return resolveFilesystemRules(policy, { home: HOME, cwd: PROJECT, alwaysHidden: [], alwaysReadOnly: [], ...overrides });
}

describe('git directories and hook paths of a writable root', () => {
  test.each(GIT_DIRECTORY_PROTECTED)("$path of a worktree's git directory and of its common directory is protected", (entry) => {
    const resolved = resolve({ allowWrite: [ROOT] }, { cwd: join(ROOT, 'worktree'), platform: 'linux' });
    for (const gitDirectory of [join(ROOT, 'main-repo/.git/worktrees/wt'), join(ROOT, 'main-repo/.git')]) {
      const path = join(gitDirectory, entry.path);
      const present = entry.path === 'commondir' ? gitDirectory.endsWith('wt') : true;
      expect(filesystemAccess(resolved, path).access, path).toBe(entry.ifPresent === true && !present ? 'read-write' : 'read-only');
    }
  });

  test.each(GIT_DIRECTORY_PROTECTED)("$path of a submodule's git directory is protected", (entry) => {
    const path = join(PROJECT, '.git/modules/lib', entry.path);
    expect(filesystemAccess(resolve({}, { platform: 'linux' }), path).access).toBe(entry.ifPresent === true ? 'read-write' : 'read-only');
  });

  test('husky: core.hooksPath .husky/_ makes .husky read-only as a whole, the scripts it runs included', () => {
    const resolved = resolve({}, { cwd: join(ROOT, 'husky-repo') });
    expect(filesystemAccess(resolved, join(ROOT, 'husky-repo/.husky/_/h')).access).toBe('read-only');
    expect(filesystemAccess(resolved, join(ROOT, 'husky-repo/.husky/pre-commit')).access).toBe('read-only');
    expect(filesystemAccess(resolved, join(ROOT, 'husky-repo/.husky/new-hook')).access).toBe('read-only');
    expect(filesystemAccess(resolved, join(ROOT, 'husky-repo/src/index.ts')).access).toBe('read-write');
  });

  test('a hooks path not named "_" protects itself only, not its parent', () => {
    expect(filesystemAccess(resolve(), join(PROJECT, 'tools/other.sh')).access).toBe('read-write');
  });
});

describe('hooksPathsIn', () => {
  test.each([
    ['plain', '[core]\n\thooksPath = .husky\n', ['.husky']],
    ['quoted, with a comment', '[core]\n  hooksPath = "my hooks" # note\n', ['my hooks']],
    ['any case, key on the section line', '[CORE] HooksPath=/opt/hooks\n', ['/opt/hooks']],
    ['other sections are ignored', '[alias]\n\thooksPath = nope\n[core]\n\tbare = false\n', []],
    ['a subsection is not core', '[core "x"]\n\thooksPath = nope\n', []],
  ])('%s', (_name, text, expected) => {
    expect(hooksPathsIn(text)).toEqual(expected);
  });
});
