// Reviewed writes (`srt-gw run --write-mode overlay`, filesystem.writeMode: overlay): in a real
// git repository and a real jail, the command's writes reach the host only after the run, and
// only when safe — edits, new and deleted files and git's commit data are applied; hooks, git
// configuration (a nested repository's too), commondir, husky scripts and startup files are held
// for `srt-gw changes`; a file the host changed meanwhile is held as a conflict; a run whose srt-gw
// is killed applies nothing. As root and as an ordinary user.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { CLI_PATH, JAIL_PATH, ensureBuilt, hostProcessAlive, srtGwRun, startSrtGwRun, type SrtGwRunOptions, type SrtGwRunResult } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('setpriv'), missingCommand('git'), missingCommand('diff'));

const NOBODY = 65534;
const AS_NOBODY = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--inh-caps=-all'];
const GIT_ENV = { PATH: JAIL_PATH, HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.test', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.test' };

type Who = 'root' | 'nobody';

interface HeldChange {
  path: string;
  kind: string;
  reason?: string;
}

interface ListedChangeSet {
  id: string;
  status: string;
  held: HeldChange[];
}

let root = '';
let made = 0;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'safe.directory=*', ...args], { cwd, env: GIT_ENV, encoding: 'utf8' });
}

interface Setup {
  who: Who;
  repo: string;
  home: string;
  state: string;
  policy: string;
}

/** A git repository with one commit (a.txt, gone.txt, dir/inner.txt) and a policy beside it. */
function setup(who: Who, filesystem = 'filesystem:\n  writeMode: overlay\n'): Setup {
  made += 1;
  const base = join(root, `${made}-${who}`);
  const repo = join(base, 'repo');
  const home = join(base, 'home');
  const state = join(base, 'state');
  for (const dir of [repo, home, state]) mkdirSync(dir, { recursive: true });
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'a.txt'), 'one\n');
  writeFileSync(join(repo, 'gone.txt'), 'to be deleted\n');
  mkdirSync(join(repo, 'dir'));
  writeFileSync(join(repo, 'dir', 'inner.txt'), 'inner\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'first');
  const policy = join(state, 'policy.yaml');
  writeFileSync(policy, `version: 1\nrules: []\n${filesystem}`);
  if (who === 'nobody') execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, base]);
  return { who, repo, home, state, policy };
}

function env(s: Setup): NodeJS.ProcessEnv {
  return { ...GIT_ENV, HOME: s.home, XDG_STATE_HOME: join(s.state, 'xdg-state'), LANG: 'C.UTF-8', TERM: 'dumb' };
}

function runOptions(s: Setup, script: string, flags: string[] = []): SrtGwRunOptions {
  return {
    flags: ['--policy', s.policy, '--ca-dir', join(s.state, 'ca'), ...flags],
    command: ['sh', '-c', script],
    cwd: s.repo,
    env: env(s),
    timeoutMs: 120_000,
    ...(s.who === 'nobody' ? { wrapper: AS_NOBODY } : {}),
  };
}

