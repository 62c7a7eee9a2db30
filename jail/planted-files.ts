// What a jail leaves in its writable directories for the host to run later, where the static
// rules (jail/filesystem-rules.ts) cannot reach because the path did not exist when the jail was
// built: a repository created during the run (`git init sub; git -C sub config core.fsmonitor ...`
// runs on your next `git status` in sub/), a commondir, hook or program-naming git configuration
// added to a repository below a writable root, and .envrc, .mcp.json or a policy file created or
// changed anywhere below one.
//
// A snapshot is taken before the jail starts; once the jail has ended the same bounded scan runs
// again, and each such file that is new or changed is moved aside to `<name>.srt-gw-held` in its
// directory, where neither git nor direnv nor an agent reads it, and reported with the command
// that restores it. A run that is killed (SIGKILL) cannot do this: docs say so.
//
// The scan is bounded (depth, directory count) and skips symlinks, node_modules and caches: a
// repository planted deeper than that is not found. Git configuration is read by git itself
// (`git config --file F --list --null`, no includes, no system or global configuration, an empty
// HOME), which runs no program, rather than by a parser of ours that could read it differently.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync, type Dirent, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { filesystemAccess, type ResolvedFilesystemRules } from './filesystem-rules.js';

/** One file moved aside after the run. */
export interface HeldFile {
  /** Where it was (absolute). */
  readonly path: string;
  /** Where it is now: beside it, `<name>.srt-gw-held` (or `-2`, `-3` ... when that is taken). */
  readonly heldAs: string;
  /** Why: what would run it. */
  readonly reason: string;
}

/** Names held wherever they appear below a writable root, when created or changed during the run. */
export const PLANTED_NAMES: ReadonlyMap<string, string> = new Map([
  ['.envrc', 'direnv runs it when you enter the directory'],
  ['.mcp.json', 'its MCP server definitions start programs in your next agent session there'],
  ['.srt-gw.yaml', 'srt-gw run there would discover it as its policy'],
  ['.srt.json', 'srt-gw run there would discover it as its settings'],
]);

/** The suffix of a held file: no tool reads a file by this name. */
export const HELD_SUFFIX = '.srt-gw-held';

/** Depth below a writable root the scan reaches (root/a/b/c/d/e/f). */
const MAX_DEPTH = 6;
/** Directories visited per scan, over all roots: bounds the cost on huge trees. */
const MAX_DIRECTORIES = 3000;
/** Not scanned: dependency trees and caches, large and not where a repository is planted to be run. */
const SKIPPED_DIRECTORIES = new Set(['node_modules', '.cache', '.npm', '.venv', 'venv', '__pycache__', 'target', '.gradle', '.m2', '.cargo', '.rustup']);
/** Git directories hold other git directories only here (submodules, worktrees). */
const NESTED_GIT_DIRECTORIES = ['modules', 'worktrees'];
/** A file larger than this is fingerprinted by its metadata, and a git configuration this large is held unread. */
const MAX_READ_BYTES = 1 << 20;
const GIT_TIMEOUT_MS = 10_000;
/** File times come from the kernel's coarse clock, which may lag Date.now() by a tick (1-10 ms). */
export const CLOCK_SLACK_MS = 50;

/**
 * Keys of git configuration that make git (or a tool it starts) run a program. Keys as
 * `git config --list` prints them, lower-cased; `program` decides for values that may be a
 * plain setting instead (`core.fsmonitor=true` uses git's own daemon, `alias.st=status` runs git).
 */
