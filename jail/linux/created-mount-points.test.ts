import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { scratchDirectories } from '../../test/support/scratch-directories.js';
import { PROTECTED_IN_WRITABLE_ROOTS } from '../filesystem/built-in-paths.js';
import { resolveFilesystemRules } from '../filesystem-rules.js';
import { RunDirectory } from '../run-directory.js';
import { CreatedMountPoints, sweepCreatedMountPoints } from './created-mount-points.js';

const scratch = scratchDirectories('srt-gw-mount-points-');
const runDirectories: RunDirectory[] = [];
afterEach(() => {
  for (const run of runDirectories.splice(0)) run.dispose();
});

/** A live run's directory (its liveness socket listens) in `parent`. */
function liveRun(parent: string): RunDirectory {
  const run = RunDirectory.create(parent);
  runDirectories.push(run);
  return run;
}

/** A project without .git, a home, and the directory records are kept in. */
function layout() {
  const root = realpathSync(scratch());
  const home = join(root, 'home');
  const cwd = join(root, 'project');
  const records = join(root, 'records');
  for (const dir of [home, cwd]) mkdirSync(dir);
  mkdirSync(records, { mode: 0o700 });
  // This run's directory: the run is live while its liveness socket listens.
  const runDirectory = liveRun(records).path;
  const rules = resolveFilesystemRules(undefined, { home, cwd, alwaysHidden: [], alwaysReadOnly: [], platform: 'linux' });
  return { root, home, cwd, records, runDirectory, rules };
}

/** What bubblewrap would make on the host for these mount points. */
function makeAsBubblewrap(paths: readonly string[]): void {
  for (const path of [...paths].reverse()) {
    if (existsSync(path)) continue;
    if (/\.(json)$/.test(path)) writeFileSync(path, '');
    else mkdirSync(path);
  }
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const result = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(result.stdout);
}

describe('CreatedMountPoints', () => {
  test('records the protections of missing names in the working directory, deepest first, before the run', async () => {
    const { cwd, records, runDirectory, rules } = layout();
    const created = CreatedMountPoints.record(rules, runDirectory);
    expect(created.paths).toEqual(expect.arrayContaining(['.git', '.mcp.json', '.vscode'].map((name) => join(cwd, name))));
    const files = readdirSync(records).filter((name) => name.endsWith('.json'));
    expect(files).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(records, files[0]!), 'utf8'))).toEqual({ pid: process.pid, runDirectory, paths: created.paths });
  });

  test('a missing directory above a protected path is recorded once: what lies below it is made in its tmpfs', async () => {
    const { cwd, runDirectory, home } = layout();
    const rules = resolveFilesystemRules(
      { denyRead: [], allowRead: [], allowWrite: [], denyWrite: [{ path: 'deep/er/file.txt', baseDirectory: cwd }] },
      { home, cwd, alwaysHidden: [], alwaysReadOnly: [], platform: 'linux' },
    );
    const created = CreatedMountPoints.record(rules, runDirectory);
    expect(created.paths).toContain(join(cwd, 'deep'));
    expect(created.paths.filter((path) => path.startsWith(`${cwd}/deep/`))).toEqual([]);
  });

  test('remove() takes away what is still empty, keeps what was filled, and the record; twice is harmless', async () => {
    const { cwd, records, runDirectory, rules } = layout();
    const created = CreatedMountPoints.record(rules, runDirectory);
    makeAsBubblewrap(created.paths);
    writeFileSync(join(cwd, '.mcp.json'), '{}');
    writeFileSync(join(cwd, '.vscode', 'settings.json'), '{}');
    await created.remove();
    await created.remove();
    expect(readdirSync(cwd).sort()).toEqual(['.mcp.json', '.vscode']);
    expect(readdirSync(records)).toEqual([basename(runDirectory)]);
  });

  test('a run with no missing protected path writes no record', async () => {
    const { cwd, home, records, runDirectory } = layout();
    mkdirSync(join(cwd, '.git'));
    for (const entry of PROTECTED_IN_WRITABLE_ROOTS) {
      if (entry.kind === 'directory') mkdirSync(join(cwd, entry.path));
      else if (entry.ifPresent !== true) writeFileSync(join(cwd, entry.path), '');
    }
    const rules = resolveFilesystemRules(undefined, { home, cwd, alwaysHidden: [], alwaysReadOnly: [], platform: 'linux' });
    expect(CreatedMountPoints.record(rules, runDirectory).paths).toEqual([]);
    expect(readdirSync(records)).toEqual([basename(runDirectory)]);
  });
});

