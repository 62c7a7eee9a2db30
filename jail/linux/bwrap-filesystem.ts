// The filesystem part of the bubblewrap command line: resolved filesystem rules (jail/
// filesystem-rules.ts) as mounts, in an order where each later mount covers the earlier ones.
//
// Layout: the host root read-only; a fresh /dev and /proc; private empty /tmp and /run; then the
// rule points shallowest first — writable paths bound back (cwd after /tmp, so a cwd under /tmp
// works), read-only paths bound read-only, hidden directories as an empty tmpfs (mode 0555),
// hidden files as the caller's empty readable file bound read-only; last, the remounts that make
// those tmpfs read-only (bubblewrap must still create mount points inside them until then;
// --remount-ro is not recursive, so the binds inside keep their own mode).
//
// A hidden path reads as empty, not as "Permission denied": tools that read ~/.netrc or ~/.npmrc
// when it exists (wget, curl --netrc-optional, pip, npm, git's credential helpers) carry on without
// its content instead of failing. A hidden or read-only path that does not exist is left out where
// its parent is read-only in the jail: it does not exist there either (ENOENT), and creating it
// fails (EROFS).
//
// A protected path that does not exist yet in a writable directory (.git/hooks in a repository
// without hooks, .mcp.json in a project, ~/.bashrc when cwd is home) is still mounted over — an
// empty read-only tmpfs for a directory, the empty file for a file — so the command cannot create
// it: no mount can stop one name from being created in a writable directory without a mount point
// there. bubblewrap creates that empty mount point on the host, as it would for any mount;
// bwrapMountPointsCreated() lists those paths so the caller can record them before the run and
// remove them after it (jail/linux/created-mount-points.ts). Writable directories above a
// protected path are bound onto themselves ("anchors"): a mount point cannot be renamed or removed
// (EBUSY), so `mv .git x; mkdir .git` cannot shed the protection. A missing directory above a
// protected path (.git where there is no repository yet) cannot be bound, so it is blocked
// instead: an empty read-only directory, with the protected paths below it inside.
//
// SECURITY: the mounts only hold if the command has no capabilities in the jail's user namespace.
// With CAP_SYS_ADMIN it could unmount the tmpfs over ~/.ssh. bubblewrap started by real root keeps
// every capability unless given `--cap-drop ALL` — test/e2e/jail-filesystem.test.ts proves both.
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { isWithin } from '../filesystem/canonical-path.js';
import { filesystemAccess, type FilesystemAccess, type FilesystemPoint, type ResolvedFilesystemRules } from '../filesystem-rules.js';

export interface BwrapFilesystemOptions {
  /**
   * An existing empty file, mode 0444, that the caller creates outside every writable path: every
   * hidden file and every blocked missing file reads as this one, empty and unwritable.
   */
  emptyFile: string;
}

/** What a mount does; `createsOnHost` when bubblewrap must create its mount point in a host directory. */
type MountStep =
  | { op: 'bind' | 'ro-bind'; path: string; createsOnHost: false }
  | { op: 'hide-directory'; path: string; createsOnHost: boolean }
  | { op: 'block-directory'; path: string; createsOnHost: boolean }
  | { op: 'empty-file'; path: string; createsOnHost: boolean };


/** Mounted before any rule point; the access each leaves below it. */
const BASE_LAYOUT: readonly { args: readonly string[]; path: string; access: FilesystemAccess }[] = [
  { args: ['--ro-bind', '/', '/'], path: '/', access: 'read-only' },
  { args: ['--dev', '/dev'], path: '/dev', access: 'private' },
  { args: ['--proc', '/proc'], path: '/proc', access: 'private' },
  { args: ['--tmpfs', '/tmp'], path: '/tmp', access: 'private' },
  // Hides host sockets such as /run/docker.sock and /run/user/UID/*.
  { args: ['--tmpfs', '/run'], path: '/run', access: 'private' },
];

/** The whole filesystem part of a bwrap command line, in order. */
export function bwrapFilesystemArgs(rules: ResolvedFilesystemRules, options: BwrapFilesystemOptions): string[] {
  const emptyFile = checkedPath(options.emptyFile, 'the empty file');
  if (!emptyFile.startsWith('/')) throw invalid(`the empty file must be an absolute path (got ${JSON.stringify(emptyFile)})`);
  if (filesystemAccess(rules, emptyFile).access === 'read-write') {
    // The command could write to the file every hidden path shows.
    throw invalid(`the empty file ${emptyFile} is writable inside the jail; create it outside the working directory and allowWrite paths`);
  }
  const args = BASE_LAYOUT.flatMap((base) => base.args);
  const remounts: string[] = [];
  for (const step of mountSteps(rules)) {
    const path = checkedPath(step.path, 'a filesystem rule path');
    switch (step.op) {
      case 'bind':
      case 'ro-bind':
        args.push(`--${step.op}`, path, path);
        break;
      case 'hide-directory':
      case 'block-directory':
        args.push('--perms', '0555', '--tmpfs', path);
        remounts.push(path);
        break;
      case 'empty-file':
        args.push('--ro-bind', emptyFile, path);
        break;
    }
  }
  for (const path of remounts) args.push('--remount-ro', path);
  return args;
}