const PROGRAM_KEYS: readonly { readonly key: RegExp; readonly program?: (value: string | null) => boolean }[] = [
  { key: /^core\.fsmonitor$/, program: (value) => !isBoolean(value) },
  { key: /^core\.(hookspath|sshcommand|pager|editor|askpass|gitproxy|alternaterefscommand)$/ },
  { key: /^sequence\.editor$/ },
  { key: /^diff\.external$/ },
  { key: /^diff\..+\.(textconv|command)$/ },
  { key: /^filter\..+\.(clean|smudge|process)$/ },
  { key: /^credential\.(.+\.)?helper$/ },
  { key: /^include\.path$/ },
  { key: /^includeif\..+\.path$/ },
  { key: /^alias\..+$/, program: (value) => value?.trimStart().startsWith('!') === true },
  { key: /^submodule\..+\.update$/, program: (value) => value?.trimStart().startsWith('!') === true },
  { key: /^pager\..+$/, program: (value) => !isBoolean(value) },
  { key: /^gpg\.program$/ },
  { key: /^gpg\..+\.program$/ },
  { key: /^uploadpack\.packobjectshook$/ },
  { key: /^merge\..+\.driver$/ },
  { key: /^(mergetool|difftool|guitool|browser|man)\..+\.(cmd|path)$/ },
  { key: /^web\.browser$/ },
  { key: /^remote\..+\.(uploadpack|receivepack)$/ },
  { key: /^trailer\..+\.(command|cmd)$/ },
  { key: /^sendemail\.(.+\.)?(smtpserver|tocmd|cccmd)$/ },
  // ext:: remotes run a command; allowed only by this.
  { key: /^protocol\.(ext\.)?allow$/, program: (value) => value?.toLowerCase() === 'always' },
  // Key and certificate files may name a PKCS#11 module that curl loads into git.
  { key: /^http\.(.+\.)?(sslkey|sslcert|proxysslkey|proxysslcert)$/ },
];

type Fingerprint = string;

interface GitDirectoryState {
  readonly files: ReadonlyMap<string, Fingerprint>;
  /** The configuration files' text at start, to tell program keys that were there from new ones. */
  readonly configText: ReadonlyMap<string, string>;
}

interface Snapshot {
  readonly gitDirectories: ReadonlyMap<string, GitDirectoryState>;
  readonly plantedFiles: ReadonlyMap<string, Fingerprint>;
  /** `.git` files and the git directory each points to. */
  readonly pointers: ReadonlyMap<string, string>;
}

/** The writable roots of resolved rules: cwd and the allowWrite directories the command can write. */
export function writableRoots(rules: ResolvedFilesystemRules): string[] {
  const roots = rules.rules
    .filter((rule) => rule.effect === 'allow-write' && rule.kind === 'directory' && rule.exists)
    .map((rule) => rule.path)
    .filter((path) => filesystemAccess(rules, path).access === 'read-write');
  return [...new Set(roots)].sort();
}

/** A snapshot of the writable roots before the run; hold() after it. */
export class PlantedFilesCheck {
  private held: HeldFile[] | null = null;

  private constructor(
    private readonly roots: readonly string[],
    private readonly startedAt: number,
    private readonly before: Snapshot,
  ) {}

  static start(roots: readonly string[]): PlantedFilesCheck {
    const startedAt = Date.now();
    return new PlantedFilesCheck(roots, startedAt, scan(roots));
  }

  /**
   * Call once the jail has ended: moves aside what would run a program and was not there (or not
   * so) before, and says what it moved. Safe to call twice (the second returns the first's result).
   */
  hold(): HeldFile[] {
    if (this.held !== null) return this.held;
    const after = scan(this.roots);
    const held: HeldFile[] = [];
    const reader = new GitConfigReader();
    try {
      for (const [directory, pointed] of after.pointers) {
        if (this.before.pointers.get(directory) === pointed || after.gitDirectories.has(pointed)) continue;
        if (!this.roots.some((root) => pointed === root || pointed.startsWith(`${root}/`))) continue;
        // A new .git file naming a git directory the scan did not reach (too deep): check that one too.
        const state = gitDirectoryState(pointed);
        if (state !== undefined) (after.gitDirectories as Map<string, GitDirectoryState>).set(pointed, state);
      }
      for (const [directory, state] of after.gitDirectories) {
        const before = this.before.gitDirectories.get(directory);
        for (const [name, fingerprint] of state.files) {
          const path = join(directory, name);
          if (!this.plantedSinceStart(path, fingerprint, before?.files.get(name))) continue;
          const reason = name === 'config' || name === 'config.worktree' ? reader.programReason(path, before?.configText.get(name)) : gitFileReason(name);
          if (reason !== undefined) held.push(holdFile(path, reason));
        }
      }
      for (const [path, fingerprint] of after.plantedFiles) {
        if (!this.plantedSinceStart(path, fingerprint, this.before.plantedFiles.get(path))) continue;
        const what = PLANTED_NAMES.get(basenameOf(path))!;
        held.push(holdFile(path, `${this.before.plantedFiles.has(path) ? 'changed' : 'created'} during the run; ${what}`));
      }
    } finally {
      reader.dispose();
    }
    this.held = held;
    return held;
  }

