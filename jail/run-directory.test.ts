import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, lchownSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSrtGwError } from '../errors.js';
import { scratchDirectories } from '../test/support/scratch-directories.js';
import { CLAIM_GRACE_MS, defaultParent, ensurePrivateParent, LIVENESS_SOCKET, RunDirectory, runDirectoryLiveness, sweepLeftovers } from './run-directory.js';

const scratchParent = scratchDirectories('srt-gw-rundir-test-');
const isRoot = process.getuid?.() === 0;
/** Above the kernel's pid_max ceiling (2^22): no process anywhere has this pid. */
const NO_SUCH_PID = 4194305;

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

/** Another process that listens on `socketPath`, as a run does on its liveness socket. */
async function holdSocket(socketPath: string): Promise<ChildProcess> {
  const script = "require('node:net').createServer((s) => s.destroy()).listen(process.argv[1], () => process.stdout.write('ready\\n'))";
  const child = spawn(process.execPath, ['-e', script, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  expect(chunk.toString()).toBe('ready\n');
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

function errorOf(action: () => unknown): Error {
  try {
    action();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected it to throw');
}

describe('RunDirectory', () => {
  it('is private (0700) and names this process, with gateway/, jail/ and a listening liveness socket inside', () => {
    const parent = scratchParent();
    const dir = RunDirectory.create(parent);
    expect(statSync(dir.path).mode & 0o777).toBe(0o700);
    expect(dir.path).toContain(`srt-gw-run-${process.pid}-`);
    expect(dir.parent).toBe(parent);
    expect(statSync(dir.gatewayDir).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(dir.path, LIVENESS_SOCKET)).isSocket()).toBe(true);
    expect(readdirSync(parent)).toEqual([dir.path.slice(parent.length + 1)]); // no claiming directory left
    const file = dir.writeJailFile('rules.nft', 'x');
    expect(statSync(file).mode & 0o777).toBe(0o444);
    expect(statSync(dir.writeJailFile('empty', '', 0)).mode & 0o777).toBe(0);
    dir.dispose();
    dir.dispose(); // twice is fine
    expect(existsSync(dir.path)).toBe(false);
  });

  it('reports a jail file it cannot write as an error saying what to check, not a raw stack', () => {
    const dir = RunDirectory.create(scratchParent());
    try {
      rmSync(dir.jailDir, { recursive: true });
      const error = errorOf(() => dir.writeJailFile('hosts', 'x'));
      expect(isSrtGwError(error, ErrorCodes.JAIL_UNAVAILABLE), String(error)).toBe(true);
      expect(error.message).toMatch(/cannot write .*\/jail\/hosts for the jail: ENOENT/);
    } finally {
      dir.dispose();
    }
  });

  it('creates a missing parent 0700', () => {
    const parent = join(scratchParent(), 'srt-gw-1000');
    RunDirectory.create(parent).dispose();
    expect(statSync(parent).mode & 0o777).toBe(0o700);
  });
});

describe('the sweep of run directories', () => {
  it('keeps a live run directory although the pid in its name names no process here (another PID namespace)', async () => {
    const parent = scratchParent();
    const dir = RunDirectory.create(parent);
    try {
      const renamed = join(parent, `srt-gw-run-${NO_SUCH_PID}-elsewhere`);
      renameSync(dir.path, renamed);
      expect(await runDirectoryLiveness(renamed)).toBe('alive');
      expect(await sweepLeftovers(parent)).toEqual([]);
      expect(existsSync(join(renamed, 'gateway'))).toBe(true);
    } finally {
      dir.dispose();
    }
  });

  it('removes the directory of a run killed with SIGKILL, and only that one', async () => {
    const parent = scratchParent();
    const dead = join(parent, `srt-gw-run-${process.pid}-killed`);
    const live = join(parent, 'srt-gw-run-1-live');
    for (const dir of [dead, live]) mkdirSync(join(dir, 'gateway'), { recursive: true });
    const killed = await holdSocket(join(dead, LIVENESS_SOCKET));
    await holdSocket(join(live, LIVENESS_SOCKET));
    mkdirSync(join(parent, 'something-else'));
    writeFileSync(join(parent, 'srt-gw-mount-points-1-x.json'), '{}');
    expect(await sweepLeftovers(parent)).toEqual([]); // control: both alive so far
    await kill(killed);
    expect(await runDirectoryLiveness(dead)).toBe('dead');
    expect(await sweepLeftovers(parent)).toEqual([dead]);
    expect(readdirSync(parent).sort()).toEqual(['something-else', 'srt-gw-mount-points-1-x.json', 'srt-gw-run-1-live']);
  });

  it('keeps the directory of a stopped run: the kernel answers for it', async () => {
    const parent = scratchParent();
    const stopped = join(parent, 'srt-gw-run-7-stopped');
    mkdirSync(stopped);
    const holder = await holdSocket(join(stopped, LIVENESS_SOCKET));
    holder.kill('SIGSTOP');
    try {
      expect(await runDirectoryLiveness(stopped)).toBe('alive');
      expect(await sweepLeftovers(parent)).toEqual([]);
    } finally {
      holder.kill('SIGCONT');
    }
  });

  // [entry, how it is made, expected decision now, expected decision after the claim grace]
  const cases: [string, (path: string) => Promise<unknown> | void, string, string][] = [
    ['a run directory with no socket', (path) => mkdirSync(path), 'dead', 'dead'],
    ['a run directory whose socket nobody listens on', (path) => holdSocket(join((mkdirSync(path), path), LIVENESS_SOCKET)).then(kill), 'dead', 'dead'],
    ['a claiming directory with no socket yet (a run between mkdir and listen)', (path) => mkdirSync(path), 'alive', 'dead'],
    ['a claiming directory whose socket listens', (path) => holdSocket(join((mkdirSync(path), path), LIVENESS_SOCKET)), 'alive', 'alive'],
    ['a file with a run directory name', (path) => writeFileSync(path, ''), 'not-a-run-directory', 'not-a-run-directory'],
    ['a symlink with a run directory name', (path) => symlinkSync(tmpdir(), path), 'not-a-run-directory', 'not-a-run-directory'],
  ];
  it.each(cases)('%s', async (what, make, now, later) => {
    const parent = scratchParent();
    const path = join(parent, what.startsWith('a claiming') ? 'srt-gw-new-9-abc' : 'srt-gw-run-9-abc');
    await make(path);
    expect(await runDirectoryLiveness(path)).toBe(now);
    expect(await runDirectoryLiveness(path, Date.now() + CLAIM_GRACE_MS + 1_000)).toBe(later);
    expect(await sweepLeftovers(parent)).toEqual(now === 'dead' ? [path] : []);
  });
});

describe('the parent of the run directories', () => {
  it('refuses a symlink (planted by someone else) and never follows it', () => {
    const scratch = scratchParent();
    const elsewhere = join(scratch, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    const parent = join(scratch, 'srt-gw-0');
    symlinkSync(elsewhere, parent);
    const error = errorOf(() => RunDirectory.create(parent));
    expect(isSrtGwError(error, ErrorCodes.JAIL_UNAVAILABLE), String(error)).toBe(true);
    expect(error.message).toMatch(/is a symbolic link.*remove it/);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  it('refuses a parent others can enter, saying how to fix it', () => {
    const parent = join(scratchParent(), 'srt-gw-0');
    mkdirSync(parent);
    chmodSync(parent, 0o755);
    const error = errorOf(() => RunDirectory.create(parent));
    expect(isSrtGwError(error, ErrorCodes.JAIL_UNAVAILABLE), String(error)).toBe(true);
    expect(error.message).toContain(`has mode 0755; it must be private to you: chmod 700 ${parent}`);
    expect(readdirSync(parent)).toEqual([]);
  });

  it('refuses a parent in a directory anyone can write that lacks the sticky bit', () => {
    const base = scratchParent();
    chmodSync(base, 0o777);
    const error = errorOf(() => ensurePrivateParent(join(base, 'srt-gw-0')));
    expect(isSrtGwError(error, ErrorCodes.JAIL_UNAVAILABLE), String(error)).toBe(true);
    expect(error.message).toMatch(/lacks the sticky bit/);
  });

  it('fails with a message, not a stack, when the base does not exist or the path is too long for a socket', () => {
    const missing = errorOf(() => RunDirectory.create('/nonexistent-srt-gw-base/srt-gw-0'));
    expect(isSrtGwError(missing, ErrorCodes.JAIL_UNAVAILABLE), String(missing)).toBe(true);
    expect(missing.message).toMatch(/cannot be made: ENOENT.*set XDG_RUNTIME_DIR or TMPDIR/);
    const long = join(scratchParent(), 'x'.repeat(80));
    const tooLong = errorOf(() => RunDirectory.create(long));
    expect(isSrtGwError(tooLong, ErrorCodes.JAIL_UNAVAILABLE), String(tooLong)).toBe(true);
    expect(tooLong.message).toMatch(/too long.*set XDG_RUNTIME_DIR or TMPDIR to a shorter directory/);
  });

  // Under CI the tests run as root, so this never skips there.
  it.skipIf(!isRoot)('refuses a parent that belongs to another user (needs root to make one; skipped otherwise)', () => {
    const parent = join(scratchParent(), 'srt-gw-0');
    mkdirSync(parent, { mode: 0o700 });
    lchownSync(parent, 65534, 65534);
    const error = errorOf(() => RunDirectory.create(parent));
    expect(isSrtGwError(error, ErrorCodes.JAIL_UNAVAILABLE), String(error)).toBe(true);
    expect(error.message).toMatch(/belongs to uid 65534, not to you \(uid 0\)/);
    expect(readdirSync(parent)).toEqual([]);
  });
});

describe('defaultParent', () => {
  it('is srt-gw-<uid> in $XDG_RUNTIME_DIR when it is an absolute path', () => {
    expect(defaultParent({ XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux', 1000)).toBe('/run/user/1000/srt-gw-1000');
    expect(defaultParent({ XDG_RUNTIME_DIR: 'relative/dir' }, 'linux', 1000)).toBe('/dev/shm/srt-gw-1000');
  });

  it('on Linux is in the tmpfs /dev/shm, unless TMPDIR names another place', () => {
    expect(defaultParent({}, 'linux', 0)).toBe('/dev/shm/srt-gw-0');
    expect(defaultParent({ TMPDIR: '/var/tmp/' }, 'linux', 0)).toBe('/var/tmp/srt-gw-0');
  });

  it('elsewhere is in the system temp dir', () => {
    expect(defaultParent({}, 'darwin', 501)).toBe(join(tmpdir(), 'srt-gw-501'));
  });

  it('differs between users', () => {
    expect(defaultParent({}, 'linux', 0)).not.toBe(defaultParent({}, 'linux', 1002));
  });
});
