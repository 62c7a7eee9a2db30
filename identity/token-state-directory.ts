// Where `srt-gw token` keeps the signing key of the tokens it mints, and what it minted and revoked:
// `client-tokens/` in srt-gw's state directory (jail/state-directory.ts), or in the directory
// `--state-dir` names, for a gateway that runs as another user (`srt-gw serve` under a service
// account, tokens minted with `sudo -u that-user srt-gw token issue --state-dir ...`).
import { chmodSync, lstatSync, mkdirSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { ensureStateDirectory, stateDirectoryPath } from '../jail/state-directory.js';

export const CLIENT_TOKENS_DIRECTORY = 'client-tokens';
export const SIGNING_KEY_FILE = 'signing-key.jwk';
export const ISSUED_TOKENS_FILE = 'issued.jsonl';
export const REVOKED_TOKENS_FILE = 'revoked.jsonl';

/** The files of one client-tokens directory. */
export interface TokenStatePaths {
  readonly directory: string;
  readonly signingKey: string;
  readonly issued: string;
  readonly revoked: string;
}

export function tokenStatePaths(stateDirectory: string | undefined): TokenStatePaths {
  const directory = join(stateDirectory === undefined ? stateDirectoryPath() : resolve(stateDirectory), CLIENT_TOKENS_DIRECTORY);
  return { directory, signingKey: join(directory, SIGNING_KEY_FILE), issued: join(directory, ISSUED_TOKENS_FILE), revoked: join(directory, REVOKED_TOKENS_FILE) };
}

/**
 * For minting and revoking: creates the directories (0700) if absent and checks that only this
 * user can write them.
 * SECURITY: whoever can write here can mint tokens for any client or undo a revocation —
 * identity/token-state-directory.test.ts.
 */
export function ensureTokenStateDirectory(stateDirectory: string | undefined): TokenStatePaths {
  if (stateDirectory === undefined) ensureStateDirectory();
  else ensurePrivateDirectory(resolve(stateDirectory), '--state-dir');
  const paths = tokenStatePaths(stateDirectory);
  ensurePrivateDirectory(paths.directory, 'the client-tokens directory');
  return paths;
}

/**
 * For the gateway, which only reads: the directory may not exist yet (no token minted), but if it
 * does, no one but its owner (this user, or root) may be able to write it.
 */
export function checkTokenStateDirectory(stateDirectory: string | undefined): TokenStatePaths {
  const paths = tokenStatePaths(stateDirectory);
  let stats: Stats;
  try {
    stats = lstatSync(paths.directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return paths;
    throw unusable(paths.directory, error);
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined;
  if (!stats.isDirectory() || (stats.mode & 0o022) !== 0 || (uid !== undefined && stats.uid !== uid && stats.uid !== 0)) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${paths.directory} must be a directory that only its owner (this user or root) can write (run: chmod 700 ${paths.directory})`);
  }
  return paths;
}

function ensurePrivateDirectory(dir: string, what: string): void {
  let stats: Stats;
  try {
    if (mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined) chmodSync(dir, 0o700);
    stats = lstatSync(dir);
  } catch (error) {
    throw unusable(dir, error, what);
  }
  if (!stats.isDirectory() || (stats.mode & 0o022) !== 0 || (typeof process.getuid === 'function' && stats.uid !== process.getuid())) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${dir} must be a directory of yours that only you can write (run: chmod 700 ${dir}), or name another with --state-dir`);
  }
}

function unusable(dir: string, error: unknown, what = 'the client-tokens directory'): SrtGwError {
  const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
  return new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot use ${dir} as ${what} (${code}); name a directory you own with --state-dir`, { cause: error });
}