  /**
   * Whether what is at `path` now was put there during the run and could run something: changed
   * since the snapshot, or absent from it and created (ctime, which no program can set back) since
   * the scan began, so that a directory the snapshot's bound left out is not taken for new. An
   * empty file runs nothing, and is also what a stand-in mount point left by a concurrent run is.
   */
  private plantedSinceStart(path: string, now: Fingerprint, before: Fingerprint | undefined): boolean {
    if (before === now) return false;
    const stat = lstatOf(path);
    if (stat === undefined || (stat.isFile() && stat.size === 0)) return false;
    return before !== undefined || stat.ctimeMs >= this.startedAt - CLOCK_SLACK_MS;
  }
}

/** The line `srt-gw run` prints for a held file; paths relative to `cwd` when inside it. */
export function heldFileMessage(held: HeldFile, cwd: string): string {
  const shown = (path: string) => {
    const inside = relative(cwd, path);
    return shellWord(inside !== '' && !inside.startsWith('..') && !isAbsolute(inside) ? inside : path);
  };
  return `srt-gw: held ${shown(held.path)}: ${held.reason}; restore with: mv ${shown(held.heldAs)} ${shown(held.path)}`;
}

function gitFileReason(name: string): string | undefined {
  if (name === 'commondir') return 'commondir would make your next git command use another git directory, with its configuration and hooks';
  if (name === 'hooks') return 'a hooks directory that is a link would run its hooks on your next git command';
  if (name.startsWith('hooks/')) return 'a git hook would run on your next git command';
  return undefined;
}

function scan(roots: readonly string[]): Snapshot {
  const gitDirectories = new Map<string, GitDirectoryState>();
  const plantedFiles = new Map<string, Fingerprint>();
  const pointers = new Map<string, string>();
  let budget = MAX_DIRECTORIES;
  const visited = new Set<string>();

  const visit = (directory: string, depth: number): void => {
    if (budget <= 0 || visited.has(directory)) return;
    visited.add(directory);
    budget -= 1;
    const entries = listDirectory(directory);
    if (entries === undefined) return;
    if (isGitDirectory(entries)) {
      const state = gitDirectoryState(directory, entries);
      if (state !== undefined) gitDirectories.set(directory, state);
      for (const name of NESTED_GIT_DIRECTORIES) {
        if (entries.some((entry) => entry.name === name && entry.isDirectory())) visitNested(join(directory, name), depth + 1);
      }
      return;
    }
    for (const entry of entries) {
      const path = join(directory, entry.name);
      if (PLANTED_NAMES.has(entry.name) && !entry.isDirectory()) {
        plantedFiles.set(path, fingerprintOf(path));
      } else if (entry.name === '.git' && entry.isFile()) {
        const pointed = gitdirPointer(path);
        if (pointed !== undefined) pointers.set(path, pointed);
      } else if (entry.isDirectory() && !SKIPPED_DIRECTORIES.has(entry.name) && depth < MAX_DEPTH) {
        visit(path, depth + 1);
      }
    }
  };
  // modules/<name>/ and worktrees/<name>/ hold git directories, possibly nested (modules/a/b).
  const visitNested = (directory: string, depth: number): void => {
    if (depth > MAX_DEPTH + 2 || budget <= 0) return;
    for (const entry of listDirectory(directory) ?? []) {
      if (!entry.isDirectory()) continue;
      const path = join(directory, entry.name);
      const inner = listDirectory(path);
      if (inner !== undefined && isGitDirectory(inner)) visit(path, depth);
      else visitNested(path, depth + 1);
    }
  };
  for (const root of roots) visit(root, 0);
  return { gitDirectories, plantedFiles, pointers };
}

