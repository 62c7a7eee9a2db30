// Resolves a policy's `filesystem:` section, srt-gw's built-in defaults and one run's context into
// rules on canonical paths: what the jailed command may read and write. Shared by the Linux
// (bubblewrap, jail/linux/bwrap-filesystem.ts) and macOS (Seatbelt) jails.
//
// PRECEDENCE — each line has cases in filesystem-rules.test.ts. A rule on a directory covers
// everything below it. Every path is made canonical before any comparison: "~" expanded, relative
// paths joined to the policy file's directory, "." and ".." applied and symlinks followed the way
// the kernel does (a path that does not exist is its deepest existing ancestor, resolved, plus the
// rest), for cwd and home too.
//  1. Private scratch: the jail's /tmp and /run are its own empty, writable filesystems. A host path
//     below them is not in the jail at all, unless cwd or an allowWrite below them (never /tmp or
//     /run itself) brings it back; the rules below then apply to it as anywhere else.
//  2. alwaysHidden (srt-gw's CA and state) is hidden. Nothing reopens it: an allowRead inside it is
//     dropped with the warning 'allow-read-always-hidden'.
//  3. Otherwise the deepest hide rule (built-in credential paths, denyRead) or allowRead at or above
//     the path decides hidden or readable; at the same path allowRead wins. So allowRead reopens
//     only within a hidden path, and a denyRead inside an allowRead hides again.
//  4. Hidden beats every write rule: an allowWrite (even cwd) inside a hidden path stays hidden
//     unless an allowRead reopens it ('allow-write-hidden'; a hidden cwd is an error).
//  5. A readable path is writable when it lies in cwd or an allowWrite and in no read-only rule:
//     denyWrite, DEFAULT_READ_ONLY_PATHS (startup files in the home), alwaysReadOnly, ownCode, in
//     every writable root PROTECTED_IN_WRITABLE_ROOTS, and in every git directory its repository
//     uses GIT_DIRECTORY_PROTECTED (plus core.hooksPath); these lists live only in
//     filesystem/built-in-paths.ts. Read-only rules are vetoes whatever their depth: a denyWrite
//     above an allowWrite still wins. What static rules cannot cover (repositories and files
//     created during the run) is held after it: jail/planted-files.ts.
//  6. Everything else is read-only.
// A protection that a parent's rename would undo (mv .git x; mkdir .git) marks the writable
// directories above it `anchor`, for the backend to pin in place.
import { dirname, isAbsolute } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import type { FilesystemPathEntry, FilesystemPolicy, FilesystemPolicyKey, SourceLocation } from '../policies/types.js';
import { DEFAULT_READ_ONLY_PATHS, defaultHiddenPaths, PROTECTED_IN_WRITABLE_ROOTS } from './filesystem/built-in-paths.js';
import { canonicalPath, depthOf, expandHome, expandWritten, isSymlink, isWithin, nothingAt, parentOf, probe } from './filesystem/canonical-path.js';
import { repositoryPaths } from './filesystem/git-repositories.js';
import { evaluatorFor, type Evaluate } from './filesystem/rule-evaluation.js';

export interface FilesystemContext {
  /** Absolute home directory. */
  home: string;
  /** Working directory of the command (always writable). */
  cwd: string;
  /** Hidden whatever the policy says (the srt-gw CA dir, srt-gw's own state/config dir). */
  alwaysHidden: readonly string[];
  /** Read-only whatever the policy says (the policy files in use). */
  alwaysReadOnly: readonly string[];
  /**
   * srt-gw's own code (the bundled command line, the native helpers): read-only whatever the
   * policy says, or a command run in a checkout of srt-gw could rewrite the gateway and the jail's
   * init that its next run trusts. Paths that do not exist are left out.
   */
  ownCode?: readonly string[];
  /**
   * The platform the jail runs on: it decides which built-in hidden paths apply (macOS adds its
   * credential stores under ~/Library, which Linux must not create mount points for).
   * Default: process.platform.
   */
  platform?: NodeJS.Platform;
  /**
   * The writes to the writable roots are reviewed after the run (writeMode overlay,
   * jail/overlay/overlay-changes.ts) instead of landing on the host: PROTECTED_IN_WRITABLE_ROOTS
   * and the repositories' git protections are then not read-only in the jail, so that what the
   * command writes there is held for review rather than refused. Default false.
   */
  reviewedWrites?: boolean;
}