async function run(s: Setup, script: string, flags: string[] = []): Promise<SrtGwRunResult> {
  const result = await srtGwRun(runOptions(s, script, flags));
  expect(result.timedOut, `srt-gw run timed out\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(false);
  return result;
}

/** `srt-gw changes ARGS` as the setup's user. */
function changesCommand(s: Setup, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const argv = [...(s.who === 'nobody' ? AS_NOBODY : []), process.execPath, CLI_PATH, 'changes', ...args];
  return spawnSync(argv[0]!, argv.slice(1), { cwd: s.repo, env: env(s), encoding: 'utf8' });
}

/** `srt-gw changes ARGS` as the setup's user; returns its stdout, failing on a non-zero status. */
function changes(s: Setup, ...args: string[]): string {
  const result = changesCommand(s, ...args);
  expect(result.status, `srt-gw changes ${args.join(' ')}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(0);
  return result.stdout;
}

function listed(s: Setup): ListedChangeSet[] {
  return JSON.parse(changes(s, 'list', '--json')) as ListedChangeSet[];
}

function read(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

beforeAll(() => {
  if (skip !== null) return;
  ensureBuilt();
  // Not under /tmp: the jail's /tmp is private.
  root = realpathSync(mkdtempSync('/var/tmp/srt-gw-overlay-'));
  chmodSync(root, 0o755);
}, 300_000);

afterAll(() => {
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip !== null).each(['root', 'nobody'] as const)('reviewed writes, as %s', (who) => {
  it('applies new, edited and deleted files and git commits only after the run; the command sees its own writes', async () => {
    const s = setup(who);
    const running = startSrtGwRun({
      ...runOptions(s, 'echo two > a.txt && echo new > new.txt && rm gone.txt && mkdir -p made/deep && echo deep > made/deep/f.txt && git add -A && git commit -q -m "from the jail" && cat a.txt new.txt && echo ready && read line'),
      interactive: true,
    });
    await running.waitForStdout(/ready/, 60_000);
    expect(running.stdout()).toContain('two\nnew\n');
    // While the command runs, the host has none of it.
    expect(read(join(s.repo, 'a.txt'))).toBe('one\n');
    expect(read(join(s.repo, 'new.txt'))).toBeNull();
    expect(read(join(s.repo, 'gone.txt'))).toBe('to be deleted\n');
    expect(git(s.repo, 'log', '-1', '--format=%s').trim()).toBe('first');
    running.write('go\n');
    running.endInput();
    const result = await running.finished;
    expect(result.code, result.stderr).toBe(0);
    expect(read(join(s.repo, 'a.txt'))).toBe('two\n');
    expect(read(join(s.repo, 'new.txt'))).toBe('new\n');
    expect(read(join(s.repo, 'made/deep/f.txt'))).toBe('deep\n');
    expect(existsSync(join(s.repo, 'gone.txt'))).toBe(false);
    expect(git(s.repo, 'log', '-1', '--format=%s').trim()).toBe('from the jail');
    expect(git(s.repo, 'status', '--porcelain')).toBe('');
    expect(listed(s)).toEqual([]);
  }, 180_000);

  it('holds hooks, git configuration, commondir, a nested repository, husky scripts and .bashrc; changes apply takes one', async () => {
    const s = setup(who);
    const configBefore = read(join(s.repo, '.git/config'));
    const result = await run(
      s,
      [
        'printf "#!/bin/sh\\necho pwned\\n" > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit',
        'echo /elsewhere > .git/commondir',
        'printf "[core]\\n\\tfsmonitor = ./evil\\n" >> .git/config',
        'git init -q nested && printf "[core]\\n\\tfsmonitor = ./evil\\n" >> nested/.git/config',
        'mkdir -p .husky && printf "#!/bin/sh\\necho pwned\\n" > .husky/pre-commit',
        'echo "echo pwned" > .bashrc',
        'echo kept > plain.txt',
      ].join(' && '),
    );
    expect(result.code, result.stderr).toBe(0);
    const held = [...'.git/hooks/pre-commit .git/commondir .git/config nested/.git/config .husky/pre-commit .bashrc'.split(' ')];
    for (const path of held) expect(result.stderr, path).toContain(join(s.repo, path));
    expect(read(join(s.repo, '.git/hooks/pre-commit'))).toBeNull();
    expect(read(join(s.repo, '.git/commondir'))).toBeNull();
    expect(read(join(s.repo, '.git/config'))).toBe(configBefore);
    expect(read(join(s.repo, 'nested/.git/config'))).toBeNull();
    expect(read(join(s.repo, '.husky/pre-commit'))).toBeNull();
    expect(read(join(s.repo, '.bashrc'))).toBeNull();
    expect(read(join(s.repo, 'plain.txt'))).toBe('kept\n');
    // git itself runs no hook and no fsmonitor on the host.
    expect(git(s.repo, 'status', '--porcelain')).not.toContain('pwned');

    const [set] = listed(s);
    expect(set?.status).toBe('held');
    const paths = set!.held.map((change) => change.path);
    for (const path of held) expect(paths).toContain(join(s.repo, path));
    expect(set!.held.find((change) => change.path === join(s.repo, '.git/hooks/pre-commit'))?.reason).toMatch(/hook/);

    expect(changes(s, 'show', set!.id, '.git/config')).toMatch(/^\+\s*fsmonitor = \.\/evil$/m);
    changes(s, 'apply', set!.id, '.husky/pre-commit');
    expect(read(join(s.repo, '.husky/pre-commit'))).toBe('#!/bin/sh\necho pwned\n');
    const [after] = listed(s);
    expect(after!.held.map((change) => change.path)).not.toContain(join(s.repo, '.husky/pre-commit'));
    expect(after!.held.map((change) => change.path)).toContain(join(s.repo, '.git/config'));
    expect(read(join(s.repo, '.git/config'))).toBe(configBefore);
    changes(s, 'drop', set!.id);
    expect(listed(s)).toEqual([]);
    expect(read(join(s.repo, '.git/config'))).toBe(configBefore);
  }, 180_000);

  it('with deletes: hold, a deletion (a deleted and remade directory too) stays until applied', async () => {
    const s = setup(who, 'filesystem:\n  writeMode: overlay\n  deletes: hold\n');
    const result = await run(s, 'rm gone.txt && rm -r dir && mkdir dir && echo fresh > dir/fresh.txt && echo two > a.txt');
    expect(result.code, result.stderr).toBe(0);
    expect(read(join(s.repo, 'a.txt'))).toBe('two\n');
    expect(read(join(s.repo, 'dir/fresh.txt'))).toBe('fresh\n');
    expect(read(join(s.repo, 'gone.txt'))).toBe('to be deleted\n');
    expect(read(join(s.repo, 'dir/inner.txt'))).toBe('inner\n');
    const [set] = listed(s);
    expect(set!.held.map((change) => [change.path.slice(s.repo.length + 1), change.kind]).sort()).toEqual([
      ['dir/inner.txt', 'delete'],
      ['gone.txt', 'delete'],
    ]);
    changes(s, 'apply', set!.id);
    expect(existsSync(join(s.repo, 'gone.txt'))).toBe(false);
    expect(existsSync(join(s.repo, 'dir/inner.txt'))).toBe(false);
    expect(listed(s)).toEqual([]);
  }, 180_000);

  it('holds a file the host changed while the command ran, as a conflict; changes apply overwrites it only with --force', async () => {
    const s = setup(who);
    const running = startSrtGwRun({ ...runOptions(s, 'echo jail > a.txt && echo jail > other.txt && echo ready && read line'), interactive: true });
    await running.waitForStdout(/ready/, 60_000);
    writeFileSync(join(s.repo, 'a.txt'), 'host edit\n');
    running.write('go\n');
    running.endInput();
    const result = await running.finished;
    expect(result.code, result.stderr).toBe(0);
    expect(read(join(s.repo, 'a.txt'))).toBe('host edit\n');
    expect(read(join(s.repo, 'other.txt'))).toBe('jail\n');
    const [set] = listed(s);
    expect(set!.held).toEqual([expect.objectContaining({ path: join(s.repo, 'a.txt'), reason: expect.stringMatching(/conflict/) as unknown })]);
    const refused = changesCommand(s, 'apply', set!.id);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`the host changed ${join(s.repo, 'a.txt')} after the run started`);
    expect(read(join(s.repo, 'a.txt'))).toBe('host edit\n');
    expect(changes(s, 'apply', '--force', set!.id, 'a.txt')).toBe(`applied write ${join(s.repo, 'a.txt')}\n`);
    expect(read(join(s.repo, 'a.txt'))).toBe('jail\n');
    expect(listed(s)).toEqual([]);
  }, 180_000);

  it('applies nothing when srt-gw is killed mid-run; changes list shows the writes held', async () => {
    const s = setup(who);
    const running = startSrtGwRun({ ...runOptions(s, 'echo two > a.txt && echo new > new.txt && echo ready && sleep 600'), interactive: true });
    await running.waitForStdout(/ready/, 60_000);
    process.kill(running.pid, 'SIGKILL');
    await running.exited;
    const deadline = Date.now() + 60_000;
    // The jail dies with its parent (bubblewrap's --die-with-parent); wait until nothing of it runs.
    while (spawnSync('pgrep', ['-f', `${s.repo}`]).status === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(hostProcessAlive(running.pid)).toBe(false);
    expect(read(join(s.repo, 'a.txt'))).toBe('one\n');
    expect(read(join(s.repo, 'new.txt'))).toBeNull();
    const [set] = listed(s);
    expect(set?.status).toBe('interrupted');
    expect(set!.held.map((change) => change.path).sort()).toEqual([join(s.repo, 'a.txt'), join(s.repo, 'new.txt')]);
    expect(set!.held[0]?.reason).toMatch(/did not finish/);
    changes(s, 'apply', set!.id, 'new.txt');
    expect(read(join(s.repo, 'new.txt'))).toBe('new\n');
    expect(read(join(s.repo, 'a.txt'))).toBe('one\n');
  }, 180_000);

  // overlayfs renames a directory of the lower layer only with redirect_dir, which the kernel
  // refuses together with userxattr (the only way an unprivileged overlay keeps its metadata):
  // rename(2) fails with EXDEV, and tools fall back to copying and deleting (docs/overlay.md).
  it.skipIf(missingCommand('python3') !== null)('renaming a host directory fails with EXDEV; mv falls back to copy and delete, which the review applies as such', async () => {
    const s = setup(who);
    const rename = (from: string, to: string) => `python3 -c 'import errno, os, sys\ntry:\n    os.rename("${from}", "${to}"); print("rename ${from}: ok")\nexcept OSError as e:\n    print("rename ${from}:", errno.errorcode[e.errno])'`;
    const result = await run(s, [rename('dir', 'renamed'), 'mkdir mine && echo mine > mine/f.txt', rename('mine', 'mine2'), 'mv dir moved', 'cat moved/inner.txt'].join(' && '));
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe('rename dir: EXDEV\nrename mine: ok\ninner\n');
    expect(read(join(s.repo, 'moved/inner.txt'))).toBe('inner\n');
    expect(existsSync(join(s.repo, 'dir'))).toBe(false);
    expect(existsSync(join(s.repo, 'renamed'))).toBe(false);
    expect(read(join(s.repo, 'mine2/f.txt'))).toBe('mine\n');
    expect(existsSync(join(s.repo, 'mine'))).toBe(false);
    expect(listed(s)).toEqual([]);
    expect(git(s.repo, 'status', '--porcelain', '-uall').split('\n').filter(Boolean).sort()).toEqual([' D dir/inner.txt', '?? mine2/f.txt', '?? moved/inner.txt']);
  }, 180_000);

  it('with deletes: hold, a directory moved by mv is applied at its new path and its old path is one held deletion', async () => {
    const s = setup(who, 'filesystem:\n  writeMode: overlay\n  deletes: hold\n');
    const result = await run(s, 'mv dir moved');
    expect(result.code, result.stderr).toBe(0);
    expect(read(join(s.repo, 'moved/inner.txt'))).toBe('inner\n');
    expect(read(join(s.repo, 'dir/inner.txt'))).toBe('inner\n');
    const [set] = listed(s);
    expect(set!.held.map((change) => [change.path, change.kind])).toEqual([[join(s.repo, 'dir'), 'delete']]);
    changes(s, 'apply', set!.id, 'dir');
    expect(existsSync(join(s.repo, 'dir'))).toBe(false);
    expect(listed(s)).toEqual([]);
  }, 180_000);

  it('a held change whose record was altered to lead out of its directory is refused; drop removes the change set', async () => {
    const s = setup(who);
    const result = await run(s, 'echo "echo pwned" > .envrc');
    expect(result.code, result.stderr).toBe(0);
    const [set] = listed(s);
    const record = join(s.state, 'xdg-state', 'srt-gw', 'changes', set!.id, 'run.json');
    writeFileSync(record, readFileSync(record, 'utf8').replace(`"path": "${join(s.repo, '.envrc')}"`, `"path": "${s.repo}/../escaped"`));
    const apply = changesCommand(s, 'apply', set!.id);
    expect(apply.status).toBe(1);
    expect(apply.stderr).toContain(`is damaged: held[0].path "${s.repo}/../escaped" is not an absolute path without "." or ".."`);
    expect(existsSync(join(s.repo, '..', 'escaped'))).toBe(false);
    const list = changesCommand(s, 'list');
    expect(list.stdout).toBe('');
    expect(list.stderr).toContain(`held changes ${set!.id} not listed: their record is damaged`);
    // The overlay's work directory is left mode 000 by the kernel: drop opens it to remove it.
    changes(s, 'drop', set!.id);
    expect(existsSync(join(s.state, 'xdg-state', 'srt-gw', 'changes', set!.id))).toBe(false);
    expect(read(join(s.repo, '.envrc'))).toBeNull();
  }, 180_000);

  it('keeps a hidden path inside the working directory hidden under the overlay', async () => {
    const s = setup(who);
    mkdirSync(join(s.repo, 'secrets'));
    writeFileSync(join(s.repo, 'secrets', 'key'), 'TOP-SECRET\n');
    if (who === 'nobody') execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, join(s.repo, 'secrets')]);
    writeFileSync(s.policy, `version: 1\nrules: []\nfilesystem:\n  writeMode: overlay\n  denyRead: ["${join(s.repo, 'secrets')}"]\n`);
    const result = await run(s, 'cat secrets/key; ls -A secrets; echo done');
    expect(result.stdout).toContain('done');
    expect(result.stdout).not.toContain('TOP-SECRET');
    expect(result.stdout).not.toContain('key');
    expect(statSync(join(s.repo, 'secrets', 'key')).size).toBe('TOP-SECRET\n'.length);
  }, 180_000);
});