/** HEAD and either objects/ (a repository's own) or commondir (a worktree's): what git itself checks. */
function isGitDirectory(entries: readonly Dirent[]): boolean {
  const has = (name: string, kind: 'file' | 'directory') => entries.some((entry) => entry.name === name && (kind === 'file' ? entry.isFile() : entry.isDirectory()));
  return has('HEAD', 'file') && (has('objects', 'directory') || has('commondir', 'file'));
}

/** What git would run from a git directory: fingerprints of config, config.worktree, commondir and hooks. */
function gitDirectoryState(directory: string, entries: readonly Dirent[] | undefined = listDirectory(directory)): GitDirectoryState | undefined {
  if (entries === undefined) return undefined;
  const files = new Map<string, Fingerprint>();
  const configText = new Map<string, string>();
  for (const name of ['config', 'config.worktree', 'commondir', 'hooks']) {
    const path = join(directory, name);
    const stat = lstatOf(path);
    if (stat === undefined) continue;
    if (name === 'hooks' && stat.isDirectory()) {
      for (const hook of listDirectory(path) ?? []) {
        if (hook.name.endsWith('.sample') || hook.name.includes(HELD_SUFFIX) || hook.isDirectory()) continue;
        files.set(`hooks/${hook.name}`, fingerprintOf(join(path, hook.name)));
      }
      continue;
    }
    files.set(name, fingerprintOf(path, stat));
    if ((name === 'config' || name === 'config.worktree') && stat.isFile() && stat.size <= MAX_READ_BYTES) {
      const text = readText(path);
      if (text !== undefined) configText.set(name, text);
    }
  }
  return { files, configText };
}

