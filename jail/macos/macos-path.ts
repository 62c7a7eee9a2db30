// Paths the way Seatbelt compares them on macOS: canonical, symlinks resolved, through /private.
// Seatbelt matches the path of the vnode an operation reaches, so a rule on "/tmp/x" never
// matches anything (the kernel reaches "/private/tmp/x"); every path must be canonical first.
import { realpathSync } from 'node:fs';
import { isAbsolute } from 'node:path';

/** realpath(3): throws when the path does not exist. Injected so the mapping is testable on Linux. */
export type Realpath = (path: string) => string;

/**
 * macOS keeps these at the root as symlinks into /private. realpath() on a Mac already returns
 * the /private form; the table makes the mapping explicit (and testable where the links do not exist).
 */
const PRIVATE_ALIASES = ['/tmp', '/var', '/etc'] as const;

/**
 * The canonical macOS spelling of an absolute path: symlinks resolved by `realpath` (for a path
 * that does not exist, its deepest existing ancestor, resolved, plus the rest), then /tmp, /var
 * and /etc mapped to /private/tmp, /private/var and /private/etc.
 */
export function macosCanonicalPath(path: string, realpath: Realpath = realpathSync.native): string {
  if (!isAbsolute(path)) throw new TypeError(`macosCanonicalPath needs an absolute path (got ${JSON.stringify(path)})`);
  const parts = path.split('/').filter((part) => part !== '' && part !== '.');
  const rest: string[] = [];
  let resolved: string | undefined;
  // ".." is applied after the symlinks before it, as the kernel does: realpath handles it when the
  // path exists; for a missing tail it is applied lexically to what exists.
  while (resolved === undefined) {
    const candidate = '/' + parts.join('/');
    try {
      resolved = realpath(candidate);
    } catch {
      if (parts.length === 0) resolved = '/';
      else rest.unshift(parts.pop()!);
    }
  }
  let result = resolved;
  for (const part of rest) {
    if (part === '..') result = result === '/' ? '/' : result.slice(0, result.lastIndexOf('/')) || '/';
    else result = result === '/' ? `/${part}` : `${result}/${part}`;
  }
  for (const alias of PRIVATE_ALIASES) {
    if (result === alias || result.startsWith(`${alias}/`)) return `/private${result}`;
  }
  return result;
}
