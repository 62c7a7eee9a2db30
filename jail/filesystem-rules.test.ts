// filesystem-rules.ts against a real directory tree (symlinks included): each case names the
// precedence line it proves and fails for an implementation that gets that line wrong.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCodes } from '../errors.js';
import type { FilesystemPolicy, FilesystemPolicyKey } from '../policies/types.js';
import { DEFAULT_HIDDEN_PATHS, DEFAULT_READ_ONLY_PATHS, GIT_DIRECTORY_PROTECTED, MACOS_DEFAULT_HIDDEN_PATHS, PROTECTED_IN_WRITABLE_ROOTS } from './filesystem/built-in-paths.js';
import {
  filesystemAccess,
  resolveFilesystemRules,
  type FilesystemAccess,
  type FilesystemContext,
  type FilesystemEffect,
  type FilesystemRule,
  type ResolvedFilesystemRules,
} from './filesystem-rules.js';
import { errorOf } from '../test/support/srt-gw-error.js';
import { bwrapMountPointsCreated } from './linux/bwrap-filesystem.js';

// Not under /tmp: the jail's /tmp is private, so a fake home there would be out of sight entirely.
const ROOT = realpathSync(mkdtempSync('/var/tmp/srt-gw-fs-rules-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const HOME = join(ROOT, 'home');
const PROJECT = join(HOME, 'project');
const POLICY_DIR = join(PROJECT, 'policy');
const STATE = join(ROOT, 'state');
const CA = join(STATE, 'ca');

function file(path: string, text = 'x'): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}
function link(path: string, target: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  symlinkSync(target, path);
}

file(join(HOME, '.ssh/id_rsa'));
file(join(HOME, '.aws/config'));
file(join(HOME, '.aws/credentials'));
file(join(HOME, '.aws/cli/cache/token'));
file(join(HOME, '.bashrc'));
file(join(HOME, '.netrc'));
file(join(HOME, '.config/fish/config.fish'));
file(join(HOME, '.config/tool/settings'));
file(join(HOME, 'secrets/key'));
file(join(HOME, 'secrets/public/readme'));
file(join(HOME, '.npm/cache/index'));
file(join(HOME, '.npm/secret.env'));
// macOS keeps its keychains here; hidden only when the rules are resolved for darwin.
file(join(HOME, 'Library/Keychains/login.keychain-db'));
file(join(PROJECT, '.git/config'), '[core]\n\tbare = false\n\thooksPath = "tools/hooks" ; comment\n');
file(join(PROJECT, '.git/HEAD'), 'ref: refs/heads/main\n');
file(join(PROJECT, '.git/objects/ab/cdef'));
file(join(PROJECT, '.git/modules/lib/HEAD'), 'ref: refs/heads/main\n');
file(join(PROJECT, '.git/modules/lib/config'));
file(join(PROJECT, 'src/index.ts'));
file(join(PROJECT, '.env'));
file(join(PROJECT, '.vscode/tasks.json'));
file(join(PROJECT, 'tools/hooks/pre-commit'));
file(join(POLICY_DIR, 'policy.yaml'));
link(join(PROJECT, 'link-to-ssh'), '../.ssh');
link(join(HOME, 'alias'), 'project');
link(join(HOME, 'deep'), join(ROOT, 'opt/corp'));
link(join(ROOT, 'home-link'), 'home');
file(join(ROOT, 'opt/corp/keys/signing.pem'));
file(join(ROOT, 'opt/readme'));
// What "~/deep/../readme" would name if ".." were applied before following the symlink.
file(join(HOME, 'readme'));
file(join(STATE, 'log'));
file(join(CA, 'ca-key.pem'));
// A repository without hooks (.git exists, .git/hooks does not) and a worktree whose .git is a file.
file(join(ROOT, 'bare-repo/.git/HEAD'));
file(join(ROOT, 'worktree/.git'), `gitdir: ${join(ROOT, 'main-repo/.git/worktrees/wt')}\n`);
file(join(ROOT, 'main-repo/.git/worktrees/wt/commondir'), '../..\n');
file(join(ROOT, 'main-repo/.git/hooks/pre-commit'));
file(join(ROOT, 'main-repo/.git/config'));
// Home directory whose .bashrc is a symlink into a dotfiles checkout.
file(join(ROOT, 'linked-home/dotfiles/bashrc'));
link(join(ROOT, 'linked-home/.bashrc'), 'dotfiles/bashrc');
mkdirSync(join(ROOT, 'empty-home'), { recursive: true });
// A writable root holding every protected name and one holding none.
const FULL_ROOT = join(ROOT, 'full-root');
const EMPTY_ROOT = join(ROOT, 'empty-root');
for (const entry of PROTECTED_IN_WRITABLE_ROOTS) {
  if (entry.kind === 'directory') mkdirSync(join(FULL_ROOT, entry.path), { recursive: true });
  else file(join(FULL_ROOT, entry.path));
}
mkdirSync(EMPTY_ROOT, { recursive: true });

type Lists = Partial<Record<FilesystemPolicyKey, readonly string[]>>;

function policyOf(lists: Lists, baseDirectory = POLICY_DIR): FilesystemPolicy {
  const entries = (key: FilesystemPolicyKey) =>
    (lists[key] ?? []).map((path, index) => ({ path, baseDirectory, source: { file: join(baseDirectory, 'policy.yaml'), line: 5, column: index + 1 } }));
  return { denyRead: entries('denyRead'), allowRead: entries('allowRead'), allowWrite: entries('allowWrite'), denyWrite: entries('denyWrite') };
}

function contextOf(overrides: Partial<FilesystemContext> = {}): FilesystemContext {
  return { home: HOME, cwd: PROJECT, alwaysHidden: [CA], alwaysReadOnly: [join(POLICY_DIR, 'policy.yaml')], ...overrides };
}

function resolve(lists: Lists = {}, overrides: Partial<FilesystemContext> = {}): ResolvedFilesystemRules {
  return resolveFilesystemRules(policyOf(lists), contextOf(overrides));
}

interface AccessCase {
  name: string;
  lists?: Lists;
  context?: Partial<FilesystemContext>;
  path: string;
  access: FilesystemAccess;
  /** The deciding rule: its effect and, when given, its canonical path. */
  effect: FilesystemEffect;
  rulePath?: string;
}

const accessCases: AccessCase[] = [
  // Reads are allowed by default; writes are not.
  { name: 'a path no rule names is readable, not writable', path: join(ROOT, 'opt/readme'), access: 'read-only', effect: 'read-only-default', rulePath: '/' },
  { name: 'home outside cwd is read-only', path: join(HOME, 'notes.txt'), access: 'read-only', effect: 'read-only-default' },
  // Hidden by default, by denyRead, by alwaysHidden.
  { name: '~/.ssh is hidden by default', path: join(HOME, '.ssh/id_rsa'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.ssh') },
  { name: 'a default hidden file (~/.netrc) is hidden', path: join(HOME, '.netrc'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.netrc') },
  { name: 'denyRead hides a directory and everything below it', lists: { denyRead: ['~/secrets'] }, path: join(HOME, 'secrets/public/readme'), access: 'hidden', effect: 'hide', rulePath: join(HOME, 'secrets') },
  { name: 'denyRead of an absolute path', lists: { denyRead: [join(ROOT, 'opt/corp/keys')] }, path: join(ROOT, 'opt/corp/keys/signing.pem'), access: 'hidden', effect: 'hide' },
  { name: 'alwaysHidden hides the CA directory', path: join(CA, 'ca-key.pem'), access: 'hidden', effect: 'hide', rulePath: CA },
  // allowRead reopens within hidden paths only, and never alwaysHidden.
  { name: 'allowRead reopens a file inside a default hidden directory', lists: { allowRead: ['~/.aws/config'] }, path: join(HOME, '.aws/config'), access: 'read-only', effect: 'read-only-default' },
  { name: 'allowRead of one file leaves its siblings hidden', lists: { allowRead: ['~/.aws/config'] }, path: join(HOME, '.aws/credentials'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.aws') },
  { name: 'allowRead reopens a subdirectory of a denyRead', lists: { denyRead: ['~/secrets'], allowRead: ['~/secrets/public'] }, path: join(HOME, 'secrets/public/readme'), access: 'read-only', effect: 'read-only-default' },
  { name: 'allowRead at the same path as denyRead wins', lists: { denyRead: ['~/secrets'], allowRead: ['~/secrets'] }, path: join(HOME, 'secrets/key'), access: 'read-only', effect: 'read-only-default' },
  { name: 'a denyRead inside an allowRead hides again', lists: { allowRead: ['~/.aws'], denyRead: ['~/.aws/credentials'] }, path: join(HOME, '.aws/credentials'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.aws/credentials') },
  { name: 'allowRead above a hidden path does not reopen it', lists: { allowRead: ['~'] }, path: join(HOME, '.ssh/id_rsa'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.ssh') },
  { name: 'allowRead cannot reopen the CA directory', lists: { allowRead: [CA] }, path: join(CA, 'ca-key.pem'), access: 'hidden', effect: 'hide', rulePath: CA },
  { name: 'allowRead cannot reopen a file inside the CA directory', lists: { allowRead: [join(CA, 'ca-key.pem')] }, path: join(CA, 'ca-key.pem'), access: 'hidden', effect: 'hide' },
  { name: 'reopening the parent of the CA directory leaves the CA directory hidden', lists: { denyRead: [STATE], allowRead: [STATE + '/'] }, path: join(CA, 'ca-key.pem'), access: 'hidden', effect: 'hide', rulePath: CA },
  { name: '...while the rest of that parent is readable again', lists: { denyRead: [STATE], allowRead: [STATE + '/'] }, path: join(STATE, 'log'), access: 'read-only', effect: 'read-only-default' },
  // Symlinks are resolved before any comparison.
  { name: 'a symlink in cwd pointing into ~/.ssh stays hidden', path: join(PROJECT, 'link-to-ssh/id_rsa'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.ssh') },
  { name: 'a denyRead written through a symlink hides the real directory', lists: { denyRead: ['~/alias/src'] }, path: join(PROJECT, 'src/index.ts'), access: 'hidden', effect: 'hide', rulePath: join(PROJECT, 'src') },
  { name: 'a symlinked cwd makes the real directory writable', context: { cwd: join(HOME, 'alias') }, path: join(PROJECT, 'src/index.ts'), access: 'read-write', effect: 'allow-write', rulePath: PROJECT },
  { name: 'a symlinked home is resolved for the default hidden paths', context: { home: join(ROOT, 'home-link') }, path: join(HOME, '.ssh/id_rsa'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.ssh') },
  // Relative paths, "..", trailing slashes.
  { name: 'a relative path is relative to the policy directory, not cwd', lists: { denyRead: ['../src'] }, path: join(PROJECT, 'src/index.ts'), access: 'hidden', effect: 'hide', rulePath: join(PROJECT, 'src') },
  { name: 'a bare relative name is relative to the policy directory', lists: { denyWrite: ['policy.yaml'] }, context: { alwaysReadOnly: [] }, path: join(POLICY_DIR, 'policy.yaml'), access: 'read-only', effect: 'deny-write', rulePath: join(POLICY_DIR, 'policy.yaml') },
  { name: '".." is applied', lists: { denyRead: ['~/project/../secrets'] }, path: join(HOME, 'secrets/key'), access: 'hidden', effect: 'hide', rulePath: join(HOME, 'secrets') },
  { name: '".." after a symlink climbs from the link target, as the kernel does', lists: { denyRead: ['~/deep/../readme'] }, path: join(ROOT, 'opt/readme'), access: 'hidden', effect: 'hide', rulePath: join(ROOT, 'opt/readme') },
  { name: 'a trailing slash names the same directory', lists: { denyRead: ['~/secrets/'] }, path: join(HOME, 'secrets/key'), access: 'hidden', effect: 'hide', rulePath: join(HOME, 'secrets') },
  { name: 'a missing denyRead still hides what is created there later', lists: { denyRead: ['~/not-yet/'] }, path: join(HOME, 'not-yet/file'), access: 'hidden', effect: 'hide', rulePath: join(HOME, 'not-yet') },
  // Writes: cwd, private /tmp, allowWrite; denyWrite wins.
  { name: 'cwd is writable', path: join(PROJECT, 'src/index.ts'), access: 'read-write', effect: 'allow-write', rulePath: PROJECT },
  { name: 'a file cwd does not have yet is writable', path: join(PROJECT, 'new/file'), access: 'read-write', effect: 'allow-write', rulePath: PROJECT },
  { name: '/tmp is private', path: '/tmp/whatever', access: 'private', effect: 'private', rulePath: '/tmp' },
  { name: '/run is private', path: '/run/docker.sock', access: 'private', effect: 'private', rulePath: '/run' },
  { name: 'allowWrite makes a directory writable', lists: { allowWrite: ['~/.npm'] }, path: join(HOME, '.npm/cache/index'), access: 'read-write', effect: 'allow-write', rulePath: join(HOME, '.npm') },
  { name: 'denyWrite under allowWrite wins', lists: { allowWrite: ['~/.npm'], denyWrite: ['~/.npm/secret.env'] }, path: join(HOME, '.npm/secret.env'), access: 'read-only', effect: 'deny-write' },
  { name: 'denyWrite above an allowWrite still wins', lists: { denyWrite: ['~/.npm'], allowWrite: ['~/.npm/cache'] }, path: join(HOME, '.npm/cache/index'), access: 'read-only', effect: 'deny-write', rulePath: join(HOME, '.npm') },
  { name: 'denyWrite wins over cwd', lists: { denyWrite: ['../.env'] }, path: join(PROJECT, '.env'), access: 'read-only', effect: 'deny-write', rulePath: join(PROJECT, '.env') },
  { name: 'allowWrite inside a hidden directory stays hidden', lists: { allowWrite: ['~/.aws/cli'] }, path: join(HOME, '.aws/cli/cache/token'), access: 'hidden', effect: 'hide', rulePath: join(HOME, '.aws') },
  { name: 'allowWrite inside a hidden directory works with allowRead too', lists: { allowWrite: ['~/.aws/cli'], allowRead: ['~/.aws/cli'] }, path: join(HOME, '.aws/cli/cache/token'), access: 'read-write', effect: 'allow-write' },
  { name: 'a missing allowWrite is not writable', lists: { allowWrite: ['~/.cache/pip'] }, path: join(HOME, '.cache/pip/x'), access: 'read-only', effect: 'read-only-default' },
  { name: 'allowWrite /tmp does not share the host /tmp', lists: { allowWrite: ['/tmp'] }, path: '/tmp/x', access: 'private', effect: 'private' },
  // Always read-only, even under a writable path.
  { name: '.git/hooks of cwd is read-only', path: join(PROJECT, '.git/hooks/pre-commit'), access: 'read-only', effect: 'deny-write', rulePath: join(PROJECT, '.git/hooks') },
  { name: '.git/config of cwd is read-only', path: join(PROJECT, '.git/config'), access: 'read-only', effect: 'deny-write' },
  { name: 'the rest of .git stays writable (commits work)', path: join(PROJECT, '.git/objects/ab/cdef'), access: 'read-write', effect: 'allow-write' },
  { name: 'a submodule git directory has read-only hooks', path: join(PROJECT, '.git/modules/lib/hooks/post-checkout'), access: 'read-only', effect: 'deny-write' },
  { name: 'a submodule git directory has a read-only config', path: join(PROJECT, '.git/modules/lib/config'), access: 'read-only', effect: 'deny-write' },
  { name: 'core.hooksPath of the repository is read-only', path: join(PROJECT, 'tools/hooks/pre-commit'), access: 'read-only', effect: 'deny-write', rulePath: join(PROJECT, 'tools/hooks') },
  { name: '.git/hooks is protected in a repository without hooks', context: { cwd: join(ROOT, 'bare-repo') }, path: join(ROOT, 'bare-repo/.git/hooks/pre-commit'), access: 'read-only', effect: 'deny-write' },
  { name: '.git/config is protected where there is no repository yet', context: { cwd: join(ROOT, 'opt') }, path: join(ROOT, 'opt/.git/config'), access: 'read-only', effect: 'deny-write' },
  { name: 'a worktree\'s .git file is read-only', context: { cwd: join(ROOT, 'worktree') }, path: join(ROOT, 'worktree/.git'), access: 'read-only', effect: 'deny-write' },
  { name: 'a worktree protects the hooks of its common git directory', context: { cwd: join(ROOT, 'worktree') }, lists: { allowWrite: [ROOT] }, path: join(ROOT, 'main-repo/.git/hooks/pre-commit'), access: 'read-only', effect: 'deny-write' },
  { name: '.vscode of cwd is read-only', path: join(PROJECT, '.vscode/tasks.json'), access: 'read-only', effect: 'deny-write' },
  { name: '.git/config of an allowWrite root is read-only', lists: { allowWrite: ['~/.npm'] }, path: join(HOME, '.npm/.git/config'), access: 'read-only', effect: 'deny-write' },
  { name: '.mcp.json of an allowWrite root is read-only', lists: { allowWrite: ['~/.npm'] }, path: join(HOME, '.npm/.mcp.json'), access: 'read-only', effect: 'deny-write' },
  { name: '~/.bashrc is read-only when cwd is home', context: { cwd: HOME }, path: join(HOME, '.bashrc'), access: 'read-only', effect: 'deny-write', rulePath: join(HOME, '.bashrc') },
  { name: 'a missing ~/.zshenv is read-only when home is writable', lists: { allowWrite: ['~'] }, path: join(HOME, '.zshenv'), access: 'read-only', effect: 'deny-write' },
  { name: '~/.config/fish is read-only under a writable ~/.config', lists: { allowWrite: ['~/.config'] }, path: join(HOME, '.config/fish/config.fish'), access: 'read-only', effect: 'deny-write' },
  { name: 'other files of a writable ~/.config stay writable', lists: { allowWrite: ['~/.config'] }, path: join(HOME, '.config/tool/settings'), access: 'read-write', effect: 'allow-write' },
  { name: '~/.config/srt-gw is read-only under a writable ~/.config', lists: { allowWrite: ['~/.config'] }, path: join(HOME, '.config/srt-gw/policy.yaml'), access: 'read-only', effect: 'deny-write' },
  { name: 'alwaysReadOnly (the policy file) is read-only in cwd', path: join(POLICY_DIR, 'policy.yaml'), access: 'read-only', effect: 'deny-write', rulePath: join(POLICY_DIR, 'policy.yaml') },
  { name: 'allowWrite cannot make alwaysReadOnly writable', lists: { allowWrite: ['.'] }, path: join(POLICY_DIR, 'policy.yaml'), access: 'read-only', effect: 'deny-write' },
  { name: "srt-gw's own code in cwd is read-only", context: { ownCode: [join(PROJECT, 'src')] }, path: join(PROJECT, 'src/index.ts'), access: 'read-only', effect: 'deny-write', rulePath: join(PROJECT, 'src') },
  { name: "allowWrite cannot make srt-gw's own code writable", lists: { allowWrite: ['.'] }, context: { ownCode: [join(PROJECT, 'src')] }, path: join(PROJECT, 'src/new-file'), access: 'read-only', effect: 'deny-write' },
  { name: "a missing own-code path adds no rule (nothing to protect, no mount point)", context: { ownCode: [join(PROJECT, 'dist')] }, path: join(PROJECT, 'dist/srt-gw.js'), access: 'read-write', effect: 'allow-write' },
  { name: 'cwd = /tmp itself stays private: the host /tmp is never shared', context: { cwd: '/tmp' }, path: '/tmp/x', access: 'private', effect: 'private' },
];

describe('filesystemAccess: precedence', () => {
  test.each(accessCases)('$name', ({ lists, context, path, access, effect, rulePath }) => {
    const resolved = resolve(lists, context);
    const decided = filesystemAccess(resolved, path);
    expect({ access: decided.access, effect: decided.rule.effect }).toEqual({ access, effect });
    if (rulePath !== undefined) expect(decided.rule.path).toBe(rulePath);
  });

  test.each(DEFAULT_HIDDEN_PATHS.map((entry) => entry.path))('%s is hidden by default', (written) => {
    const decided = filesystemAccess(resolve(), join(HOME, written.slice(2), 'inner'));
    expect(decided.access).toBe('hidden');
    expect(decided.rule.origin).toEqual({ kind: 'built-in', written });
  });

  test.each(DEFAULT_READ_ONLY_PATHS.map((entry) => entry.path))('%s is read-only even when home is writable', (written) => {
    const decided = filesystemAccess(resolve({}, { cwd: HOME }), join(HOME, written.slice(2)));
    expect(decided.access).toBe('read-only');
    expect(decided.rule.origin).toEqual({ kind: 'built-in', written });
  });

  test.each(PROTECTED_IN_WRITABLE_ROOTS.filter((entry) => entry.ifPresent !== true).map((entry) => entry.path))('%s is read-only in cwd and in an allowWrite root', (name) => {
    const resolved = resolve({ allowWrite: [join(ROOT, 'opt')] });
    for (const root of [PROJECT, join(ROOT, 'opt')]) {
      expect(filesystemAccess(resolved, join(root, name)).access).toBe('read-only');
      expect(filesystemAccess(resolved, join(root, name, 'inner')).access).toBe('read-only');
    }
  });

  test('a cwd below /tmp is writable, and its protections still apply', () => {
    const cwd = realpathSync(mkdtempSync('/tmp/srt-gw-fs-rules-cwd-'));
    try {
      const resolved = resolve({}, { cwd });
      expect(filesystemAccess(resolved, join(cwd, 'file')).access).toBe('read-write');
      expect(filesystemAccess(resolved, join(cwd, '.git/hooks')).access).toBe('read-only');
      expect(filesystemAccess(resolved, '/tmp/other').access).toBe('private');
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

/** The rule a resolved set has exactly at `path`, as the table below compares it. */
function ruleAt(resolved: ResolvedFilesystemRules, path: string) {
  const rule = resolved.rules.find((candidate) => candidate.path === path && candidate.effect === 'deny-write');
  return rule && { effect: rule.effect, origin: rule.origin, exists: rule.exists, kind: rule.kind, access: filesystemAccess(resolved, path).access };
}

describe('protected names: each entry and the rule it resolves to', () => {
  const inRoots = (root: string) => resolve({ allowWrite: [root] }, { cwd: root === FULL_ROOT ? FULL_ROOT : PROJECT, platform: 'linux' });

  test('the lists hold every name the host runs or obeys later', () => {
    const names = (list: readonly { path: string }[]) => list.map((entry) => entry.path);
    expect(names(PROTECTED_IN_WRITABLE_ROOTS)).toEqual(
      expect.arrayContaining([
        ...['.git/hooks', '.git/config', '.git/config.worktree', '.git/info', '.git/commondir'],
        ...['.bashrc', '.bash_profile', '.bash_login', '.zshrc', '.zprofile', '.zshenv', '.profile', '.gitconfig', '.gitmodules', '.ripgreprc'],
        ...['.mcp.json', '.envrc', '.srt-gw.yaml', '.srt.json', '.pre-commit-config.yaml', '.vscode', '.idea', '.claude', '.cursor'],
      ]),
    );
    expect(names(GIT_DIRECTORY_PROTECTED).sort()).toEqual(['commondir', 'config', 'config.worktree', 'hooks', 'info']);
    expect(names(DEFAULT_READ_ONLY_PATHS)).toEqual(
      expect.arrayContaining([
        ...['~/.claude.json', '~/.vimrc', '~/.tmux.conf', '~/.emacs', '~/.emacs.d', '~/.xprofile', '~/.xsession'],
        ...['nvim', 'direnv', 'environment.d', 'autostart', 'systemd', 'Code/User', 'fish'].map((name) => `~/.config/${name}`),
      ]),
    );
  });

  test.each(PROTECTED_IN_WRITABLE_ROOTS)('$path, present in a writable root: read-only, rule names it', (entry) => {
    expect(ruleAt(inRoots(FULL_ROOT), join(FULL_ROOT, entry.path))).toEqual({
      effect: 'deny-write',
      origin: { kind: 'built-in', written: entry.path },
      exists: true,
      kind: entry.kind,
      access: 'read-only',
    });
  });

  test.each(PROTECTED_IN_WRITABLE_ROOTS)('$path, missing in a writable root: blocked as a $kind unless protected only when present', (entry) => {
    const resolved = inRoots(EMPTY_ROOT);
    const path = join(EMPTY_ROOT, entry.path);
    if (entry.ifPresent === true) {
      // No stand-in: a later check holds one the command creates (jail/planted-files.ts).
      expect(ruleAt(resolved, path)).toBeUndefined();
      expect(filesystemAccess(resolved, path).access).toBe('read-write');
      return;
    }
    expect(ruleAt(resolved, path)).toEqual({ effect: 'deny-write', origin: { kind: 'built-in', written: entry.path }, exists: false, kind: entry.kind, access: 'read-only' });
  });

  test('a missing .git/commondir gets no stand-in on Linux (git refuses an empty one); on macOS it is denied all the same', () => {
    expect(resolve({}, { platform: 'linux' }).points.some((point) => point.path === join(PROJECT, '.git/commondir'))).toBe(false);
    expect(filesystemAccess(resolve({}, { platform: 'darwin' }), join(PROJECT, '.git/commondir')).access).toBe('read-only');
    expect(filesystemAccess(resolve({}, { platform: 'darwin' }), join(PROJECT, '.srt-gw.yaml')).access).toBe('read-only');
  });

  test('with a read-only home, no missing home path gets a mount point on the host', () => {
    const home = join(ROOT, 'empty-home');
    expect(bwrapMountPointsCreated(resolve({}, { home })).filter((path) => path.startsWith(`${home}/`))).toEqual([]);
    // Control: a writable home gets them.
    expect(bwrapMountPointsCreated(resolve({ allowWrite: [home] }, { home })).filter((path) => path.startsWith(`${home}/`))).not.toEqual([]);
  });
});

describe('platform defaults: macOS credential stores under ~/Library', () => {
  const LIBRARY = join(HOME, 'Library');
  const darwin = (lists: Lists = {}) => resolve(lists, { platform: 'darwin' });
  const linux = (lists: Lists = {}) => resolve(lists, { platform: 'linux' });

  test.each(MACOS_DEFAULT_HIDDEN_PATHS.map((entry) => entry.path))('%s is hidden by default on macOS', (written) => {
    const decided = filesystemAccess(darwin(), join(HOME, written.slice(2), 'inner'));
    expect(decided.access).toBe('hidden');
    expect(decided.rule.origin).toEqual({ kind: 'built-in', written });
  });

  test('~/Library/Keychains is hidden on macOS, with a reason naming it', () => {
    const decided = filesystemAccess(darwin(), join(LIBRARY, 'Keychains/login.keychain-db'));
    expect(decided.access).toBe('hidden');
    expect(decided.rule.reason).toBe('hidden by default: macOS keychains (passwords, keys, certificates) (~/Library/Keychains); filesystem.allowRead reopens it');
  });

  test('the shared defaults still apply on macOS', () => {
    expect(filesystemAccess(darwin(), join(HOME, '.ssh/id_rsa')).access).toBe('hidden');
  });

  test('Linux rules do not mention ~/Library at all (bubblewrap would create a mount point for each)', () => {
    const resolved = linux();
    expect(resolved.rules.filter((rule) => rule.path.startsWith(LIBRARY))).toEqual([]);
    expect(resolved.points.filter((point) => point.path.startsWith(LIBRARY))).toEqual([]);
    expect(filesystemAccess(resolved, join(LIBRARY, 'Keychains/login.keychain-db')).access).toBe('read-only');
  });

  test('allowRead reopens a macOS default like any other default', () => {
    const resolved = darwin({ allowRead: ['~/Library/Keychains'] });
    expect(filesystemAccess(resolved, join(LIBRARY, 'Keychains/login.keychain-db'))).toMatchObject({ access: 'read-only', rule: { effect: 'read-only-default' } });
    expect(filesystemAccess(resolved, join(LIBRARY, 'Cookies/Cookies.binarycookies')).access).toBe('hidden');
    expect(resolved.warnings.filter((warning) => warning.code === 'allow-read-no-effect')).toEqual([]);
  });

  test('without a platform, the host\'s defaults apply', () => {
    const paths = (resolved: ResolvedFilesystemRules) => resolved.rules.map((rule) => rule.path);
    expect(paths(resolve())).toEqual(paths(resolve({}, { platform: process.platform })));
  });
});

describe('warnings', () => {
  test.each([
    ['allowRead of the CA directory', { allowRead: [CA] }, {}, 'allow-read-always-hidden', CA, `is ignored: srt-gw never shows ${CA} inside the jail (its CA and state)`],
    ['allowRead inside the CA directory', { allowRead: [join(CA, 'ca-key.pem')] }, {}, 'allow-read-always-hidden', join(CA, 'ca-key.pem'), `is ignored: srt-gw never shows ${CA} inside the jail (its CA and state)`],
    ['allowRead outside any hidden path', { allowRead: ['~/project'] }, {}, 'allow-read-no-effect', PROJECT, `changes nothing: ${PROJECT} is not inside a hidden path, and reading is allowed by default`],
    ['allowWrite of a missing directory', { allowWrite: ['~/.cache/pip'] }, {}, 'allow-write-missing', join(HOME, '.cache/pip'), `is ignored: ${join(HOME, '.cache/pip')} does not exist; create it before the run to make it writable`],
    ['allowWrite of /tmp', { allowWrite: ['/tmp/'] }, {}, 'allow-write-private', '/tmp', "is ignored: the jail's /tmp is private and always writable; the host's /tmp is never shared"],
    ['allowWrite inside a hidden directory', { allowWrite: ['~/.aws/cli'] }, {}, 'allow-write-hidden', join(HOME, '.aws/cli'), `stays hidden: it is inside ${join(HOME, '.aws')} (hidden by default: AWS credentials (~/.aws); filesystem.allowRead reopens it); add it to filesystem.allowRead as well to use it`],
    ['cwd is /tmp', {}, { cwd: '/tmp' }, 'cwd-private', '/tmp', 'the working directory /tmp is private in the jail: the command sees it empty and its files there are discarded'],
  ] as const)('%s', (_name, lists, context, code, path, messageEnd) => {
    const warnings = resolve(lists, context).warnings.filter((warning) => warning.code === code);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.path).toBe(path);
    expect(warnings[0]?.message.endsWith(messageEnd)).toBe(true);
  });

  test('a policy warning names the entry and where it was written', () => {
    const [warning] = resolve({ allowRead: [CA] }).warnings;
    expect(warning?.message).toBe(
      `filesystem.allowRead[0] ${JSON.stringify(CA)} (${join(POLICY_DIR, 'policy.yaml')}:5:1) is ignored: srt-gw never shows ${CA} inside the jail (its CA and state)`,
    );
  });

  test('a protected name that is a symlink in a writable directory is reported; its target stays read-only', () => {
    const home = join(ROOT, 'linked-home');
    const resolved = resolve({}, { home, cwd: home });
    const warning = resolved.warnings.find((each) => each.code === 'protected-symlink');
    expect(warning?.path).toBe(join(home, '.bashrc'));
    expect(warning?.message).toContain('the command can replace it');
    expect(filesystemAccess(resolved, join(home, 'dotfiles/bashrc')).access).toBe('read-only');
  });

  test('the same symlink outside any writable directory is not reported', () => {
    expect(resolve({}, { home: join(ROOT, 'linked-home') }).warnings.filter((each) => each.code === 'protected-symlink')).toEqual([]);
  });

  test('no warnings for a plain policy', () => {
    expect(resolve({ denyRead: ['~/secrets'], allowRead: ['~/.aws/config'], allowWrite: ['~/.npm'], denyWrite: ['../.env'] }).warnings).toEqual([]);
  });
});

describe('refused contexts and policies', () => {
  test.each([
    ['cwd inside a default hidden directory', {}, { cwd: join(HOME, '.aws/cli') }, `the working directory ${join(HOME, '.aws/cli')} is hidden in the jail (hidden by default: AWS credentials (~/.aws); filesystem.allowRead reopens it): run the command from another directory, or add it to filesystem.allowRead`],
    ['cwd inside the CA directory', {}, { cwd: CA }, `the working directory ${CA} is hidden in the jail (never visible in the jail: srt-gw's own secrets and state (${CA})): run the command from another directory`],
    ['cwd is "/"', {}, { cwd: '/' }, 'the working directory is "/", and it is always writable: run the command from a project directory'],
    ['cwd does not exist', {}, { cwd: join(ROOT, 'missing') }, `the working directory ${join(ROOT, 'missing')} does not exist or is not a directory`],
    ['cwd is relative', {}, { cwd: 'project' }, 'the working directory must be an absolute path (got "project")'],
    ['allowWrite "/"', { allowWrite: ['/'] }, {}, `filesystem.allowWrite[0] "/" (${join(POLICY_DIR, 'policy.yaml')}:5:1) is "/": that would make the whole filesystem writable; name the directories the command needs`],
    ['allowWrite that resolves to "/"', { allowWrite: ['../../../../../../../../..'] }, {}, 'is "/": that would make the whole filesystem writable'],
    ['denyRead "/"', { denyRead: ['/'] }, {}, 'is "/": that would hide the whole filesystem, the command itself included'],
  ] as const)('%s', (_name, lists, context, message) => {
    const error = errorOf(() => resolve(lists, context));
    expect(error.code).toBe(ErrorCodes.JAIL_FILESYSTEM_INVALID);
    expect(error.message).toContain(message);
  });

  test('a hidden cwd is fine once allowRead reopens it', () => {
    expect(resolve({ allowRead: ['~/.aws/cli'] }, { cwd: join(HOME, '.aws/cli') }).cwd).toBe(join(HOME, '.aws/cli'));
  });
});

describe('resolved rules', () => {
  test('home and cwd are canonical', () => {
    const resolved = resolve({}, { home: join(ROOT, 'home-link'), cwd: join(ROOT, 'home-link/alias/') });
    expect({ home: resolved.home, cwd: resolved.cwd }).toEqual({ home: HOME, cwd: PROJECT });
  });

  test('each policy rule keeps where it came from and says why', () => {
    const rule = resolve({ denyRead: ['~/secrets'] }).rules.find((each) => each.origin.kind === 'policy');
    expect(rule).toEqual<FilesystemRule>({
      path: join(HOME, 'secrets'),
      effect: 'hide',
      origin: { kind: 'policy', key: 'denyRead', index: 0, written: '~/secrets', source: { file: join(POLICY_DIR, 'policy.yaml'), line: 5, column: 1 } },
      reason: `hidden by filesystem.denyRead[0] "~/secrets" (${join(POLICY_DIR, 'policy.yaml')}:5:1)`,
      exists: true,
      kind: 'directory',
    });
  });

  test('a missing path is recorded with the kind its spelling asks for', () => {
    const rules = resolve({ denyRead: ['~/later-dir/', '~/later-file'] }).rules;
    expect(rules.find((rule) => rule.path === join(HOME, 'later-dir'))).toMatchObject({ exists: false, kind: 'directory' });
    expect(rules.find((rule) => rule.path === join(HOME, 'later-file'))).toMatchObject({ exists: false, kind: 'file' });
  });

  test('points come shallowest first, so a backend mounting in order lets deeper rules win', () => {
    const paths = resolve({ allowWrite: ['~/.npm'], denyRead: ['~/secrets'] }).points.map((point) => point.path);
    const depths = paths.map((path) => (path === '/' ? 0 : path.split('/').length - 1));
    expect(depths).toEqual([...depths].sort((a, b) => a - b));
    expect(new Set(paths).size).toBe(paths.length);
  });

  test('parents of a protected path are anchors when the command could rename them', () => {
    const points = resolve({}, { cwd: HOME }).points;
    const anchors = points.filter((point) => point.anchor).map((point) => point.path);
    // ~/.config holds ~/.config/fish; project/policy holds the policy file (alwaysReadOnly); home
    // itself is cwd, bound already, and its parent is read-only.
    expect(anchors).toEqual(expect.arrayContaining([join(HOME, '.config'), POLICY_DIR, PROJECT]));
    expect(anchors).not.toContain(HOME);
    expect(anchors).not.toContain(join(ROOT, 'opt'));
  });

  test('no anchors where nothing above a protection is writable', () => {
    expect(resolve({}, { cwd: join(ROOT, 'opt/corp') }).points.filter((point) => point.anchor && !point.path.startsWith(join(ROOT, 'opt/corp')))).toEqual([]);
  });
});
