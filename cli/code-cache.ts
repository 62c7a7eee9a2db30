// Compiles a CommonJS file through V8's code cache, kept in a file beside it. Node 20 has no
// compile cache of its own (module.enableCompileCache came in 22.1), and compiling the bundled
// command line is a large part of `srt-gw run -- true`'s start-up: with the cache, V8 reads back
// the bytecode of every function the last run of that command compiled instead of parsing again.
//
// The cache is code V8 runs: it is only ever read from, and written to, the directory of the file
// itself (whoever can write there can already change the code), never a shared temporary one.
import { closeSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import Module, { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';

/** What became of the cache: read and accepted, present but refused, not there, or not asked for. */
export type CodeCacheOutcome = 'used' | 'rejected' | 'absent' | 'off';

export interface CodeCachedModule {
  readonly cache: CodeCacheOutcome;
  /** Runs the module's top level (once) and returns its exports. */
  run(): unknown;
  /** Writes the cache with every function compiled so far; false (never a throw) when it cannot. */
  saveCache(): boolean;
}

/**
 * V8 checks its version, its flags and the source's length, not the source's content: an edited
 * file of the same length would run stale bytecode. Each cache therefore starts with a line naming
 * the size and modification time of the file it was made from.
 */
const HEADER_PREFIX = 'srt-gw-code-cache 1 ';

function sourceStamp(file: string): string {
  const stat = statSync(file);
  return `${HEADER_PREFIX}${stat.size} ${stat.mtimeMs}\n`;
}

function readCache(cacheFile: string, stamp: string): { data: Buffer | undefined; stale: boolean } {
  let raw: Buffer;
  try {
    raw = readFileSync(cacheFile);
  } catch {
    return { data: undefined, stale: false };
  }
  const header = Buffer.from(stamp);
  if (raw.length <= header.length || !raw.subarray(0, header.length).equals(header)) return { data: undefined, stale: true };
  return { data: raw.subarray(header.length), stale: false };
}

/** Compiles `file` as a CommonJS module, from `cacheFile` when it holds this file's code (null: no cache). */
export function compileWithCodeCache(file: string, cacheFile: string | null): CodeCachedModule {
  const stamp = sourceStamp(file);
  const { data, stale } = cacheFile === null ? { data: undefined, stale: false } : readCache(cacheFile, stamp);
  // A bundle may start with a shebang line, which is not JavaScript inside the module wrapper.
  const source = readFileSync(file, 'utf8').replace(/^#!.*/, '');
  const script = new Script(Module.wrap(source), { filename: file, cachedData: data });
  const cache: CodeCacheOutcome =
    cacheFile === null ? 'off' : data === undefined ? (stale ? 'rejected' : 'absent') : script.cachedDataRejected ? 'rejected' : 'used';
  let exports: unknown;
  let ran = false;
  return {
    cache,
    run() {
      if (ran) return exports;
      ran = true;
      const module = new Module(file);
      module.filename = file;
      const wrapper = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
      wrapper.call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
      module.loaded = true;
      exports = module.exports;
      return exports;
    },
    saveCache() {
      if (cacheFile === null) return false;
      // Written beside and renamed over: a concurrent start reads an old cache or a new one, never half of one.
      const temporary = `${cacheFile}.${process.pid}.tmp`;
      let fd: number;
      try {
        fd = openSync(temporary, 'w', 0o644);
      } catch {
        // An installation this user cannot write (a global install owned by root): every run
        // would otherwise serialise the cache (milliseconds at exit) only to fail here.
        return false;
      }
      try {
        writeSync(fd, stamp);
        writeSync(fd, script.createCachedData());
        closeSync(fd);
        renameSync(temporary, cacheFile);
        return true;
      } catch {
        try {
          closeSync(fd);
        } catch {
          // closed already
        }
        rmSync(temporary, { force: true });
        return false;
      }
    },
  };
}

/**
 * Requires a CommonJS file the bundled command line loads on first use (dist/bin/vendor/NAME.cjs:
 * undici at the first upstream request, zod and yaml with a policy file) through a cache of its
 * own beside it, `.NAME.v8cache`, written as the process exits when it was absent or stale: a
 * plain require() compiles undici from source on every run. SRT_GW_CODE_CACHE=0 turns it off.
 */
export function requireWithCodeCache(file: string): unknown {
  const cacheFile = process.env.SRT_GW_CODE_CACHE === '0' ? null : join(dirname(file), `.${basename(file, '.cjs')}.v8cache`);
  const compiled = compileWithCodeCache(file, cacheFile);
  if (compiled.cache === 'absent' || compiled.cache === 'rejected') process.once('exit', () => compiled.saveCache());
  return compiled.run();
}
