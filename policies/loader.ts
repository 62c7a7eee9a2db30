// Loads a policy file: the file itself (policy-document.ts) and whatever it extends, merged
// (extends.ts). A file with any problem never loads; the error lists every problem as
// "file:line:column: what to write instead".
import { readFileSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { resolvePolicy, whyUnreadable } from './extends.js';
import type { Policy } from './types.js';

export interface ParsePolicyOptions {
  /**
   * The directory relative paths in the policy start from (filesystem entries, secret files,
   * `extends:` files). Default: the directory of `file`; the working directory for "<inline>".
   */
  baseDirectory?: string;
  /** See RootPolicyText.onExtendedFile: sees each extended file's exact text before it is used. */
  onExtendedFile?: (path: string, text: string) => void;
}

/** Parses and validates policy text, with what it extends. `file` names the source in error messages. */
export function parsePolicy(text: string, file = '<inline>', options: ParsePolicyOptions = {}): Policy {
  const directory = options.baseDirectory === undefined ? dirname(resolve(file)) : resolve(options.baseDirectory);
  const identity = file === '<inline>' ? file : fileIdentity(options.baseDirectory === undefined ? resolve(file) : join(directory, basename(file)));
  return resolvePolicy({ text, name: file, directory, identity, onExtendedFile: options.onExtendedFile });
}

/** Reads and parses a policy file; errors name `path` as given. */
export async function loadPolicyFile(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw unreadable(path, error);
  }
  return parsePolicy(text, path);
}

/** loadPolicyFile() for callers that cannot await (startup of the CLI). */
export function loadPolicyFileSync(path: string): Policy {
  return parsePolicy(readPolicyFileText(path), path);
}

/**
 * A policy file's text, for callers that vet it before parsing it (trust of discovered files):
 * the same read and the same POLICY_UNREADABLE message as loading.
 */
export function readPolicyFileText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw unreadable(path, error);
  }
}

/** The same file under any name (symlinks, "./a/../b"), so a cycle through a link is still a cycle. */
function fileIdentity(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

function unreadable(path: string, error: unknown): SrtGwError {
  return new SrtGwError(ErrorCodes.POLICY_UNREADABLE, `cannot read policy file ${path}: ${whyUnreadable(error)}`, { cause: error });
}

export { allowHostRule } from './allow-host-rule.js';
export { policyFiles } from './policy-files.js';
