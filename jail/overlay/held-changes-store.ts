// Where a reviewed-writes run keeps its changes: `changes/<id>/` in the user's state directory
// (jail/state-directory.ts), which no jail can see or write. Each holds one upper and one work
// directory per writable root (`layers/N/`, bound into the jail for its overlays) and `run.json`:
// what ran, when, and — once the run has been reviewed — the changes still held.
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { DeletesMode } from '../../policies/types.js';

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

  /** The change set `id`; throws CHANGES_INVALID naming what to run when there is none. */
  static open(stateDirectory: string, id: string): ChangeSet {
    const dir = join(changesDirectory(stateDirectory), id);
    if (!ID_PATTERN.test(id) || lstatSync(join(dir, RECORD_FILE), { throwIfNoEntry: false }) === undefined) {
      throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `no held changes with id ${JSON.stringify(id)}; srt-gw changes list shows the ids`);
    }
    return new ChangeSet(dir, readRecord(dir));
  }

  /** Every recorded change set, oldest first. */
  static list(stateDirectory: string): ChangeSet[] {
    let names: string[];
    try {
      names = readdirSync(changesDirectory(stateDirectory));
    } catch {
      return [];
    }
    const sets: ChangeSet[] = [];
    for (const name of names.filter((entry) => ID_PATTERN.test(entry)).sort()) {
      try {
        sets.push(ChangeSet.open(stateDirectory, name));
      } catch {
        // A directory whose record is being written or was damaged: not listed.
      }
    }
    return sets;
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

function readRecord(dir: string): ChangeSetRecord {
  return JSON.parse(readFileSync(join(dir, RECORD_FILE), 'utf8')) as ChangeSetRecord;
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
