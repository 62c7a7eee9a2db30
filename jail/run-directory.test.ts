import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scratchDirectories } from '../test/support/scratch-directories.js';
import { defaultParent, RunDirectory, sweepLeftovers } from './run-directory.js';

const scratchParent = scratchDirectories('srt-gw-rundir-test-');

describe('RunDirectory', () => {
  it('is private (0700) and names this process, with gateway/ and jail/ inside', () => {
    const parent = scratchParent();
    const dir = RunDirectory.create(parent);
    expect(statSync(dir.path).mode & 0o777).toBe(0o700);
    expect(dir.path).toContain(`srt-gw-run-${process.pid}-`);
    expect(statSync(dir.gatewayDir).mode & 0o777).toBe(0o700);
    const file = dir.writeJailFile('rules.nft', 'x');
    expect(statSync(file).mode & 0o777).toBe(0o444);
    expect(statSync(dir.writeJailFile('empty', '', 0)).mode & 0o777).toBe(0);
    dir.dispose();
    dir.dispose(); // twice is fine
    expect(existsSync(dir.path)).toBe(false);
  });

  it('sweeps directories of runs whose process is gone, and only those', () => {
    const parent = scratchParent();
    // pid 2^22+1 is above the kernel's pid_max ceiling, so no process can have it.
    const dead = join(parent, 'srt-gw-run-4194305-abc');
    const live = join(parent, `srt-gw-run-${process.pid}-def`);
    const other = join(parent, 'something-else');
    for (const dir of [dead, live, other]) mkdirSync(dir);
    expect(sweepLeftovers(parent)).toEqual([dead]);
    expect(readdirSync(parent).sort()).toEqual(['something-else', `srt-gw-run-${process.pid}-def`].sort());
  });
});

describe('defaultParent', () => {
  it('is $XDG_RUNTIME_DIR when it is an absolute path', () => {
    expect(defaultParent({ XDG_RUNTIME_DIR: '/run/user/1000' }, 'linux')).toBe('/run/user/1000');
    expect(defaultParent({ XDG_RUNTIME_DIR: 'relative/dir' }, 'linux')).toBe('/dev/shm');
  });

  it('on Linux is the tmpfs /dev/shm, unless TMPDIR names another place', () => {
    expect(defaultParent({}, 'linux')).toBe('/dev/shm');
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = '/var/tmp';
    try {
      expect(defaultParent({ TMPDIR: '/var/tmp' }, 'linux')).toBe('/var/tmp');
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
  });

  it('elsewhere is the system temp dir', () => {
    expect(defaultParent({}, 'darwin')).toBe(tmpdir());
  });
});

