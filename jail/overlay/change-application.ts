// Lands a reviewed-writes run's changes on the host: after the run, every change the review lets
// through (jail/overlay/overlay-changes.ts); later, `srt-gw changes apply` for held ones. Each
// applied change leaves the upper layer, so what stays there is exactly what is held.
import { chmodSync, constants, copyFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmdirSync, rmSync, symlinkSync, utimesSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { isWithin } from '../filesystem/canonical-path.js';
import type { Change, ChangeSet } from './held-changes-store.js';
import { findChanges, heldReason, hookPathsOf, type FoundChange, type OverlayLayer } from './overlay-changes.js';

export interface ReviewOutcome {
  /** The change set's id (still on disk only when something is held). */
  readonly id: string;
  readonly applied: readonly Change[];
  readonly held: readonly Change[];
}

export interface ReviewOptions {
  /** False when the run did not end normally: everything is held. */
  readonly finished: boolean;
  readonly home: string;
  /** Which upper directories are opaque (overlay-changes.ts opaqueDirectoriesWith). */
  readonly opaqueDirectories: (paths: readonly string[]) => Set<string>;
}

/** Reviews a finished run's upper layers, applies what may land and records what is held. */
export function reviewChangeSet(set: ChangeSet, options: ReviewOptions): ReviewOutcome {
  const { record } = set;
  const layers: OverlayLayer[] = record.roots.map((root, layer) => ({ root, upper: set.upperDir(layer) }));
  const found = findChanges(layers, options.opaqueDirectories);
  const context = {
    roots: record.roots,
    home: options.home,
    startedAtMs: record.startedAtMs,
    deletes: record.deletes,
    finished: options.finished,
    hookPaths: layers.map(({ root, upper }) => hookPathsOf(root, upper)),
    gitDirectories: new Map<string, boolean>(),
  };
  const applied: Change[] = [];
  const held: Change[] = [];
  const heldDirectories: string[] = [];
  for (const change of found) {
    let reason = heldReason(change, context, heldDirectories);
    if (reason === undefined) {
      try {
        applyChange(change, change.upperPath);
        applied.push(plain(change));
        continue;
      } catch (error) {
        reason = `could not be applied: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
      }
    }
    held.push({ ...plain(change), reason });
    if (change.kind === 'directory') heldDirectories.push(change.path);
  }
  const keep = new Set(held.map((change) => change.path));
  for (const layer of layers) pruneEmptyDirectories(layer.upper, layer.root, keep);
  if (held.length === 0) set.remove();
  else set.update({ status: options.finished ? 'held' : 'interrupted', held });
  return { id: set.id, applied, held };
}

/**
 * The held changes of `set`: recorded by its review, or — for a run cut short before it — found
 * now, all held.
 */
export function heldChanges(set: ChangeSet, options: Omit<ReviewOptions, 'finished'>): readonly Change[] {
  if (set.status === 'running') return [];
  if (set.record.held !== undefined) return set.record.held;
  return reviewChangeSet(set, { ...options, finished: false }).held;
}

/**
 * Applies held changes of `set`: those at or below `paths` (absolute, or relative to the run's
 * directory), or all of them; a held directory above one is applied first. Returns what was applied.
 * A selected path the host changed after the run started (then, or since the review) is a
 * conflict: nothing is applied unless `overwriteHostChanges`.
 */
export function applyHeldChanges(set: ChangeSet, paths: readonly string[], options: Omit<ReviewOptions, 'finished'>, overwriteHostChanges = false): Change[] {
  if (set.status === 'running') throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `the run ${set.id} is still running; apply its changes once it has ended`);
  const held = heldChanges(set, options);
  const wanted = paths.map((path) => (isAbsolute(path) ? resolve(path) : resolve(set.record.cwd, path)));
  for (const path of wanted) {
    if (!held.some((change) => isWithin(change.path, path))) {
      throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `${path} is not among the held changes of ${set.id}; srt-gw changes show ${set.id} lists them`);
    }
  }
  const selected = new Set(held.filter((change) => wanted.length === 0 || wanted.some((path) => isWithin(change.path, path))));
  for (const change of [...selected]) {
    for (const other of held) if (other.kind === 'directory' && isWithin(change.path, other.path)) selected.add(other);
  }
  const ordered = [...selected].sort((a, b) => depth(a.path) - depth(b.path));
  if (!overwriteHostChanges) {
    const conflicts = ordered.filter((change) => changedOnHostSince(change, set.record.startedAtMs));
    if (conflicts.length > 0) {
      throw new SrtGwError(
        ErrorCodes.CHANGES_INVALID,
        `the host changed ${conflicts.map((change) => change.path).join(', ')} after the run started, so applying would overwrite that; nothing was applied. ` +
          `srt-gw changes show ${set.id} PATH shows the difference; apply anyway with --force, or leave those paths out`,
      );
    }
  }
  const applied: Change[] = [];
  for (const change of ordered) {
    applyChange(change, upperPathOf(set, change));
    applied.push(change);
  }
  const remaining = held.filter((change) => !selected.has(change));
  const keep = new Set(remaining.map((change) => change.path));
  set.record.roots.forEach((root, layer) => pruneEmptyDirectories(set.upperDir(layer), root, keep));
  if (remaining.length === 0) set.remove();
  else set.update({ held: remaining });
  return applied;
}

/**
 * Whether the host entry at a change's path was changed after `sinceMs` (a directory being made
 * is not: it adds to what is there). ctime too, as a rename or chmod leaves mtime alone.
 */
function changedOnHostSince(change: Change, sinceMs: number): boolean {
  if (change.kind === 'directory') return false;
  const host = lstatSync(change.path, { throwIfNoEntry: false });
  return host !== undefined && Math.max(host.ctimeMs, host.mtimeMs) > sinceMs;
}

/** Where a change's content is in its upper layer (nothing there for a deletion an opaque directory implies). */
export function upperPathOf(set: ChangeSet, change: Change): string | undefined {
  const path = join(set.upperDir(change.layer), change.path.slice(change.root.length));
  return lstatSync(path, { throwIfNoEntry: false }) === undefined ? undefined : path;
}

/**
 * Makes the host path what the upper layer has: replaced whole (the upper file renamed over it,
 * or across filesystems a copy beside it renamed over it), so a reader never sees half a file.
 * The upper entry goes once applied.
 */
export function applyChange(change: Change, upperPath: string | undefined): void {
  const host = lstatSync(change.path, { throwIfNoEntry: false });
  const upper = upperPath === undefined ? undefined : lstatSync(upperPath);
  const clearDirectory = () => {
    if (host?.isDirectory() === true) rmSync(change.path, { recursive: true, force: true });
  };
  switch (change.kind) {
    case 'delete':
      rmSync(change.path, { recursive: true, force: true });
      if (upperPath !== undefined) rmSync(upperPath, { force: true });
      return;
    case 'directory':
      if (host !== undefined && !host.isDirectory()) rmSync(change.path, { force: true });
      if (host === undefined || !host.isDirectory()) mkdirSync(change.path, { mode: upper === undefined ? 0o755 : upper.mode & 0o777 });
      return;
    case 'file': {
      if (upper === undefined || upperPath === undefined) throw missing(change);
      clearDirectory();
      // Never set-user-ID or set-group-ID bits: the file was written by the jailed command.
      if ((upper.mode & 0o7000) !== 0) chmodSync(upperPath, upper.mode & 0o777);
      try {
        // The state directory is usually on the host directory's filesystem: the file moves in
        // whole, atomically, without a copy (200 MB: bench/README.md).
        renameSync(upperPath, change.path);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
      }
      replaceThroughTemporary(change.path, (temporary) => {
        copyFileSync(upperPath, temporary, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
        chmodSync(temporary, upper.mode & 0o777);
        utimesSync(temporary, upper.atime, upper.mtime);
      });
      rmSync(upperPath, { force: true });
      return;
    }
    case 'symlink': {
      if (upperPath === undefined) throw missing(change);
      clearDirectory();
      replaceThroughTemporary(change.path, (temporary) => symlinkSync(readlinkSync(upperPath), temporary));
      rmSync(upperPath, { force: true });
      return;
    }
    case 'special':
      throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `${change.path} is a device, FIFO or socket: srt-gw does not make those; drop it`);
  }
}

/** Makes the new entry under a temporary name beside `path`, then renames it over `path`: a reader sees the old or the new, never half. */
function replaceThroughTemporary(path: string, make: (temporary: string) => void): void {
  const temporary = temporaryBeside(path);
  try {
    make(temporary);
    renameSync(temporary, path);
  } catch (error) {
    rmSync(temporary, { force: true });
    throw error;
  }
}

function temporaryBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.srt-gw-apply-${randomBytes(4).toString('hex')}`);
}

function missing(change: Change): SrtGwError {
  return new SrtGwError(ErrorCodes.CHANGES_INVALID, `the content of ${change.path} is no longer in its change set; drop the change set`);
}

/** Removes directories of the upper layer left empty, except held ones; true when `dir` itself went. */
function pruneEmptyDirectories(dir: string, hostDir: string, keep: ReadonlySet<string>, top = true): boolean {
  let empty = true;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !pruneEmptyDirectories(join(dir, entry.name), join(hostDir, entry.name), keep, false)) empty = false;
  }
  if (top || !empty || keep.has(hostDir)) return false;
  rmdirSync(dir);
  return true;
}

function plain(change: FoundChange | Change): Change {
  return { path: change.path, root: change.root, layer: change.layer, kind: change.kind, ...(change.reason === undefined ? {} : { reason: change.reason }) };
}

function depth(path: string): number {
  return path.split('/').length;
}
