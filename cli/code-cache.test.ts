import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { buildSync } from 'esbuild';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { compileWithCodeCache, type CodeCacheOutcome } from './code-cache.js';

// V8 keeps compiled scripts in memory per process: a second compile of the same source in this
// process would be served from there whatever the cache file holds. Whether a cache file is
// used or refused is therefore checked in a fresh node process, running this module built to JS.
const builtDir = mkdtempSync(join(tmpdir(), 'srt-gw-code-cache-build-'));
const builtModule = join(builtDir, 'code-cache.cjs');
buildSync({ entryPoints: [join(import.meta.dirname, 'code-cache.ts')], outfile: builtModule, bundle: true, platform: 'node', format: 'cjs', logLevel: 'silent' });
afterAll(() => rmSync(builtDir, { recursive: true, force: true }));

function compileInFreshProcess(file: string, cacheFile: string, save = false): { cache: CodeCacheOutcome; exports: unknown } {
  const script = `const compiled = require(${JSON.stringify(builtModule)}).compileWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(cacheFile)});
const exports = compiled.run();
if (${save}) compiled.saveCache();
process.stdout.write(JSON.stringify({ cache: compiled.cache, exports }));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { cache: CodeCacheOutcome; exports: unknown };
}

// A module with enough functions that V8 has real bytecode to cache, a shebang (as the bundle
// has), and a relative require resolved from the module's own directory.
const moduleSource = (answer: number) => `#!/usr/bin/env node
const helper = require('./helper.cjs');
function square(n) { return n * n; }
function describe() { return { answer: ${answer}, squared: square(${answer}), helper: helper(), file: __filename, dir: __dirname }; }
module.exports = describe();
`;

let dir: string;
let file: string;
let cacheFile: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'srt-gw-code-cache-test-'));
  file = join(dir, 'bundle.cjs');
  cacheFile = join(dir, '.bundle.v8cache');
  writeFileSync(join(dir, 'helper.cjs'), "module.exports = () => 'from helper';\n");
  writeFileSync(file, moduleSource(41));
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('compileWithCodeCache', () => {
  it('runs the module like require would: exports, __filename, __dirname, relative require', () => {
    const compiled = compileWithCodeCache(file, cacheFile);
    expect(compiled.cache).toBe('absent');
    expect(compiled.run()).toEqual({ answer: 41, squared: 1681, helper: 'from helper', file, dir });
    // The top level runs once, however often run() is called.
    expect(compiled.run()).toBe(compiled.run());
  });

  it('writes a cache that the next process compiling the same file uses', () => {
    const first = compileWithCodeCache(file, cacheFile);
    first.run();
    expect(first.saveCache()).toBe(true);
    expect(readFileSync(cacheFile).subarray(0, 19).toString()).toBe('srt-gw-code-cache 1');
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([]);

    expect(compileInFreshProcess(file, cacheFile)).toMatchObject({ cache: 'used', exports: { answer: 41, squared: 1681 } });
  });

  it('a cache written by another process is used here too', () => {
    expect(compileInFreshProcess(file, cacheFile, true).cache).toBe('absent');
    expect(compileInFreshProcess(file, cacheFile).cache).toBe('used');
  });

  it('never runs stale bytecode for an edited file of the same length', () => {
    const first = compileWithCodeCache(file, cacheFile);
    first.run();
    first.saveCache();
    // Same length, different code: V8's own check (length, version, flags) would accept the cache.
    writeFileSync(file, moduleSource(42));
    utimesSync(file, new Date(), new Date(Date.now() + 5000));

    expect(compileInFreshProcess(file, cacheFile)).toMatchObject({ cache: 'rejected', exports: { answer: 42, squared: 1764 } });
  });

  it('reports a cache V8 refuses and still runs the module from source', () => {
    const first = compileWithCodeCache(file, cacheFile);
    first.saveCache();
    const raw = readFileSync(cacheFile);
    const headerLength = raw.indexOf(0x0a) + 1;
    // The stamp still matches; the bytecode after it is garbage.
    writeFileSync(cacheFile, Buffer.concat([raw.subarray(0, headerLength), Buffer.alloc(raw.length - headerLength, 0x5a)]));

    expect(compileInFreshProcess(file, cacheFile)).toMatchObject({ cache: 'rejected', exports: { answer: 41 } });
  });

  it('with no cache file asked for, reads and writes nothing', () => {
    const compiled = compileWithCodeCache(file, null);
    expect(compiled.cache).toBe('off');
    expect(compiled.run()).toMatchObject({ answer: 41 });
    expect(compiled.saveCache()).toBe(false);
    expect(existsSync(cacheFile)).toBe(false);
  });

  it('returns false, and leaves nothing behind, where the cache cannot be written', () => {
    const unwritable = join(dir, 'missing-directory', '.bundle.v8cache');
    const compiled = compileWithCodeCache(file, unwritable);
    compiled.run();
    const serialise = vi.spyOn(Script.prototype, 'createCachedData');
    try {
      expect(compiled.saveCache()).toBe(false);
      // Nothing is serialised for a file that cannot be written (an installation owned by root).
      expect(serialise).not.toHaveBeenCalled();
    } finally {
      serialise.mockRestore();
    }
    expect(readdirSync(dir).sort()).toEqual(['bundle.cjs', 'helper.cjs']);
  });
});
