// Where a reviewed-writes run keeps its changes: `changes/<id>/` in the user's state directory
// (jail/state-directory.ts), which no jail can see or write. Each holds one upper and one work
// directory per writable root (`layers/N/`, bound into the jail for its overlays) and `run.json`:
// what ran, when, and — once the run has been reviewed — the changes still held.
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isAbsolute, join, normalize } from 'node:path';
import { z } from 'zod';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { DeletesMode } from '../../policies/types.js';
import { isWithin } from '../filesystem/canonical-path.js';

/** What one change does to a host path. */
export type ChangeKind = 'file' | 'directory' | 'symlink' | 'delete' | 'special';

export interface Change {
  /** The host path (absolute). */
  readonly path: string;
  /** The writable root it lies in, and the index of that root's layer. */
  readonly root: string;
  readonly layer: number;
  readonly kind: ChangeKind;
  /** Present when held: why it did not land on the host. */
  readonly reason?: string;
}

/** How a recorded run stands: still running, reviewed with changes held, or cut short before its review. */
export type ChangeSetStatus = 'running' | 'held' | 'interrupted';

export interface ChangeSetRecord {
  readonly id: string;
  /** ISO time the run started. */
  readonly createdAt: string;
  /** Date.now() before the command ran, less the clock's slack: a host file changed after it is a conflict. */
  readonly startedAtMs: number;
  readonly command: readonly string[];
  readonly cwd: string;
  /** The writable roots, in layer order. */
  readonly roots: readonly string[];
  readonly deletes: DeletesMode;
  /** The srt-gw process of the run: a 'running' record whose process is gone was interrupted. */
  readonly pid: number;
  readonly status: ChangeSetStatus;
  /** Once reviewed: the changes still held. */
  readonly held?: readonly Change[];
}

const CHANGE_KINDS = ['file', 'directory', 'symlink', 'delete', 'special'] as const satisfies readonly ChangeKind[];

/** run.json as written by save(); what it says is checked again by recordProblem. */
const ChangeSetRecordSchema = z.object({
  id: z.string(),
  createdAt: z.string(),
  startedAtMs: z.number(),
  command: z.array(z.string()),
  cwd: z.string(),
  roots: z.array(z.string()),
  deletes: z.enum(['apply', 'hold']),
  pid: z.number().int(),
  status: z.enum(['running', 'held', 'interrupted']),
  held: z
    .array(z.object({ path: z.string(), root: z.string(), layer: z.number().int().nonnegative(), kind: z.enum(CHANGE_KINDS), reason: z.string().optional() }))
    .optional(),
});

const RECORD_FILE = 'run.json';
const ID_PATTERN = /^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$/;

/** `<state>/changes`. */
export function changesDirectory(stateDirectory: string): string {
  return join(stateDirectory, 'changes');
}

export class ChangeSet {
  private constructor(
    readonly dir: string,
    private current: ChangeSetRecord,
  ) {}

  get record(): ChangeSetRecord {
    return this.current;
  }

  get id(): string {
    return this.current.id;
  }

  /** The directory bound into the jail: `N/upper` and `N/work` for the Nth root. */
  get layersDir(): string {
    return join(this.dir, 'layers');
  }

  upperDir(layer: number): string {
    return join(this.layersDir, String(layer), 'upper');
  }

  /** Makes a new change set with an empty upper and work directory per root. */
  static create(stateDirectory: string, run: Omit<ChangeSetRecord, 'id' | 'createdAt' | 'status' | 'pid' | 'held'>): ChangeSet {
    const now = new Date();
    const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const id = `${stamp}-${randomBytes(3).toString('hex')}`;
    const parent = changesDirectory(stateDirectory);
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    const dir = join(parent, id);
    mkdirSync(dir, { mode: 0o700 });
    run.roots.forEach((_, layer) => {
      for (const part of ['upper', 'work']) mkdirSync(join(dir, 'layers', String(layer), part), { recursive: true, mode: 0o700 });
    });
    const set = new ChangeSet(dir, { ...run, id, createdAt: now.toISOString(), status: 'running', pid: process.pid });
    set.save();
    return set;
  }

