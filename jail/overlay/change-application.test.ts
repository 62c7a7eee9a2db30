// Landing a reviewed-writes run's changes on real directories: the review applies what is safe
// and records the rest; `changes apply` takes held ones, one path or all, and refuses to overwrite
// what the host changed after the run started; each change replaces the host entry whole
// (symlinks replaced, never followed; no set-user-ID bits). Whiteouts and opaque directories need
// a real overlay: test/e2e/overlay-writes.test.ts.
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SrtGwError } from '../../errors.js';
import { applyChange, applyHeldChanges, heldChanges, reviewChangeSet, upperPathOf, type ReviewOptions } from './change-application.js';
import { ChangeSet, type Change } from './held-changes-store.js';

const BASE = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-change-application-')));
afterAll(() => rmSync(BASE, { recursive: true, force: true }));

/** File times come from a coarse clock: a change made this long after a time stamp is after it. */
function tick(): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60);
}

function put(path: string, text = 'x\n', mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

function read(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

let made = 0;

interface Fixture {
  host: string;
  home: string;
  state: string;
  set: ChangeSet;
  /** Where a host path's new content goes in the upper layer. */
  upper: (path: string) => string;
}

/**
 * A host directory with `files` (made before the run starts) and a change set over it. The run
 * starts a tick after the files were made, so none of them counts as changed during the run.
 */
function fixture(files: Record<string, string | [text: string, mode: number]> = {}, deletes: 'apply' | 'hold' = 'apply'): Fixture {
  made += 1;
  const dir = join(BASE, String(made));
  const host = join(dir, 'host');
  const home = join(dir, 'home');
  mkdirSync(host, { recursive: true });
  mkdirSync(home);
  for (const [path, content] of Object.entries(files)) {
    if (typeof content === 'string') put(join(host, path), content);
    else put(join(host, path), content[0], content[1]);
  }
  tick();
  const state = join(dir, 'state');
  const set = ChangeSet.create(state, { startedAtMs: Date.now(), command: ['true'], cwd: host, roots: [host], deletes });
  return { host, home, state, set, upper: (path) => join(set.upperDir(0), path) };
}

function options(f: Fixture): Omit<ReviewOptions, 'finished'> {
  return { home: f.home, opaqueDirectories: () => new Set() };
}

function review(f: Fixture, finished = true) {
  return reviewChangeSet(f.set, { ...options(f), finished });
}

function paths(changes: readonly Change[], f: Fixture): string[] {
  return changes.map((change) => change.path.slice(f.host.length + 1)).sort();
}

function errorOf(run: () => unknown): SrtGwError {
  try {
    run();
  } catch (error) {
    if (error instanceof SrtGwError) return error;
    throw error;
  }
  throw new Error('expected an SrtGwError');
}

describe('reviewChangeSet', () => {
  it('applies new and edited files and new directories, holds the rest, and keeps only what is held in the upper layer', () => {
    const f = fixture({ 'a.txt': 'one\n', '.git/HEAD': 'ref: refs/heads/main\n' });
    put(f.upper('a.txt'), 'two\n');
    put(f.upper('made/deep/new.txt'), 'new\n');
    put(f.upper('tool'), '#!/bin/sh\n', 0o755);
    put(f.upper('.git/hooks/pre-commit'), '#!/bin/sh\n');
    const outcome = review(f);
    expect(paths(outcome.applied, f)).toEqual(['a.txt', 'made', 'made/deep', 'made/deep/new.txt']);
    expect(outcome.held.map((change) => [change.path.slice(f.host.length + 1), change.reason])).toEqual([
      ['.git/hooks', expect.stringMatching(/hook/) as unknown],
      ['.git/hooks/pre-commit', expect.stringMatching(/inside .*\.git\/hooks, which is held/) as unknown],
      ['tool', 'a new executable bit: the host could run it'],
    ]);
    expect(read(join(f.host, 'a.txt'))).toBe('two\n');
    expect(read(join(f.host, 'made/deep/new.txt'))).toBe('new\n');
    expect(read(join(f.host, 'tool'))).toBeNull();
    expect(read(join(f.host, '.git/hooks/pre-commit'))).toBeNull();
    // Applied entries left the upper layer (moved, not copied); held ones stayed.
    expect(existsSync(f.upper('a.txt'))).toBe(false);
    expect(existsSync(f.upper('made'))).toBe(false);
    expect(read(f.upper('tool'))).toBe('#!/bin/sh\n');
    const reopened = ChangeSet.open(f.state, f.set.id);
    expect(reopened.status).toBe('held');
    expect(reopened.record.held).toEqual(outcome.held);
  });

  it('removes the change set when nothing is held', () => {
    const f = fixture();
    put(f.upper('new.txt'));
    const outcome = review(f);
    expect(outcome.held).toEqual([]);
    expect(existsSync(f.set.dir)).toBe(false);
    expect(ChangeSet.list(f.state)).toEqual([]);
  });

  it('holds, as a conflict, a file the host changed while the command ran; the host keeps its version', () => {
    const f = fixture({ 'a.txt': 'before\n', 'b.txt': 'before\n' });
    tick();
    writeFileSync(join(f.host, 'a.txt'), 'host edit\n');
    put(f.upper('a.txt'), 'jail edit\n');
    put(f.upper('b.txt'), 'jail edit\n');
    const outcome = review(f);
    expect(outcome.held).toEqual([expect.objectContaining({ path: join(f.host, 'a.txt'), reason: 'changed on the host while the command ran: a conflict' })]);
    expect(read(join(f.host, 'a.txt'))).toBe('host edit\n');
    expect(read(join(f.host, 'b.txt'))).toBe('jail edit\n');
  });

  it('holds everything of a run that did not finish and marks it interrupted', () => {
    const f = fixture();
    put(f.upper('new.txt'));
    const outcome = review(f, false);
    expect(outcome.applied).toEqual([]);
    expect(outcome.held).toEqual([expect.objectContaining({ path: join(f.host, 'new.txt'), reason: expect.stringMatching(/did not finish/) as unknown })]);
    expect(read(join(f.host, 'new.txt'))).toBeNull();
    expect(ChangeSet.open(f.state, f.set.id).status).toBe('interrupted');
  });

  it('holds a symlink out of the writable directory and applies one inside it', () => {
    const f = fixture({ 'a.txt': 'a\n' });
    mkdirSync(f.set.upperDir(0), { recursive: true });
    symlinkSync('a.txt', f.upper('in'));
    symlinkSync('/etc/passwd', f.upper('out'));
    const outcome = review(f);
    expect(paths(outcome.applied, f)).toEqual(['in']);
    expect(outcome.held).toEqual([expect.objectContaining({ path: join(f.host, 'out'), kind: 'symlink', reason: expect.stringMatching(/symlink to \/etc\/passwd, outside/) as unknown })]);
    expect(readlinkSync(join(f.host, 'in'))).toBe('a.txt');
    expect(lstatSync(join(f.host, 'out'), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('an edited script keeps its executable bit; a chmod +x on the host file is held', () => {
    const f = fixture({ 'run.sh': ['#!/bin/sh\n', 0o755], 'plain.sh': '#!/bin/sh\n' });
    put(f.upper('run.sh'), '#!/bin/sh\necho\n', 0o755);
    put(f.upper('plain.sh'), '#!/bin/sh\n', 0o755);
    const outcome = review(f);
    expect(paths(outcome.applied, f)).toEqual(['run.sh']);
    expect(outcome.held).toEqual([expect.objectContaining({ path: join(f.host, 'plain.sh'), reason: 'a new executable bit: the host could run it' })]);
    expect(statSync(join(f.host, 'run.sh')).mode & 0o777).toBe(0o755);
    expect(statSync(join(f.host, 'plain.sh')).mode & 0o777).toBe(0o644);
  });
});

describe('applyHeldChanges', () => {
  /** A reviewed run holding a new executable, a hook, and a new .vscode directory with a file. */
  function held(): Fixture {
    const f = fixture({ '.git/config': '[core]\n' });
    put(f.upper('tool'), '#!/bin/sh\n', 0o755);
    put(f.upper('.git/config'), '[core]\n\tfsmonitor = ./evil\n');
    put(f.upper('.vscode/settings.json'), '{}\n');
    review(f);
    return f;
  }

  it('applies one path given relative to the run directory, and keeps the rest held', () => {
    const f = held();
    const applied = applyHeldChanges(ChangeSet.open(f.state, f.set.id), ['tool'], options(f));
    expect(paths(applied, f)).toEqual(['tool']);
    expect(read(join(f.host, 'tool'))).toBe('#!/bin/sh\n');
    expect(statSync(join(f.host, 'tool')).mode & 0o777).toBe(0o755);
    expect(read(join(f.host, '.git/config'))).toBe('[core]\n');
    const left = ChangeSet.open(f.state, f.set.id);
    expect(paths(left.record.held!, f)).toEqual(['.git/config', '.vscode', '.vscode/settings.json']);
    expect(existsSync(f.upper('tool'))).toBe(false);
  });

  it('applying a file inside a held new directory applies the directory first', () => {
    const f = held();
    const applied = applyHeldChanges(ChangeSet.open(f.state, f.set.id), [join(f.host, '.vscode/settings.json')], options(f));
    expect(applied.map((change) => change.path)).toEqual([join(f.host, '.vscode'), join(f.host, '.vscode/settings.json')]);
    expect(read(join(f.host, '.vscode/settings.json'))).toBe('{}\n');
  });

  it('applying everything removes the change set', () => {
    const f = held();
    const applied = applyHeldChanges(ChangeSet.open(f.state, f.set.id), [], options(f));
    expect(paths(applied, f)).toEqual(['.git/config', '.vscode', '.vscode/settings.json', 'tool']);
    expect(read(join(f.host, '.git/config'))).toBe('[core]\n\tfsmonitor = ./evil\n');
    expect(existsSync(f.set.dir)).toBe(false);
  });

  it('refuses a path that is not held, applying nothing', () => {
    const f = held();
    const error = errorOf(() => applyHeldChanges(ChangeSet.open(f.state, f.set.id), ['tool', 'elsewhere.txt'], options(f)));
    expect(error.message).toBe(`${join(f.host, 'elsewhere.txt')} is not among the held changes of ${f.set.id}; srt-gw changes show ${f.set.id} lists them`);
    expect(read(join(f.host, 'tool'))).toBeNull();
  });

  it('refuses to overwrite what the host changed since the run started, unless told to', () => {
    const f = held();
    tick();
    writeFileSync(join(f.host, '.git/config'), '[core]\n\tbare = false\n');
    const set = ChangeSet.open(f.state, f.set.id);
    const error = errorOf(() => applyHeldChanges(set, [], options(f)));
    expect(error.code).toBe('SRTGW_CHANGES_INVALID');
    expect(error.message).toContain(`the host changed ${join(f.host, '.git/config')} after the run started`);
    expect(error.message).toContain('--force');
    // Nothing at all was applied, not even the paths without a conflict.
    expect(read(join(f.host, 'tool'))).toBeNull();
    expect(read(join(f.host, '.git/config'))).toBe('[core]\n\tbare = false\n');
    expect(paths(applyHeldChanges(set, ['tool'], options(f)), f)).toEqual(['tool']);
    expect(paths(applyHeldChanges(ChangeSet.open(f.state, f.set.id), ['.git/config'], options(f), true), f)).toEqual(['.git/config']);
    expect(read(join(f.host, '.git/config'))).toBe('[core]\n\tfsmonitor = ./evil\n');
  });

  it('refuses a run that is still going', () => {
    const f = fixture();
    put(f.upper('new.txt'));
    expect(errorOf(() => applyHeldChanges(f.set, [], options(f))).message).toMatch(/still running/);
    expect(read(join(f.host, 'new.txt'))).toBeNull();
  });

  it('an interrupted run is reviewed, all held, the first time its changes are asked for', () => {
    const f = fixture();
    put(f.upper('new.txt'), 'new\n');
    f.set.update({ status: 'interrupted' });
    const set = ChangeSet.open(f.state, f.set.id);
    expect(heldChanges(set, options(f))).toEqual([expect.objectContaining({ path: join(f.host, 'new.txt'), reason: expect.stringMatching(/did not finish/) as unknown })]);
    expect(read(join(f.host, 'new.txt'))).toBeNull();
    expect(paths(applyHeldChanges(ChangeSet.open(f.state, f.set.id), ['new.txt'], options(f)), f)).toEqual(['new.txt']);
    expect(read(join(f.host, 'new.txt'))).toBe('new\n');
  });
});

describe('applyChange', () => {
  const change = (f: Fixture, path: string, kind: Change['kind']): Change => ({ path: join(f.host, path), root: f.host, layer: 0, kind });

  it('replaces a host symlink with the file, never writing through it', () => {
    const f = fixture({ 'target.txt': 'outside\n' });
    symlinkSync(join(f.host, 'target.txt'), join(f.host, 'link'));
    put(f.upper('link'), 'jail\n');
    applyChange(change(f, 'link', 'file'), f.upper('link'));
    expect(lstatSync(join(f.host, 'link')).isFile()).toBe(true);
    expect(read(join(f.host, 'link'))).toBe('jail\n');
    expect(read(join(f.host, 'target.txt'))).toBe('outside\n');
  });

  it('replaces a host file with a symlink, and a symlink with another', () => {
    const f = fixture({ 'a.txt': 'a\n', 'b.txt': 'b\n' });
    symlinkSync('b.txt', join(f.host, 'link'));
    mkdirSync(f.set.upperDir(0), { recursive: true });
    symlinkSync('b.txt', f.upper('a.txt'));
    symlinkSync('a.txt', f.upper('link'));
    applyChange(change(f, 'a.txt', 'symlink'), f.upper('a.txt'));
    applyChange(change(f, 'link', 'symlink'), f.upper('link'));
    expect(readlinkSync(join(f.host, 'a.txt'))).toBe('b.txt');
    expect(readlinkSync(join(f.host, 'link'))).toBe('a.txt');
    expect(read(join(f.host, 'b.txt'))).toBe('b\n');
    expect(lstatSync(f.upper('link'), { throwIfNoEntry: false })).toBeUndefined();
  });

  it('never applies set-user-ID or set-group-ID bits', () => {
    const f = fixture();
    put(f.upper('tool'), '#!/bin/sh\n', 0o6755);
    applyChange(change(f, 'tool', 'file'), f.upper('tool'));
    expect(statSync(join(f.host, 'tool')).mode & 0o7777).toBe(0o755);
  });

  it('a file replaces a host directory, a directory a host file', () => {
    const f = fixture({ 'dir/inner.txt': 'inner\n', 'file': 'f\n' });
    put(f.upper('dir'), 'now a file\n');
    mkdirSync(f.upper('file'));
    applyChange(change(f, 'dir', 'file'), f.upper('dir'));
    applyChange(change(f, 'file', 'directory'), f.upper('file'));
    expect(read(join(f.host, 'dir'))).toBe('now a file\n');
    expect(lstatSync(join(f.host, 'file')).isDirectory()).toBe(true);
  });

  it('a deletion removes a file or a whole directory', () => {
    const f = fixture({ 'gone.txt': 'x\n', 'tree/a/b.txt': 'x\n' });
    applyChange(change(f, 'gone.txt', 'delete'), undefined);
    applyChange(change(f, 'tree', 'delete'), undefined);
    expect(existsSync(join(f.host, 'gone.txt'))).toBe(false);
    expect(existsSync(join(f.host, 'tree'))).toBe(false);
  });

  it('refuses devices and content that is gone from the change set', () => {
    const f = fixture();
    expect(errorOf(() => applyChange(change(f, 'fifo', 'special'), undefined)).message).toMatch(/device, FIFO or socket/);
    expect(errorOf(() => applyChange(change(f, 'lost.txt', 'file'), undefined)).message).toMatch(/no longer in its change set; drop the change set/);
    expect(upperPathOf(f.set, change(f, 'lost.txt', 'file'))).toBeUndefined();
  });

  const otherFilesystem = existsSync('/dev/shm') && statSync('/dev/shm').dev !== statSync(BASE).dev;
  it.skipIf(!otherFilesystem)('across filesystems, copies beside the host file and renames it over, keeping mode and mtime', () => {
    const f = fixture({ 'a.txt': 'old\n' });
    const elsewhere = mkdtempSync('/dev/shm/srt-gw-change-application-');
    try {
      const upper = join(elsewhere, 'a.txt');
      put(upper, 'new\n', 0o640);
      const mtime = new Date('2026-01-02T03:04:05Z');
      utimesSync(upper, mtime, mtime);
      applyChange(change(f, 'a.txt', 'file'), upper);
      expect(read(join(f.host, 'a.txt'))).toBe('new\n');
      expect(statSync(join(f.host, 'a.txt')).mode & 0o777).toBe(0o640);
      expect(statSync(join(f.host, 'a.txt')).mtimeMs).toBe(mtime.getTime());
      expect(existsSync(upper)).toBe(false);
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});
