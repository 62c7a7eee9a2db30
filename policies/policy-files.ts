// The files a loaded policy came from. Its own module, free of the YAML parser and the schema,
// for `srt-gw run` and `serve`, which need the list but may never parse a policy.
import { resolve } from 'node:path';
import type { Policy } from './types.js';

/**
 * The files a policy was read from: the root file and every file it extends (not presets, which
 * ship with srt-gw). `srt-gw run` keeps them read-only in the jail; `serve` watches them.
 */
export function policyFiles(policy: Policy, rootFile: string): string[] {
  const files = [resolve(rootFile)];
  for (const source of policy.origin?.extended ?? []) {
    if (source.kind === 'file' && !files.includes(source.path)) files.push(source.path);
  }
  return files;
}