describe('sweepCreatedMountPoints', () => {
  test("removes what a dead run recorded and left, and its record; a live run's record stays", async () => {
    const { cwd, records, runDirectory, rules } = layout();
    const live = CreatedMountPoints.record(rules, runDirectory);
    makeAsBubblewrap(live.paths);
    const dead = join(cwd, 'left-by-dead');
    mkdirSync(dead);
    writeFileSync(join(records, `srt-gw-mount-points-${deadPid()}-0.json`), JSON.stringify({ pid: deadPid(), runDirectory: join(records, 'srt-gw-run-gone'), paths: [dead] }));
    expect(await sweepCreatedMountPoints(records)).toEqual([dead]);
    expect(existsSync(dead)).toBe(false);
    expect(readdirSync(records).sort()).toEqual([basename(runDirectory), basename(live.recordPath!)].sort());
    for (const path of live.paths) expect(existsSync(path), path).toBe(true);
  });

  test('never removes a path a live run recorded, even when a dead run recorded it too', async () => {
    const { cwd, records, runDirectory, rules } = layout();
    const live = CreatedMountPoints.record(rules, runDirectory);
    makeAsBubblewrap(live.paths);
    const shared = join(cwd, '.git');
    writeFileSync(join(records, `srt-gw-mount-points-${deadPid()}-0.json`), JSON.stringify({ pid: deadPid(), runDirectory: join(records, 'srt-gw-run-gone'), paths: [shared] }));
    expect(await sweepCreatedMountPoints(records)).toEqual([]);
    expect(existsSync(shared)).toBe(true);
  });

  test('a run that mounts over paths another run recorded records them as its own, so they outlive the other', async () => {
    const { cwd, records, runDirectory, rules } = layout();
    const first = CreatedMountPoints.record(rules, runDirectory);
    makeAsBubblewrap(first.paths);
    // The second run sees the first one's empty mount points as existing paths.
    const secondDirectory = liveRun(records).path;
    const second = CreatedMountPoints.record(resolveFilesystemRules(undefined, { home: layout().home, cwd, alwaysHidden: [], alwaysReadOnly: [], platform: 'linux' }), secondDirectory);
    expect(second.paths).toEqual(expect.arrayContaining([join(cwd, '.git'), join(cwd, '.mcp.json')]));
    await first.remove();
    expect(existsSync(join(cwd, '.mcp.json'))).toBe(true);
    await second.remove();
    expect(readdirSync(cwd)).toEqual([]);
  });

  test('a run in another PID namespace is live while its directory exists, whatever its pid means here', async () => {
    const { cwd, records } = layout();
    const other = liveRun(records).path;
    const left = join(cwd, '.vscode');
    mkdirSync(left);
    writeFileSync(join(records, `srt-gw-mount-points-${deadPid()}-0.json`), JSON.stringify({ pid: deadPid(), runDirectory: other, paths: [left] }));
    expect(await sweepCreatedMountPoints(records)).toEqual([]);
    expect(existsSync(left)).toBe(true);
  });

  test('a run whose directory remains without a listening socket is over, even when its pid names a live process here', async () => {
    const { cwd, records } = layout();
    const killed = join(records, 'srt-gw-run-killed');
    mkdirSync(killed);
    const left = join(cwd, '.idea');
    mkdirSync(left);
    writeFileSync(join(records, 'srt-gw-mount-points-1-0.json'), JSON.stringify({ pid: process.pid, runDirectory: killed, paths: [left] }));
    expect(await sweepCreatedMountPoints(records)).toEqual([left]);
  });

  test('malformed records are skipped', async () => {
    const { records } = layout();
    writeFileSync(join(records, 'srt-gw-mount-points-1-x.json'), '{not json');
    writeFileSync(join(records, 'srt-gw-mount-points-2-x.json'), JSON.stringify({ pid: 'x', paths: [] }));
    expect(await sweepCreatedMountPoints(records)).toEqual([]);
  });
});
