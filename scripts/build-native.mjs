#!/usr/bin/env node
// npm install hook: builds the jail's native helpers on Linux with the system C compiler.
// It never fails the install: without the helpers `srt-gw doctor` and `srt-gw run` refuse to
// work and say what to install, which is more useful than a broken `npm install`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const script = join(root, 'native', 'build.sh');
if (process.platform !== 'linux' || !existsSync(script)) process.exit(0);
const result = spawnSync('sh', [script], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
if (result.status !== 0) {
  process.stderr.write(`srt-gw: the native helpers were not built; srt-gw run will not work until they are.\n${result.stderr ?? ''}`);
}