/** What the command can do with a path inside the jail. */
export type FilesystemAccess =
  /** Content not readable: an empty read-only directory or file covers it (absent when it does not exist). */
  | 'hidden'
  | 'read-only'
  | 'read-write'
  /** Inside the jail's own empty /tmp or /run: writable, but the host's content is not there. */
  | 'private';

export type FilesystemEffect = 'hide' | 'allow-read' | 'allow-write' | 'deny-write' | 'private' | 'read-only-default';

export type FilesystemRuleOrigin =
  | {
      readonly kind: 'policy';
      readonly key: FilesystemPolicyKey;
      readonly index: number;
      readonly written: string;
      readonly source?: SourceLocation;
    }
  /** srt-gw's defaults: credential paths, startup files, protected names in writable roots. */
  | { readonly kind: 'built-in'; readonly written: string }
  | { readonly kind: 'always-hidden' | 'always-read-only'; readonly written: string }
  | { readonly kind: 'working-directory' }
  /** The jail's layout: "/" read-only, private /tmp and /run. */
  | { readonly kind: 'jail' };

export interface FilesystemRule {
  /** Canonical absolute path: symlinks resolved, no trailing slash. */
  readonly path: string;
  readonly effect: FilesystemEffect;
  readonly origin: FilesystemRuleOrigin;
  /** One sentence for `srt-gw policy show` and denial messages. */
  readonly reason: string;
  /** Whether the path existed when the rules were resolved. */
  readonly exists: boolean;
  /** What is there; for a missing path, what a backend creates to block it. */
  readonly kind: 'directory' | 'file';
}

/** A path where access may change; backends act on these, shallowest first. */
export interface FilesystemPoint {
  readonly path: string;
  readonly access: FilesystemAccess;
  /** The rule that decides `access` here (and below, down to the next point). */
  readonly rule: FilesystemRule;
  readonly exists: boolean;
  readonly kind: 'directory' | 'file';
  readonly parentAccess: FilesystemAccess;
  /**
   * A writable directory in a writable parent with a protected path below it: the command could
   * rename it away and rebuild the protected path unprotected, so the backend must pin it.
   */
  readonly anchor: boolean;
}

export type FilesystemWarningCode =
  | 'allow-read-always-hidden'
  | 'allow-read-no-effect'
  | 'allow-write-missing'
  | 'allow-write-private'
  | 'allow-write-hidden'
  | 'cwd-private'
  | 'protected-symlink';

export interface FilesystemWarning {
  readonly code: FilesystemWarningCode;
  /** The canonical path concerned. */
  readonly path: string;
  readonly message: string;
}

export interface ResolvedFilesystemRules {
  /** Canonical home directory. */
  readonly home: string;
  /** Canonical working directory. */
  readonly cwd: string;
  /** Every rule in force, in the order: jail, cwd, built-ins, always*, policy. */
  readonly rules: readonly FilesystemRule[];
  /** Every rule path plus anchors, with their access; by depth, then path. */
  readonly points: readonly FilesystemPoint[];
  readonly warnings: readonly FilesystemWarning[];
}

const PRIVATE_DIRECTORIES: readonly { path: string; reason: string }[] = [
  { path: '/tmp', reason: "the jail's own empty /tmp: writable, discarded after the run; the host's /tmp is not visible" },
  {
    path: '/run',
    reason: "the jail's own empty /run: the host's runtime sockets (Docker, D-Bus, agents under /run/user) are not reachable",
  },
];
const READ_ONLY_DEFAULT_REASON = 'read-only: only the working directory, /tmp and filesystem.allowWrite paths are writable';