  /**
   * The change set `id`; throws CHANGES_INVALID naming what to run when there is none, or when its
   * record is damaged (then only `srt-gw changes drop` takes it).
   */
  static open(stateDirectory: string, id: string): ChangeSet {
    const dir = existingDirectory(stateDirectory, id);
    const problem = recordProblem(dir, id);
    if (typeof problem === 'string') {
      throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `the record of held changes ${id} (${join(dir, RECORD_FILE)}) is damaged: ${problem}; discard it with srt-gw changes drop ${id}`);
    }
    return new ChangeSet(dir, problem.record);
  }

  /**
   * Every recorded change set, oldest first. A damaged record is not listed; `damaged` hears of it.
   * (A directory without a record yet — a run starting — is passed over.)
   */
  static list(stateDirectory: string, damaged?: (id: string, problem: string) => void): ChangeSet[] {
    let names: string[];
    try {
      names = readdirSync(changesDirectory(stateDirectory));
    } catch {
      return [];
    }
    const sets: ChangeSet[] = [];
    for (const name of names.filter((entry) => ID_PATTERN.test(entry)).sort()) {
      const dir = join(changesDirectory(stateDirectory), name);
      if (lstatSync(join(dir, RECORD_FILE), { throwIfNoEntry: false }) === undefined) continue;
      const problem = recordProblem(dir, name);
      if (typeof problem === 'string') damaged?.(name, problem);
      else sets.push(new ChangeSet(dir, problem.record));
    }
    return sets;
  }

  /**
   * Removes change set `id`, a damaged one too; refuses one whose run is still going. Throws
   * CHANGES_INVALID when there is none.
   */
  static drop(stateDirectory: string, id: string): void {
    const dir = existingDirectory(stateDirectory, id);
    const problem = recordProblem(dir, id);
    const set = typeof problem === 'string' ? undefined : new ChangeSet(dir, problem.record);
    if (set?.status === 'running') throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `the run ${id} is still running; drop its changes once it has ended`);
    makeRemovable(dir);
    rmSync(dir, { recursive: true, force: true });
  }

  /** 'running' only while the run's srt-gw process lives; otherwise it was cut short. */
  get status(): ChangeSetStatus {
    if (this.current.status !== 'running') return this.current.status;
    return processAlive(this.current.pid) ? 'running' : 'interrupted';
  }

  update(changes: Partial<Pick<ChangeSetRecord, 'status' | 'held'>>): void {
    this.current = { ...this.current, ...changes };
    this.save();
  }

  /** Removes the change set and everything in it. */
  remove(): void {
    // The kernel leaves the work directory's inner directory mode 000: open it up to remove it.
    makeRemovable(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private save(): void {
    const temporary = join(this.dir, `${RECORD_FILE}.tmp`);
    writeFileSync(temporary, `${JSON.stringify(this.current, null, 2)}\n`, { mode: 0o600 });
    renameSync(temporary, join(this.dir, RECORD_FILE));
  }
}

function existingDirectory(stateDirectory: string, id: string): string {
  const dir = join(changesDirectory(stateDirectory), id);
  // The pattern also keeps `id` from naming anything outside the changes directory ("../x").
  if (!ID_PATTERN.test(id) || lstatSync(join(dir, RECORD_FILE), { throwIfNoEntry: false }) === undefined) {
    throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `no held changes with id ${JSON.stringify(id)}; srt-gw changes list shows the ids`);
  }
  return dir;
}

/**
 * The record in `dir`, or what is wrong with it. Applying a held change writes to the host path
 * it names, so a change must lie below its own writable root, spelled without "." or "..".
 */
function recordProblem(dir: string, id: string): { record: ChangeSetRecord } | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(join(dir, RECORD_FILE), 'utf8'));
  } catch (error) {
    return `it cannot be read (${(error as Error).message})`;
  }
  const checked = ChangeSetRecordSchema.safeParse(parsed);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    return `${issue.path.join('.') || 'the record'}: ${issue.message}`;
  }
  const record = checked.data as ChangeSetRecord;
  if (record.id !== id) return `its id is ${JSON.stringify(record.id)}, not the directory's`;
  if (!isPlainAbsolute(record.cwd)) return `cwd ${JSON.stringify(record.cwd)} is not an absolute path without "." or ".."`;
  for (const [layer, root] of record.roots.entries()) {
    if (!isPlainAbsolute(root)) return `roots[${layer}] ${JSON.stringify(root)} is not an absolute path without "." or ".."`;
  }
  for (const [index, change] of (record.held ?? []).entries()) {
    // SECURITY: a held change applies to its path: one spelled with ".." or outside its root would
    // write anywhere the user can — jail/overlay/held-changes-store.test.ts.
    if (!isPlainAbsolute(change.path)) return `held[${index}].path ${JSON.stringify(change.path)} is not an absolute path without "." or ".."`;
    if (record.roots[change.layer] !== change.root) return `held[${index}].root ${JSON.stringify(change.root)} is not roots[${change.layer}]`;
    if (change.path === change.root || !isWithin(change.path, change.root)) return `held[${index}].path ${change.path} is not below its root ${change.root}`;
  }
  return { record };
}

/** Absolute, and as path.normalize spells it: no ".", "..", empty or trailing component. */
function isPlainAbsolute(path: string): boolean {
  return isAbsolute(path) && (path === '/' || (normalize(path) === path && !path.endsWith('/'))) && !path.includes('\0');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function makeRemovable(path: string): void {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (stat === undefined || !stat.isDirectory()) return;
  if ((stat.mode & 0o700) !== 0o700) {
    try {
      chmodSync(path, 0o700);
    } catch {
      return;
    }
  }
  for (const name of readdirSync(path)) makeRemovable(join(path, name));
}