/**
 * Host paths bubblewrap creates as mount points for these rules (protections of paths that did
 * not exist), deepest first: after the run, remove each that is still an empty file or directory.
 */
export function bwrapMountPointsCreated(rules: ResolvedFilesystemRules): string[] {
  return mountSteps(rules)
    .filter((step) => step.createsOnHost)
    .map((step) => step.path)
    .reverse();
}

/** Every path the rules mount something on (existing ones included). */
export function bwrapMountPaths(rules: ResolvedFilesystemRules): string[] {
  return mountSteps(rules).map((step) => step.path);
}

function mountSteps(rules: ResolvedFilesystemRules): MountStep[] {
  const mounted = new Map<string, FilesystemAccess>(BASE_LAYOUT.map((base) => [base.path, base.access]));
  const steps: MountStep[] = [];
  const tmpfsPaths = new Set<string>();
  for (const point of rules.points) {
    if (mounted.has(point.path)) continue;
    const step = stepFor(point, inheritedAccess(mounted, point.path));
    if (step === undefined) continue;
    // A mount point inside one of our own tmpfs mounts is made there, not on the host.
    if (step.createsOnHost && [...tmpfsPaths].some((tmpfs) => isWithin(point.path, tmpfs))) step.createsOnHost = false;
    steps.push(step);
    if (step.op === 'block-directory' || step.op === 'hide-directory') tmpfsPaths.add(point.path);
    mounted.set(point.path, step.op === 'block-directory' ? 'read-only' : point.access);
  }
  return steps;
}

/** The mount a point needs, given the access the mounts above it already give; undefined for none. */
function stepFor(point: FilesystemPoint, inherited: FilesystemAccess): MountStep | undefined {
  const path = point.path;
  // A missing path can only appear where the command can write; elsewhere nothing needs blocking.
  const creatable = inherited === 'read-write';
  switch (point.access) {
    case 'private':
      return undefined;
    case 'hidden':
      // Inside a hidden or private directory the host's content is already out of sight.
      if (inherited === 'hidden' || inherited === 'private' || (!point.exists && !creatable)) return undefined;
      // SECURITY: an empty file or directory of our own covers the host's, read-only: its content
      // never shows, and nothing written reaches the host — test/e2e/jail-filesystem.test.ts
      // "a hidden file (~/.netrc) reads as empty ..." and "~/.ssh lists as empty ...". Only the
      // paths allowRead reopens appear inside it, as mount points.
      if (point.kind === 'file') return { op: 'empty-file', path, createsOnHost: !point.exists };
      return { op: 'hide-directory', path, createsOnHost: !point.exists };
    case 'read-only':
      if (inherited === 'private') return undefined;
      if (point.exists) return inherited === 'read-only' ? undefined : { op: 'ro-bind', path, createsOnHost: false };
      if (!creatable) return undefined;
      return point.kind === 'file' ? { op: 'empty-file', path, createsOnHost: true } : { op: 'block-directory', path, createsOnHost: true };
    case 'read-write':
      // A missing directory above a protected path (.git in a directory that is no repository
      // yet) cannot be pinned: bwrap resolves every bind source before it mounts anything, so a
      // directory it would create first cannot be bound. Block it instead, read-only and empty:
      // `git init` in the jail then fails with EROFS rather than creating hooks the host runs.
      if (!point.exists) return point.anchor && creatable ? { op: 'block-directory', path, createsOnHost: true } : undefined;
      if (inherited === 'read-write' && !point.anchor) return undefined;
      return { op: 'bind', path, createsOnHost: false };
  }
}

function inheritedAccess(mounted: ReadonlyMap<string, FilesystemAccess>, path: string): FilesystemAccess {
  for (let above = path; ; above = above.slice(0, Math.max(1, above.lastIndexOf('/')))) {
    const access = mounted.get(above);
    if (access !== undefined && above !== path) return access;
    if (above === '/') return mounted.get('/') ?? 'read-only';
  }
}

function checkedPath(path: string, what: string): string {
  if (path.includes('\0') || path.includes('\n')) {
    throw invalid(`cannot hand ${what} ${JSON.stringify(path)} to bubblewrap: it contains a ${path.includes('\0') ? 'NUL character' : 'line break'}; rename it`);
  }
  return path;
}

function invalid(message: string): SrtGwError {
  return new SrtGwError(ErrorCodes.JAIL_FILESYSTEM_INVALID, message);
}