/** Content hash of a small regular file; the link text of a symlink; the kind and metadata of anything else. */
function fingerprintOf(path: string, stat: Stats | undefined = lstatOf(path)): Fingerprint {
  if (stat === undefined) return 'missing';
  if (stat.isSymbolicLink()) {
    try {
      return `link:${readlinkSync(path)}`;
    } catch {
      return 'link:?';
    }
  }
  if (!stat.isFile()) return `other:${stat.mode}:${stat.ino}`;
  if (stat.size > MAX_READ_BYTES) return `large:${stat.size}:${stat.mtimeMs}:${stat.ino}`;
  try {
    return `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;
  } catch {
    return `unreadable:${stat.size}:${stat.mtimeMs}`;
  }
}

/** The git directory a `.git` file points to, when it is one line `gitdir: PATH`. */
function gitdirPointer(path: string): string | undefined {
  const stat = lstatOf(path);
  if (stat === undefined || !stat.isFile() || stat.size > 4096) return undefined;
  const pointed = /^gitdir:\s*(.+?)\s*$/m.exec(readText(path) ?? '')?.[1];
  if (pointed === undefined) return undefined;
  return isAbsolute(pointed) ? pointed : join(dirname(path), pointed);
}

/** Reads git configuration files with git, in a setting where git runs nothing else. */
class GitConfigReader {
  private scratch: string | null = null;

  /** Why the configuration at `path` must be held (it names a program it did not name before), or undefined. */
  programReason(path: string, textBefore: string | undefined): string | undefined {
    const stat = lstatOf(path);
    if (stat === undefined) return undefined;
    if (!stat.isFile()) return 'git would read this as its configuration, and it is not a plain file';
    if (stat.size > MAX_READ_BYTES) return 'git configuration too large to check for programs it would run';
    const now = this.programEntries(path);
    if (now === undefined) return 'git configuration that could not be checked for programs git would run';
    const before = textBefore === undefined ? [] : (this.programEntries(this.writeScratch(textBefore)) ?? []);
    const added = now.filter((entry) => !before.includes(entry));
    if (added.length === 0) return undefined;
    const keys = [...new Set(added.map((entry) => entry.slice(0, entry.indexOf('\n'))))];
    const named = keys.length === 1 ? keys[0]! : `${keys.slice(0, -1).join(', ')} and ${keys.at(-1)!}`;
    return `${named} would run ${keys.length === 1 ? 'a program' : 'programs'} on your next git command`;
  }

  dispose(): void {
    if (this.scratch !== null) rmSync(this.scratch, { recursive: true, force: true });
    this.scratch = null;
  }

  /** "key\nvalue" of each entry that names a program; undefined when git could not read the file. */
  private programEntries(path: string): string[] | undefined {
    const scratch = this.scratchDirectory();
    const result = spawnSync('git', ['config', '--file', path, '--no-includes', '--list', '--null'], {
      cwd: scratch,
      encoding: 'utf8',
      timeout: GIT_TIMEOUT_MS,
      stdio: ['ignore', 'pipe', 'ignore'],
      // SECURITY: only the file itself is read (no includes it names, no system or user
      // configuration, no repository around the scratch directory), so what is judged is what the
      // jail wrote, and listing it runs nothing — jail/planted-files.test.ts ("an include is not
      // followed", "a new repository whose config names core.fsmonitor ...").
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: scratch,
        XDG_CONFIG_HOME: scratch,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_CEILING_DIRECTORIES: dirname(scratch),
        LC_ALL: 'C',
      },
    });
    if (result.error !== undefined || result.status !== 0) return undefined;
    const entries: string[] = [];
    for (const record of result.stdout.split('\0')) {
      if (record === '') continue;
      const newline = record.indexOf('\n');
      const key = (newline === -1 ? record : record.slice(0, newline)).toLowerCase();
      const value = newline === -1 ? null : record.slice(newline + 1);
      const rule = PROGRAM_KEYS.find((candidate) => candidate.key.test(key));
      if (rule !== undefined && (rule.program?.(value) ?? true)) entries.push(`${key}\n${value ?? ''}`);
    }
    return entries;
  }

  private writeScratch(text: string): string {
    const path = join(this.scratchDirectory(), 'config-before');
    writeFileSync(path, text);
    return path;
  }

  private scratchDirectory(): string {
    this.scratch ??= mkdtempSync(join(tmpdir(), 'srt-gw-planted-'));
    return this.scratch;
  }
}

function holdFile(path: string, reason: string): HeldFile {
  for (let attempt = 1; ; attempt++) {
    const heldAs = `${path}${HELD_SUFFIX}${attempt === 1 ? '' : `-${attempt}`}`;
    if (lstatOf(heldAs) !== undefined) continue;
    try {
      renameSync(path, heldAs);
      return { path, heldAs, reason };
    } catch (error) {
      // Still reported: the user must know even when it could not be moved.
      return { path, heldAs: path, reason: `${reason} (could not move it aside: ${(error as NodeJS.ErrnoException).code ?? String(error)})` };
    }
  }
}

function isBoolean(value: string | null): boolean {
  return value === null || /^(true|false|yes|no|on|off|1|0|)$/i.test(value.trim());
}

function listDirectory(path: string): Dirent[] | undefined {
  try {
    return readdirSync(path, { withFileTypes: true });
  } catch {
    return undefined;
  }
}

function lstatOf(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function basenameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** A path as a shell word: quoted when it holds anything but the plain characters of paths. */
function shellWord(path: string): string {
  return /^[A-Za-z0-9_./@%+=:,-]+$/.test(path) ? path : `'${path.replaceAll("'", `'\\''`)}'`;
}