/** Resolves the policy section and the built-in defaults for one run; reads the filesystem. */
export function resolveFilesystemRules(policy: FilesystemPolicy | undefined, context: FilesystemContext): ResolvedFilesystemRules {
  for (const [name, value] of [
    ['home', context.home],
    ['cwd', context.cwd],
  ] as const) {
    if (!isAbsolute(value)) throw invalid(`the ${name === 'cwd' ? 'working' : 'home'} directory must be an absolute path (got ${JSON.stringify(value)})`);
  }
  const home = canonicalPath(context.home);
  const cwd = canonicalPath(context.cwd);
  if (probe(cwd).kind !== 'directory') throw invalid(`the working directory ${cwd} does not exist or is not a directory`);
  if (cwd === '/') throw invalid('the working directory is "/", and it is always writable: run the command from a project directory');

  const rules: FilesystemRule[] = [];
  const warnings: FilesystemWarning[] = [];
  const add = (path: string, effect: FilesystemEffect, origin: FilesystemRuleOrigin, reason: string, kindIfMissing: 'directory' | 'file') => {
    const found = probe(path);
    const rule: FilesystemRule = Object.freeze({ path, effect, origin, reason, exists: found.kind !== undefined, kind: found.kind ?? kindIfMissing });
    rules.push(rule);
    return rule;
  };
  const inHome = (written: string) => canonicalPath(expandHome(written, home));

  add('/', 'read-only-default', { kind: 'jail' }, READ_ONLY_DEFAULT_REASON, 'directory');
  const privatePaths = PRIVATE_DIRECTORIES.map(({ path, reason }) => add(canonicalPath(path), 'private', { kind: 'jail' }, reason, 'directory').path);
  add(cwd, 'allow-write', { kind: 'working-directory' }, 'writable: the working directory of the command', 'directory');
  if (privatePaths.includes(cwd)) {
    warnings.push({
      code: 'cwd-private',
      path: cwd,
      message: `the working directory ${cwd} is private in the jail: the command sees it empty and its files there are discarded`,
    });
  }
  const platform = context.platform ?? process.platform;
  for (const entry of defaultHiddenPaths(platform)) {
    add(inHome(entry.path), 'hide', { kind: 'built-in', written: entry.path }, `hidden by default: ${entry.what} (${entry.path}); filesystem.allowRead reopens it`, entry.kind);
  }
  for (const entry of DEFAULT_READ_ONLY_PATHS) {
    add(inHome(entry.path), 'deny-write', { kind: 'built-in', written: entry.path }, `read-only always: ${entry.what} (${entry.path})`, entry.kind);
  }
  const alwaysHidden = context.alwaysHidden.map((written) =>
    add(canonicalAbsolute(written, 'alwaysHidden'), 'hide', { kind: 'always-hidden', written }, `never visible in the jail: srt-gw's own secrets and state (${written})`, 'directory'),
  );
  for (const written of context.alwaysReadOnly) {
    add(canonicalAbsolute(written, 'alwaysReadOnly'), 'deny-write', { kind: 'always-read-only', written }, `read-only always: a policy file in use (${written})`, 'file');
  }
  for (const written of context.ownCode ?? []) {
    const path = canonicalAbsolute(written, 'ownCode');
    // SECURITY: the next run executes this code outside the jail — test/e2e/jail-filesystem.test.ts
    if (!nothingAt(path)) add(path, 'deny-write', { kind: 'always-read-only', written }, `read-only always: srt-gw's own code, which runs outside the jail (${written})`, 'directory');
  }

  const policyEntries = (key: FilesystemPolicyKey) => (policy?.[key] ?? []).map((entry, index) => ({ entry, index, path: canonicalPath(expandWritten(entry, home)) }));
  for (const { entry, index, path } of policyEntries('denyRead')) {
    const origin = policyOrigin('denyRead', index, entry);
    if (path === '/') throw invalid(`${describeOrigin(origin)} is "/": that would hide the whole filesystem, the command itself included`);
    add(path, 'hide', origin, `hidden by ${describeOrigin(origin)}`, kindFromWritten(entry.path));
  }
  const allowReads: FilesystemRule[] = [];
  for (const { entry, index, path } of policyEntries('allowRead')) {
    const origin = policyOrigin('allowRead', index, entry);
    const inside = alwaysHidden.find((hidden) => isWithin(path, hidden.path));
    if (inside !== undefined) {
      warnings.push({
        code: 'allow-read-always-hidden',
        path,
        message: `${describeOrigin(origin)} is ignored: srt-gw never shows ${inside.path} inside the jail (its CA and state)`,
      });
      continue;
    }
    allowReads.push(add(path, 'allow-read', origin, `readable again by ${describeOrigin(origin)}`, kindFromWritten(entry.path)));
  }
  const allowWrites: FilesystemRule[] = [];
  for (const { entry, index, path } of policyEntries('allowWrite')) {
    const origin = policyOrigin('allowWrite', index, entry);
    if (path === '/') throw invalid(`${describeOrigin(origin)} is "/": that would make the whole filesystem writable; name the directories the command needs`);
    if (privatePaths.includes(path)) {
      warnings.push({
        code: 'allow-write-private',
        path,
        message: `${describeOrigin(origin)} is ignored: the jail's ${path} is private and always writable; the host's ${path} is never shared`,
      });
      continue;
    }
    if (!probe(path).kind) {
      warnings.push({
        code: 'allow-write-missing',
        path,
        message: `${describeOrigin(origin)} is ignored: ${path} does not exist; create it before the run to make it writable`,
      });
      continue;
    }
    allowWrites.push(add(path, 'allow-write', origin, `writable by ${describeOrigin(origin)}`, 'directory'));
  }
  for (const { entry, index, path } of policyEntries('denyWrite')) {
    const origin = policyOrigin('denyWrite', index, entry);
    add(path, 'deny-write', origin, `read-only by ${describeOrigin(origin)}`, kindFromWritten(entry.path));
  }

  const writableRoots = [...new Set([cwd, ...allowWrites.filter((rule) => rule.kind === 'directory').map((rule) => rule.path)])];
  const protectedNames: { lexical: string; parentOfName: string }[] = [];
  for (const root of context.reviewedWrites === true ? [] : writableRoots) {
    for (const entry of [...PROTECTED_IN_WRITABLE_ROOTS, ...repositoryPaths(root, home)]) {
      const lexical = entry.path.startsWith('/') ? entry.path : `${root}/${entry.path}`;
      // Seatbelt denies writes to a missing path without a stand-in; bubblewrap needs one.
      if (entry.ifPresent === true && platform !== 'darwin' && probe(lexical).kind === undefined) continue;
      add(canonicalPath(lexical), 'deny-write', { kind: 'built-in', written: entry.path }, `read-only in every writable directory: ${entry.what} (${entry.path})`, entry.kind);
      if (lexical.startsWith(`${root}/`)) protectedNames.push({ lexical, parentOfName: root });
    }
  }
  for (const entry of DEFAULT_READ_ONLY_PATHS) protectedNames.push({ lexical: expandHome(entry.path, home), parentOfName: home });

  const evaluate = evaluatorFor(rules);
  const cwdAccess = evaluate(cwd);
  if (cwdAccess.access === 'hidden') {
    const reopen = cwdAccess.rule.origin.kind === 'always-hidden' ? '' : ', or add it to filesystem.allowRead';
    throw invalid(`the working directory ${cwd} is hidden in the jail (${cwdAccess.rule.reason}): run the command from another directory${reopen}`);
  }
  for (const rule of allowReads) {
    const reopens = rules.some((other) => other.effect === 'hide' && other.origin.kind !== 'always-hidden' && isWithin(rule.path, other.path));
    if (!reopens) {
      warnings.push({
        code: 'allow-read-no-effect',
        path: rule.path,
        message: `${describeOrigin(rule.origin)} changes nothing: ${rule.path} is not inside a hidden path, and reading is allowed by default`,
      });
    }
  }
  for (const rule of allowWrites) {
    const decided = evaluate(rule.path);
    if (decided.access === 'hidden') {
      warnings.push({
        code: 'allow-write-hidden',
        path: rule.path,
        message: `${describeOrigin(rule.origin)} stays hidden: it is inside ${decided.rule.path} (${decided.rule.reason}); add it to filesystem.allowRead as well to use it`,
      });
    }
  }
  warnings.push(...symlinkedProtectedNames(protectedNames, evaluate));

  return Object.freeze({
    home,
    cwd,
    rules: Object.freeze(rules),
    points: Object.freeze(pointsOf(rules, evaluate)),
    warnings: Object.freeze(warnings.map((warning) => Object.freeze(warning))),
  });
}

