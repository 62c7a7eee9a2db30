// One run's reviewed writes (filesystem.writeMode: overlay): before the jail is built, a change
// set in the state directory with an upper layer per writable root, which the jail's init mounts
// as overlays (native/jail-init.c --overlay); after the command, the review that applies the safe
// changes and holds the rest (change-application.ts). A run srt-gw does not see to its end is
// never reviewed: its changes all stay held until `srt-gw changes apply`.
import { homedir } from 'node:os';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { DeletesMode } from '../../policies/types.js';
import { isWithin } from '../filesystem/canonical-path.js';
import type { ResolvedFilesystemRules } from '../filesystem-rules.js';
import { CLOCK_SLACK_MS, writableRoots } from '../planted-files.js';
import { reviewChangeSet, type ReviewOutcome } from './change-application.js';
import { ChangeSet, type Change } from './held-changes-store.js';
import { opaqueDirectoriesWith } from './overlay-changes.js';

/** What the jail needs to mount the overlays. */
export interface JailOverlay {
  /** Writable roots (none inside another), in layer order. */
  readonly roots: readonly string[];
  /** Host directory with `N/upper` and `N/work` for the Nth root. */
  readonly layersDir: string;
}

export class ReviewedWrites {
  private outcome: ReviewOutcome | null = null;
  private interrupted = false;

  private constructor(
    readonly changeSet: ChangeSet,
    private readonly init: string,
  ) {}

  /**
   * A change set for a run with these rules. Throws JAIL_FILESYSTEM_INVALID when a writable root
   * holds the state directory (an overlay's upper layer cannot lie inside its lower one) or has a
   * name the overlay's mount options cannot carry.
   */
  static start(options: {
    filesystem: ResolvedFilesystemRules;
    stateDirectory: string;
    command: readonly string[];
    deletes: DeletesMode;
    /** srt-gw-jail-init, which also reads the upper layers' opaque markers. */
    init: string;
  }): ReviewedWrites {
    const all = writableRoots(options.filesystem);
    const roots = all.filter((root) => !all.some((other) => other !== root && isWithin(root, other)));
    for (const root of roots) {
      if (isWithin(options.stateDirectory, root)) {
        throw new SrtGwError(
          ErrorCodes.JAIL_FILESYSTEM_INVALID,
          `writeMode overlay: the writable directory ${root} holds srt-gw's state directory ${options.stateDirectory}, where the overlay keeps the command's writes; run from a directory below it, or set XDG_STATE_HOME outside it`,
        );
      }
      if (/[,:\\\n]/.test(root)) {
        throw new SrtGwError(ErrorCodes.JAIL_FILESYSTEM_INVALID, `writeMode overlay cannot mount over ${JSON.stringify(root)}: overlayfs cannot take a path with ',', ':' or '\\'; rename it or use writeMode direct`);
      }
    }
    const changeSet = ChangeSet.create(options.stateDirectory, {
      startedAtMs: Date.now() - CLOCK_SLACK_MS,
      command: options.command,
      cwd: options.filesystem.cwd,
      roots,
      deletes: options.deletes,
    });
    return new ReviewedWrites(changeSet, options.init);
  }

  /**
   * The run failed in srt-gw before its review: nothing is applied, and the change set is marked
   * interrupted (its changes are found, all held, when `srt-gw changes` first looks). No-op once reviewed.
   */
  interrupt(): void {
    if (this.outcome === null && !this.interrupted) {
      this.interrupted = true;
      this.changeSet.update({ status: 'interrupted' });
    }
  }

  get overlay(): JailOverlay {
    return { roots: this.changeSet.record.roots, layersDir: this.changeSet.layersDir };
  }

  /**
   * After the jail has ended: applies what may land and records what is held. `finished` false
   * (the run failed in srt-gw) holds everything. Once only; later calls return the first outcome.
   */
  review(finished: boolean): ReviewOutcome {
    if (this.interrupted) throw new Error('the run was interrupted: its changes stay held');
    this.outcome ??= reviewChangeSet(this.changeSet, { finished, home: homedir(), opaqueDirectories: opaqueDirectoriesWith(this.init) });
    return this.outcome;
  }
}

/** The end-of-run summary of held changes, with the commands that apply or drop them; '' when none. */
export function formatHeldSummary(outcome: { id: string; applied: readonly Change[]; held: readonly Change[] }): string {
  if (outcome.held.length === 0) return outcome.applied.length === 0 ? '' : `srt-gw: applied ${count(outcome.applied.length)} to the host\n`;
  const lines = [
    `srt-gw: applied ${count(outcome.applied.length)}; held ${count(outcome.held.length)} for review (srt-gw changes show ${outcome.id}):`,
    ...outcome.held.map((change) => `  ${describeKind(change)} ${change.path}: ${change.reason ?? 'held'}`),
    `  apply them: srt-gw changes apply ${outcome.id} [PATH...]    discard them: srt-gw changes drop ${outcome.id}`,
  ];
  return `${lines.join('\n')}\n`;
}

function count(n: number): string {
  return `${n} change${n === 1 ? '' : 's'}`;
}

export function describeKind(change: Change): string {
  switch (change.kind) {
    case 'delete':
      return 'delete';
    case 'directory':
      return 'mkdir ';
    case 'symlink':
      return 'link  ';
    case 'special':
      return 'device';
    default:
      return 'write ';
  }
}
