// What a reviewed-writes run changed, read from its overlay's upper layers, and which of those
// changes may land on the host. Applied: ordinary files, directories, symlinks within the
// writable roots, what git writes for commits and fetches, and deletions (unless held by
// `deletes: hold`). Held: whatever the host would run or obey later — git configuration and
// hooks (of any repository, bare or nested), hook paths, the protected names of
// PROTECTED_IN_WRITABLE_ROOTS and the home's startup files, policy files — and new executable
// bits, symlinks that point out of the writable roots, device files, and files the host changed
// while the command ran.
//
// Overlay upper layers record a deletion as a character device 0/0 (a whiteout), and a directory
// deleted and made again as an "opaque" directory (the user.overlay.opaque xattr in a user
// namespace's overlay): the lower layer's entries below it are gone.
import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { DeletesMode } from '../../policies/types.js';
import { DEFAULT_READ_ONLY_PATHS, GIT_DIRECTORY_PROTECTED, PROTECTED_IN_WRITABLE_ROOTS } from '../filesystem/built-in-paths.js';
import { isWithin } from '../filesystem/canonical-path.js';
import { hooksPathsIn } from '../filesystem/git-repositories.js';
import type { Change } from './held-changes-store.js';

/** A change as found in an upper layer, with what its review needs. */
export interface FoundChange extends Change {
  /** The entry in the upper layer; absent for a deletion an opaque directory implies. */
  readonly upperPath?: string;
  readonly upper?: Stats;
  /** The host path as it is now; undefined when nothing is there. */
  readonly host?: Stats;
}

export interface OverlayLayer {
  /** The writable root (host directory, the lower layer). */
  readonly root: string;
  readonly upper: string;
}

/**
 * Every change in the layers, parents before their children. `opaqueDirectories` says which of
 * the given upper directories are opaque (see native/jail-init.c --opaque-directories).
 */
export function findChanges(layers: readonly OverlayLayer[], opaqueDirectories: (paths: readonly string[]) => Set<string>): FoundChange[] {
  const found: FoundChange[] = [];
  /** Upper directories over an existing host directory: only these can be opaque. */
  const merged: { upperPath: string; hostPath: string; root: string; layer: number }[] = [];
  layers.forEach(({ root, upper }, layer) => {
    const visit = (upperDir: string, hostDir: string): void => {
      for (const name of readdirSync(upperDir).sort()) {
        const upperPath = join(upperDir, name);
        const path = join(hostDir, name);
        const upperStat = lstatSync(upperPath);
        const host = lstatSync(path, { throwIfNoEntry: false });
        const base = { path, root, layer, upperPath, upper: upperStat, ...(host === undefined ? {} : { host }) };
        if (upperStat.isCharacterDevice() && upperStat.rdev === 0) {
          // A whiteout over nothing (made and deleted during the run) changes nothing on the host.
          if (host !== undefined) found.push({ ...base, kind: 'delete' });
        } else if (upperStat.isDirectory()) {
          if (host?.isDirectory() === true) merged.push({ upperPath, hostPath: path, root, layer });
          else found.push({ ...base, kind: 'directory' });
          visit(upperPath, path);
        } else if (upperStat.isFile()) {
          found.push({ ...base, kind: 'file' });
        } else if (upperStat.isSymbolicLink()) {
          found.push({ ...base, kind: 'symlink' });
        } else {
          found.push({ ...base, kind: 'special' });
        }
      }
    };
    visit(upper, root);
  });
  const opaque = merged.length === 0 ? new Set<string>() : opaqueDirectories(merged.map((entry) => entry.upperPath));
  for (const { upperPath, hostPath, root, layer } of merged) {
    if (!opaque.has(upperPath)) continue;
    const kept = new Set(readdirSync(upperPath));
    for (const name of readdirSync(hostPath).sort()) {
      if (kept.has(name)) continue;
      const path = join(hostPath, name);
      found.push({ path, root, layer, kind: 'delete', host: lstatSync(path) });
    }
  }
  return found;
}

