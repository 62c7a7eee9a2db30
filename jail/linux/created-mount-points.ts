// The empty files and directories bubblewrap creates on the host as mount points for protections
// of paths that did not exist (.git, .mcp.json, .vscode in a project that has none: see
// jail/linux/bwrap-filesystem.ts). Each run records them beside its run directory before
// bubblewrap starts and removes them when its jail has ended; a run killed before it could
// (SIGKILL) leaves its record, and a later run removes what that record lists once the killed run
// is over — decided as for run directories (jail/run-directory.ts: its liveness socket, whatever
// PID namespace it ran in). Only entries that are still empty and ours are removed: anything a
// person or a later command put there stays.
//
// SECURITY: removing a path that is a mount point in a live jail detaches that jail's mount (the
// kernel allows unlinking a mount point of another mount namespace), and the protection with it.
// So a path another live run's record names is never removed (a record that appeared since the
// liveness probes counts as live); a run records, besides what it creates, every path it mounts
// over that another run recorded — test/e2e/jail-leftovers.test.ts.
import { existsSync, lstatSync, readdirSync, readFileSync, renameSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import type { ResolvedFilesystemRules } from '../filesystem-rules.js';
import { processExists, runDirectoryLiveness } from '../run-directory.js';
import { bwrapMountPointsCreated, bwrapMountPaths } from './bwrap-filesystem.js';

const PREFIX = 'srt-gw-mount-points-';
const SUFFIX = '.json';

interface RecordFile {
  readonly pid: number;
  /** The run's directory: the run is over once its liveness socket stops listening, or it is gone and so is the pid. */
  readonly runDirectory: string;
  /** Deepest first. */
  readonly paths: readonly string[];
}

/** What one run recorded; remove() once its jail has ended. */
export class CreatedMountPoints {
  private removed = false;

  private constructor(
    /** The record file, or null when the run creates and shares no mount point. */
    readonly recordPath: string | null,
    /** Deepest first: a file or directory before the directory holding it. */
    readonly paths: readonly string[],
  ) {}

  /**
   * Writes the record beside `runDirectory` (in the run directories' parent, private to the user)
   * before bubblewrap runs, so that a run killed with SIGKILL still says what it left.
   */
  static record(rules: ResolvedFilesystemRules, runDirectory: string): CreatedMountPoints {
    const parent = dirname(runDirectory);
    const created = withMissingParents(bwrapMountPointsCreated(rules));
    const others = new Set(readRecordFiles(parent).flatMap(({ record }) => record.paths));
    const shared = bwrapMountPaths(rules).filter((path) => others.has(path));
    const paths = [...new Set([...created, ...shared])].sort((a, b) => depthOf(b) - depthOf(a) || (a < b ? -1 : 1));
    if (paths.length === 0) return new CreatedMountPoints(null, paths);
    const recordPath = join(parent, `${PREFIX}${process.pid}-${randomBytes(6).toString('hex')}${SUFFIX}`);
    // Written whole under a temporary name: a sweep never reads half a record.
    const partial = `${recordPath}.partial`;
    writeFileSync(partial, JSON.stringify({ pid: process.pid, runDirectory, paths } satisfies RecordFile), { mode: 0o600 });
    renameSync(partial, recordPath);
    return new CreatedMountPoints(recordPath, paths);
  }

  /**
   * Removes what is still empty and no other live run relies on, then the record. Call it once the
   * jail has ended; safe to call twice; never rejects.
   */
  async remove(): Promise<void> {
    if (this.removed || this.recordPath === null) return;
    this.removed = true;
    const recordPath = this.recordPath;
    const others = readRecordFiles(dirname(recordPath)).filter(({ file }) => file !== recordPath);
    const dead = await deadRecordFiles(others);
    // Synchronous from the fresh listing to the last removal: a run that records a path after it
    // has not mounted anything yet.
    const inUse = pathsInUse(dirname(recordPath), dead, recordPath);
    removeEmpty(this.paths.filter((path) => !inUse.has(path)));
    try {
      unlinkSync(recordPath);
    } catch {
      // gone already
    }
  }
}

/**
 * Removes what runs that are over (killed with SIGKILL) recorded and left behind, except what a
 * live run relies on; their records too. Never rejects; returns the paths removed.
 */
export async function sweepCreatedMountPoints(parent: string): Promise<string[]> {
  const dead = await deadRecordFiles(readRecordFiles(parent));
  if (dead.size === 0) return [];
  const inUse = pathsInUse(parent, dead);
  const removed: string[] = [];
  for (const { file, record } of readRecordFiles(parent).filter(({ file }) => dead.has(file))) {
    removed.push(...removeEmpty(record.paths.filter((path) => !inUse.has(path))));
    try {
      unlinkSync(file);
    } catch {
      // another run swept it first
    }
  }
  return removed;
}

/** bubblewrap makes the missing directories above a mount point too (mkdir -p): they are its as well. */
function withMissingParents(paths: readonly string[]): string[] {
  const all = new Set<string>();
  for (const path of paths) {
    all.add(path);
    for (let above = dirname(path); above !== '/' && !exists(above); above = dirname(above)) all.add(above);
  }
  return [...all];
}

/** Each path that is an empty directory, or an empty regular file, owned by this user; deepest first. */
function removeEmpty(paths: readonly string[]): string[] {
  const removed: string[] = [];
  const uid = process.getuid?.();
  for (const path of [...paths].sort((a, b) => depthOf(b) - depthOf(a))) {
    try {
      const stat = lstatSync(path);
      if (uid !== undefined && stat.uid !== uid) continue;
      if (stat.isDirectory()) rmdirSync(path);
      else if (stat.isFile() && stat.size === 0) unlinkSync(path);
      else continue;
      removed.push(path);
    } catch {
      // gone, not empty, or not ours to remove: it stays
    }
  }
  return removed;
}

/** Record files of this user in `parent`; unreadable or malformed ones are skipped. */
function readRecordFiles(parent: string): { file: string; record: RecordFile }[] {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return [];
  }
  const uid = process.getuid?.();
  const found: { file: string; record: RecordFile }[] = [];
  for (const name of names) {
    if (!name.startsWith(PREFIX) || !name.endsWith(SUFFIX)) continue;
    const file = join(parent, name);
    try {
      // Another user's record names paths for them to remove, not us.
      if (uid !== undefined && lstatSync(file).uid !== uid) continue;
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<RecordFile>;
      if (!Number.isInteger(parsed.pid) || typeof parsed.runDirectory !== 'string' || !Array.isArray(parsed.paths)) continue;
      const paths = parsed.paths.filter((path): path is string => typeof path === 'string' && path.startsWith('/'));
      found.push({ file, record: { pid: parsed.pid!, runDirectory: parsed.runDirectory, paths } });
    } catch {
      // being written, or removed meanwhile
    }
  }
  return found;
}

/** The record files whose run is over: its directory's liveness socket is not listening, or it is gone and so is its pid. */
async function deadRecordFiles(records: readonly { file: string; record: RecordFile }[]): Promise<Set<string>> {
  const verdicts = await Promise.all(
    records.map(async ({ file, record }) => {
      const liveness = await runDirectoryLiveness(record.runDirectory);
      // Gone: removed at the end of its run, or by a sweep. A pid that runs here (this process's
      // other runs, or one reused by another process) only delays the removal.
      const over = liveness === 'dead' || (liveness === 'not-a-run-directory' && !existsSync(record.runDirectory) && !processExists(record.pid));
      return over ? file : null;
    }),
  );
  return new Set(verdicts.filter((file): file is string => file !== null));
}

/** Every path a record in `parent` names, except the dead ones' (and `except`): read afresh. */
function pathsInUse(parent: string, dead: ReadonlySet<string>, except?: string): Set<string> {
  return new Set(
    readRecordFiles(parent)
      .filter(({ file }) => !dead.has(file) && file !== except)
      .flatMap(({ record }) => record.paths),
  );
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function depthOf(path: string): number {
  return path.split('/').length;
}