/** The access the command has to `path` (absolute; symlinks are resolved first) and the rule that decides it. */
export function filesystemAccess(resolved: ResolvedFilesystemRules, path: string): { access: FilesystemAccess; rule: FilesystemRule } {
  if (!isAbsolute(path)) throw new TypeError(`filesystemAccess needs an absolute path (got ${JSON.stringify(path)})`);
  let evaluate = evaluators.get(resolved.rules);
  if (evaluate === undefined) {
    evaluate = evaluatorFor(resolved.rules);
    evaluators.set(resolved.rules, evaluate);
  }
  return evaluate(canonicalPath(path));
}

const evaluators = new WeakMap<readonly FilesystemRule[], Evaluate>();

function pointsOf(rules: readonly FilesystemRule[], evaluate: Evaluate): FilesystemPoint[] {
  const paths = new Set(rules.map((rule) => rule.path));
  const anchors = new Set<string>();
  const accessOf = (path: string) => evaluate(path).access;
  for (const path of paths) {
    const access = accessOf(path);
    if ((access !== 'hidden' && access !== 'read-only') || path === '/' || accessOf(parentOf(path)) !== 'read-write') continue;
    // SECURITY: `mv .git elsewhere; mkdir .git` would carry the protection away with the mount and
    // leave an unprotected .git/config behind — tests "parents of a protected path are anchors ..."
    // here and "moving .git aside to rebuild it fails" in test/e2e/jail-filesystem.test.ts.
    for (let above = parentOf(path); above !== '/'; above = parentOf(above)) {
      if (accessOf(above) !== 'read-write' || accessOf(parentOf(above)) !== 'read-write') break;
      anchors.add(above);
    }
  }
  const points = [...new Set([...paths, ...anchors])].map((path): FilesystemPoint => {
    const { access, rule } = evaluate(path);
    const found = probe(path);
    const kind = found.kind ?? (anchors.has(path) ? 'directory' : kindAt(rules, path, rule));
    return Object.freeze({
      path,
      access,
      rule,
      exists: found.kind !== undefined,
      kind,
      parentAccess: path === '/' ? 'read-only' : accessOf(parentOf(path)),
      anchor: anchors.has(path),
    });
  });
  return points.sort((a, b) => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** For a missing path: the kind its deciding rule asks for, else that of any rule naming it. */
function kindAt(rules: readonly FilesystemRule[], path: string, deciding: FilesystemRule): 'directory' | 'file' {
  if (deciding.path === path) return deciding.kind;
  return rules.find((rule) => rule.path === path)?.kind ?? 'directory';
}

/**
 * A protected name that is a symlink in a writable directory protects only its target: the link
 * itself can be replaced. Mounts cannot cover a symlink, so this is reported, not fixed.
 */
function symlinkedProtectedNames(names: readonly { lexical: string; parentOfName: string }[], evaluate: Evaluate): FilesystemWarning[] {
  const warnings: FilesystemWarning[] = [];
  const seen = new Set<string>();
  for (const { lexical, parentOfName } of names) {
    const below = lexical.slice(parentOfName.length + 1).split('/');
    for (let i = 1; i <= below.length; i++) {
      const link = `${parentOfName}/${below.slice(0, i).join('/')}`;
      if (seen.has(link) || !isSymlink(link)) continue;
      seen.add(link);
      const directory = canonicalPath(dirname(link));
      if (evaluate(directory).access !== 'read-write') continue;
      warnings.push({
        code: 'protected-symlink',
        path: link,
        message: `${link} is a symbolic link to ${canonicalPath(link)}, which stays protected, but the link lies in writable ${directory} and the command can replace it; make it a real file or directory to protect it`,
      });
    }
  }
  return warnings;
}

function canonicalAbsolute(path: string, field: string): string {
  if (!isAbsolute(path)) throw invalid(`${field} paths must be absolute (got ${JSON.stringify(path)})`);
  return canonicalPath(path);
}

/** A missing path is blocked as an empty file unless written with a trailing "/". */
function kindFromWritten(written: string): 'directory' | 'file' {
  return written.endsWith('/') || written === '~' ? 'directory' : 'file';
}

function policyOrigin(key: FilesystemPolicyKey, index: number, entry: FilesystemPathEntry): FilesystemRuleOrigin {
  return { kind: 'policy', key, index, written: entry.path, ...(entry.source === undefined ? {} : { source: entry.source }) };
}

/** "filesystem.denyRead[0] "~/secrets" (policy.yaml:7:5)" for policy rules; what was written, else. */
function describeOrigin(origin: FilesystemRuleOrigin): string {
  switch (origin.kind) {
    case 'policy': {
      const where = origin.source === undefined ? '' : ` (${origin.source.file}:${origin.source.line}:${origin.source.column})`;
      return `filesystem.${origin.key}[${origin.index}] ${JSON.stringify(origin.written)}${where}`;
    }
    case 'built-in':
    case 'always-hidden':
    case 'always-read-only':
      return origin.written;
    default:
      return origin.kind;
  }
}

function invalid(message: string): SrtGwError {
  return new SrtGwError(ErrorCodes.JAIL_FILESYSTEM_INVALID, message);
}