/** Runs `init --opaque-directories` once for all paths. */
export function opaqueDirectoriesWith(init: string): (paths: readonly string[]) => Set<string> {
  return (paths) => {
    const result = spawnSync(init, ['--opaque-directories'], { input: paths.map((path) => `${path}\0`).join(''), maxBuffer: 1 << 30 });
    if (result.status !== 0) throw new Error(`${init} --opaque-directories failed (status ${result.status})`);
    return new Set(result.stdout.toString('utf8').split('\0').filter((path) => path !== ''));
  };
}

export interface ReviewContext {
  readonly roots: readonly string[];
  readonly home: string;
  /** A host path changed after this (ctime) was changed by someone else while the command ran. */
  readonly startedAtMs: number;
  readonly deletes: DeletesMode;
  /** False when srt-gw did not see the run to its end: everything is held. */
  readonly finished: boolean;
  /** core.hooksPath directories of each root's repository (hookPathsOf), in layer order. */
  readonly hookPaths: readonly (readonly string[])[];
  /** Which directories look like git directories: filled as the review goes. */
  readonly gitDirectories: Map<string, boolean>;
}

/** Names git writes in a git directory for commits, merges and fetches: applied. */
const GIT_WRITTEN_FILES = new Set([
  'index',
  'HEAD',
  'ORIG_HEAD',
  'FETCH_HEAD',
  'packed-refs',
  'COMMIT_EDITMSG',
  'MERGE_HEAD',
  'MERGE_MSG',
  'MERGE_MODE',
  'AUTO_MERGE',
  'REBASE_HEAD',
  'CHERRY_PICK_HEAD',
  'REVERT_HEAD',
]);
/** Directories of a git directory whose content is data git never runs: applied. */
const GIT_WRITTEN_DIRECTORIES = new Set(['objects', 'refs', 'logs']);
/** Hook scripts kept in the working tree (husky): git runs them once core.hooksPath names them. */
const HOOK_DIRECTORIES = new Map([['.husky', 'husky hook scripts run on your next git command']]);

/** Why `change` must be held, or undefined to apply it. `held` holds the paths of held directories so far. */
export function heldReason(change: FoundChange, context: ReviewContext, heldDirectories: readonly string[]): string | undefined {
  if (!context.finished) return 'the run did not finish (srt-gw was killed or failed): nothing of it was applied';
  const inside = heldDirectories.find((directory) => isWithin(change.path, directory) && change.path !== directory);
  if (inside !== undefined) return `inside ${inside}, which is held`;
  const relative = change.path.slice(change.root.length + 1);
  const names = relative.split('/');
  const git = gitReason(change, names, context.gitDirectories);
  if (git !== undefined) return git;
  for (const entry of PROTECTED_IN_WRITABLE_ROOTS) {
    if (entry.path.startsWith('.git/')) continue;
    const parts = entry.path.split('/');
    for (let at = 0; at + parts.length <= names.length; at++) {
      if (parts.every((part, i) => names[at + i] === part)) return entry.what;
    }
  }
  for (const [name, what] of HOOK_DIRECTORIES) if (names.includes(name)) return what;
  for (const entry of DEFAULT_READ_ONLY_PATHS) {
    if (isWithin(change.path, entry.path.replace(/^~/, context.home))) return entry.what;
  }
  for (const hooks of context.hookPaths[change.layer] ?? []) {
    if (isWithin(change.path, hooks)) return `git runs the hooks in core.hooksPath ${hooks}`;
  }
  if (change.kind === 'delete' && context.deletes === 'hold') return 'a deletion, held by filesystem.deletes: hold';
  const replaces = change.host !== undefined && change.kind !== 'delete' && change.host.isDirectory() !== (change.kind === 'directory');
  if (replaces && context.deletes === 'hold') return `replaces a ${change.host.isDirectory() ? 'directory' : 'file'}: a deletion, held by filesystem.deletes: hold`;
  if (change.kind === 'special') return 'a device, FIFO or socket: srt-gw applies only files, directories and symlinks';
  if (change.kind === 'file') {
    const before = change.host?.isFile() === true ? change.host.mode & 0o111 : 0;
    if ((change.upper!.mode & 0o111 & ~before) !== 0) return 'a new executable bit: the host could run it';
  }
  if (change.kind === 'symlink') {
    const target = readlinkSync(change.upperPath!);
    const points = resolve(dirname(change.path), target);
    if (!context.roots.some((root) => isWithin(points, root))) return `a symlink to ${target}, outside the writable directories`;
  }
  if (change.kind !== 'directory' && change.host !== undefined && Math.max(change.host.ctimeMs, change.host.mtimeMs) > context.startedAtMs) {
    return 'changed on the host while the command ran: a conflict';
  }
  // SECURITY: a host directory on the way that is now a symlink out of the root would carry the
  // write elsewhere — test/e2e/overlay-writes.test.ts.
  // (A directory on the way that does not exist yet is one this review makes, before this change.)
  let above = dirname(change.path);
  while (above !== change.root && lstatSync(above, { throwIfNoEntry: false }) === undefined) above = dirname(above);
  let parent: string;
  try {
    parent = realpathSync(above);
  } catch {
    return `its directory ${above} cannot be read on the host`;
  }
  if (!isWithin(parent, change.root)) return `its directory ${above} now leads out of ${change.root}`;
  return undefined;
}

