// Trust of policy files that `srt-gw run` finds on its own. A jail can write its working tree, so
// a ./.srt-gw.yaml found there may have been planted by an earlier run; it is obeyed only if its
// exact content was trusted outside any jail (`srt-gw policy trust`), as direnv does for .envrc.
// The record lives in the user's state directory, which every jail hides.
import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative, isAbsolute } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { ensureStateDirectory, stateDirectoryPath } from '../jail/state-directory.js';

const TRUST_FILE = 'trusted-policies.json';

/**
 * The record's content: `{ version: 1, files: { realPath: sha256Hex } }`, or null when it is not
 * that. Checked by hand, not with zod: every `srt-gw run` loads this module, and zod costs more
 * start-up time than the rest of a run that needs no policy file.
 */
function parseTrustFile(value: unknown): Record<string, string> | null {
  if (typeof value !== 'object' || value === null) return null;
  const { version, files } = value as { version?: unknown; files?: unknown };
  if (version !== 1 || typeof files !== 'object' || files === null || Array.isArray(files)) return null;
  const entries = Object.entries(files as Record<string, unknown>);
  if (!entries.every(([, hash]) => typeof hash === 'string' && /^[0-9a-f]{64}$/.test(hash))) return null;
  return Object.fromEntries(entries) as Record<string, string>;
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The file's real path (symlinks resolved), or the path as given when it does not exist. */
export function trustKey(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

export class PolicyTrustStore {
  private constructor(
    private readonly file: string,
    private readonly files: Record<string, string>,
  ) {}

  /** Reads the record; a missing one is empty. A corrupt one trusts nothing and says so when written. */
  static open(env: NodeJS.ProcessEnv = process.env, home?: string): PolicyTrustStore {
    const file = join(stateDirectoryPath(env, home), TRUST_FILE);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new PolicyTrustStore(file, {});
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
    }
    let files: Record<string, string> | null;
    try {
      files = parseTrustFile(JSON.parse(text));
    } catch {
      files = null;
    }
    if (files === null) {
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${file} is not a trust record srt-gw wrote; remove it and trust your policy files again (srt-gw policy trust FILE)`);
    }
    return new PolicyTrustStore(file, files);
  }

  isTrusted(path: string, text: string): boolean {
    return this.files[trustKey(path)] === sha256Hex(text);
  }

  /** True when the file was trusted in some content (so a refusal can say it changed). */
  knows(path: string): boolean {
    return trustKey(path) in this.files;
  }

  /**
   * Throws POLICY_UNTRUSTED unless `text` is the content trusted for `path`. Files under
   * `exemptDirectory` (srt-gw's own config directory, which no jail can write) pass.
   */
  check(path: string, text: string, exemptDirectory?: string): void {
    if (exemptDirectory !== undefined && isWithin(trustKey(path), trustKey(exemptDirectory))) return;
    if (!this.isTrusted(path, text)) throw untrustedPolicyError(path, this.knows(path));
  }

  /** The trusted files and their hashes, sorted by path. */
  entries(): [string, string][] {
    return Object.entries(this.files).sort(([a], [b]) => a.localeCompare(b));
  }

  trust(path: string, text: string): void {
    this.files[trustKey(path)] = sha256Hex(text);
  }

  /** True when the file had a record. */
  forget(path: string): boolean {
    const key = trustKey(path);
    if (!(key in this.files)) return false;
    delete this.files[key];
    return true;
  }

  /** Writes the record atomically (a reader sees the old or the new one, never half). */
  save(env: NodeJS.ProcessEnv = process.env, home?: string): void {
    ensureStateDirectory(env, home);
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify({ version: 1, files: Object.fromEntries(this.entries()) }, null, 2)}\n`, { mode: 0o600 });
    renameSync(temporary, this.file);
  }
}

/** The error for a discovered policy file that is not trusted in its current content. */
export function untrustedPolicyError(path: string, changed: boolean): SrtGwError {
  const what = changed ? 'changed since you trusted it' : 'not trusted';
  return new SrtGwError(
    ErrorCodes.POLICY_UNTRUSTED,
    `${path} is ${what}: a command in a jail can write files here, so srt-gw obeys a policy it found on its own only once you have trusted it. Review it, then run: srt-gw policy trust ${path}  (or name it with --policy for this run)`,
  );
}

function isWithin(path: string, directory: string): boolean {
  const rel = relative(directory, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}
