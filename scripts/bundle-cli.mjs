#!/usr/bin/env node
// Bundles the srt-gw command line into dist/bin (run by `npm run build`, after tsc). One file per
// lazily loaded part instead of ~150 modules: `srt-gw run -- true` starts ~50 ms sooner (module
// resolution and loading were most of its start-up; bench/jail.mjs measures it). The library
// entry (dist/index.js) stays unbundled.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bin');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { 'srt-gw': join(root, 'cli', 'main.ts') },
  outdir,
  bundle: true,
  splitting: true, // the CLI's dynamic imports (serve, run, policy, metrics, undici...) stay lazy
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // The CommonJS dependencies (undici, pino, prom-client, node-forge) call require().
  banner: { js: "import { createRequire as srtGwCreateRequire } from 'node:module'; const require = srtGwCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  legalComments: 'none',
});
