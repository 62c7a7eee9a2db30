// The user's srt-gw state directory: what srt-gw remembers between runs that no jail may change
// (trusted policy files). It exists before every run, so the jail hides an existing directory
// instead of a path it could create.
import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';

/** `$XDG_STATE_HOME/srt-gw`, else `~/.local/state/srt-gw` (a relative XDG_STATE_HOME is ignored, as the spec says). */
export function stateDirectoryPath(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const base = env.XDG_STATE_HOME;
  return join(base !== undefined && isAbsolute(base) ? base : join(home, '.local', 'state'), 'srt-gw');
}

/** Creates the state directory (0700) if absent and checks that only its owner can write it. */
export function ensureStateDirectory(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const dir = stateDirectoryPath(env, home);
  let stat;
  try {
    if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
    stat = lstatSync(dir);
  } catch (error) {
    throw new SrtGwError(
      ErrorCodes.CONFIG_INVALID,
      `cannot use ${dir} as srt-gw's state directory (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); set XDG_STATE_HOME to a directory you own`,
      { cause: error },
    );
  }
  // SECURITY: whoever can write here can mark any policy file trusted — cli/policy-trust.test.ts.
  if (!stat.isDirectory() || (stat.mode & 0o022) !== 0 || (typeof process.getuid === 'function' && stat.uid !== process.getuid())) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${dir} must be a directory of yours that only you can write (run: chmod 700 ${dir})`);
  }
  return dir;
}
