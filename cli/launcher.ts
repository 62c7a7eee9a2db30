#!/usr/bin/env node
// The `srt-gw` executable (dist/bin/srt-gw.js): runs the bundled command line,
// dist/bin/srt-gw-cli.cjs, through a V8 code cache kept per subcommand beside it. The first
// `srt-gw run` writes .srt-gw-cli.run.v8cache as it exits; the next ones start from that
// bytecode (bench/jail.mjs measures the start-up). SRT_GW_CODE_CACHE=0 turns the cache off.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileWithCodeCache, type CodeCachedModule } from './code-cache.js';

/** Subcommands with a cache of their own: each trains it with the functions it uses. */
const CACHED_COMMANDS = new Set(['run', 'serve', 'policy', 'doctor', 'ca']);

function subcommand(argv: readonly string[]): string {
  const first = argv.find((argument) => !argument.startsWith('-'));
  return first !== undefined && CACHED_COMMANDS.has(first) ? first : 'other';
}

const directory = dirname(fileURLToPath(import.meta.url));
const cli = join(directory, 'srt-gw-cli.cjs');
const cacheFile = join(directory, `.srt-gw-cli.${subcommand(process.argv.slice(2))}.v8cache`);
let compiled: CodeCachedModule;
try {
  compiled = compileWithCodeCache(cli, process.env.SRT_GW_CODE_CACHE === '0' ? null : cacheFile);
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  process.stderr.write(`srt-gw: ${cli} is missing: this installation is incomplete; reinstall srt-gw (in a checkout: npm run build)\n`);
  process.exit(1);
}
// Written at exit, so the cache holds the functions this command actually ran.
if (compiled.cache !== 'used' && compiled.cache !== 'off') process.once('exit', () => compiled.saveCache());
compiled.run();