/** Git's own files: what it writes for commits and fetches is applied, the rest of a git directory held. */
function gitReason(change: FoundChange, names: readonly string[], known: Map<string, boolean>): string | undefined {
  const dotGit = names.lastIndexOf('.git');
  let rest: readonly string[] | undefined = dotGit === -1 ? undefined : names.slice(dotGit + 1);
  if (rest === undefined) {
    // A bare repository or a separate git directory: HEAD beside objects/.
    for (let at = names.length - 1; at >= 0 && rest === undefined; at--) {
      const directory = join(change.root, ...names.slice(0, at));
      let looks = known.get(directory);
      if (looks === undefined) known.set(directory, (looks = looksLikeGitDirectory(directory, change)));
      if (looks) rest = names.slice(at);
    }
  }
  if (rest === undefined) return undefined;
  if (rest.length === 0) {
    return change.kind === 'directory' ? undefined : 'a .git file points git at another git directory, with its own configuration and hooks';
  }
  if (GIT_WRITTEN_DIRECTORIES.has(rest[0]!) && change.kind !== 'symlink') return undefined;
  if (rest.length === 1 && GIT_WRITTEN_FILES.has(rest[0]!) && change.kind !== 'symlink') return undefined;
  const protectedEntry = GIT_DIRECTORY_PROTECTED.find((entry) => entry.path === rest[0]);
  return protectedEntry?.what ?? `git reads ${rest.join('/')} from its git directory (only objects, refs, logs, index, HEAD and the files of commits and fetches are applied)`;
}

function looksLikeGitDirectory(directory: string, change: FoundChange): boolean {
  const upperBase = change.upperPath === undefined ? undefined : change.upperPath.slice(0, change.upperPath.length - (change.path.length - change.root.length));
  const candidates = [directory, ...(upperBase === undefined ? [] : [join(upperBase, directory.slice(change.root.length))])];
  return candidates.some(
    (candidate) => lstatSync(join(candidate, 'HEAD'), { throwIfNoEntry: false })?.isFile() === true && lstatSync(join(candidate, 'objects'), { throwIfNoEntry: false })?.isDirectory() === true,
  );
}

/** core.hooksPath of the root's repository, as on the host and as the command wrote it in `upper`. */
export function hookPathsOf(root: string, upper: string | undefined): string[] {
  const texts = [join(root, '.git', 'config'), ...(upper === undefined ? [] : [join(upper, '.git', 'config')])].map((file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  });
  return texts.flatMap(hooksPathsIn).map((value) => (value.startsWith('/') ? value : join(root, value)));
}
