// Canonical paths, as the kernel resolves them: "~" expanded, "." and ".." applied and symlinks
// followed (dangling ones included), so that every filesystem rule compares like with like.
import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute } from 'node:path';
import type { FilesystemPathEntry } from '../../policies/types.js';

/** As the kernel's MAXSYMLINKS: more links than this in one path is a loop. */
const MAX_SYMLINKS = 40;

/**
 * The path the kernel would reach: ".", ".." and symlinks (dangling ones included) resolved; the
 * part below the deepest existing directory is appended as written. A symlink loop stays as named.
 */
export function canonicalPath(path: string): string {
  if (!isAbsolute(path)) throw new TypeError(`canonicalPath needs an absolute path (got ${JSON.stringify(path)})`);
  // Most protected paths do not exist. Nothing at a plainly spelled path (not even a dangling
  // symlink) is its parent's canonical form plus its name: found with one lstat that throws no
  // exception, where realpath's failure and a walk from / cost ~10x as much (start-up of run).
  if (path !== '/' && isPlainPath(path) && nothingAt(path)) {
    const parent = canonicalPath(parentOf(path));
    return `${parent === '/' ? '' : parent}/${basename(path)}`;
  }
  try {
    // .native: the JS realpath applies ".." lexically before following symlinks; the kernel does not.
    return realpathSync.native(path);
  } catch {
    return walkPath(path, { left: MAX_SYMLINKS });
  }
}

/** Whether `path` is `root` or below it (both canonical). */
export function isWithin(path: string, root: string): boolean {
  // Without building `${root}/`: called for every rule and path pair in some checks.
  return path === root || root === '/' || (path.charCodeAt(root.length) === 0x2f && path.startsWith(root));
}

function walkPath(path: string, budget: { left: number }): string {
  let resolved = '/';
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved = parentOf(resolved);
      continue;
    }
    const next = resolved === '/' ? `/${part}` : `${resolved}/${part}`;
    let target: string | undefined;
    try {
      target = lstatSync(next, { throwIfNoEntry: false })?.isSymbolicLink() === true ? readlinkSync(next) : undefined;
    } catch {
      target = undefined;
    }
    if (target === undefined || budget.left <= 0) {
      resolved = next;
      continue;
    }
    budget.left -= 1;
    resolved = walkPath(target.startsWith('/') ? target : `${resolved}/${target}`, budget);
  }
  return resolved;
}

/** What is at `path`, symlinks followed: nothing (no kind), a directory or a file. */
export function probe(path: string): { kind?: 'directory' | 'file' } {
  try {
    const stat = statSync(path, { throwIfNoEntry: false });
    return stat === undefined ? {} : { kind: stat.isDirectory() ? 'directory' : 'file' };
  } catch {
    return {};
  }
}

/** Whether `path` itself is a symbolic link (not followed). */
export function isSymlink(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink() === true;
  } catch {
    return false;
  }
}

/** A policy path as written: "~" expanded, a relative one joined to its policy file's directory. */
export function expandWritten(entry: FilesystemPathEntry, home: string): string {
  const written = entry.path;
  if (written === '~' || written.startsWith('~/')) return expandHome(written, home);
  return written.startsWith('/') ? written : `${entry.baseDirectory}/${written}`;
}

/** "~" and "~/..." in the given home; any other path as written. */
export function expandHome(written: string, home: string): string {
  if (written === '~') return home;
  return written.startsWith('~/') ? `${home}/${written.slice(2)}` : written;
}

/** ENOENT only: any other failure (ENOTDIR, ELOOP, EACCES) is left to the careful walk. */
export function nothingAt(path: string): boolean {
  try {
    return lstatSync(path, { throwIfNoEntry: false }) === undefined;
  } catch {
    return false;
  }
}

/** No "." or ".." segment and no empty one: the parent is the path minus its last name. */
function isPlainPath(path: string): boolean {
  return !path.includes('//') && !/\/\.\.?(\/|$)/.test(path) && !path.endsWith('/');
}

/** The parent directory; "/" is its own parent. */
export function parentOf(path: string): string {
  return path === '/' ? '/' : dirname(path);
}

/** How many names deep `path` is ("/" is 0). */
export function depthOf(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1;
}
