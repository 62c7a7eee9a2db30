#!/usr/bin/env node
// What reviewed writes (`srt-gw run --write-mode overlay`) cost on a large tree: a command that
// writes 10,000 small files in 100 directories and 200 MB in 4 large files, run with
// --write-mode direct and overlay. For each: the command's own time inside the jail, and the time
// from its end to srt-gw's exit — where overlay mode reviews the upper layer and applies the
// changes to the host. Prints a table and writes JSON to bench/results/. Method: bench/README.md.
//   node bench/overlay-writes.mjs [--rounds N] [--files N] [--mb N]     (dist/ must be built)
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './statistics.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const CLI = join(resolve(BENCH_DIR, '..'), 'dist', 'bin', 'srt-gw.js');
const RESULTS_DIR = join(BENCH_DIR, 'results');

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const at = argv.indexOf(name);
  return at === -1 ? fallback : Number(argv[at + 1]);
};
const ROUNDS = option('--rounds', 3);
const FILES = option('--files', 10_000);
const MEGABYTES = option('--mb', 200);
const LARGE_FILES = 4;

// Not under /tmp: the jail's /tmp is private.
const base = mkdtempSync('/var/tmp/srt-gw-bench-overlay-');
const state = join(base, 'state');
mkdirSync(state);
const policy = join(base, 'policy.yaml');
writeFileSync(policy, 'version: 1\nrules: []\n');

/** The workload, as a shell script: prints its start and end (ns) on stdout. */
const script = [
  'date +%s%N',
  `i=0; while [ $i -lt 100 ]; do mkdir -p d$i; i=$((i+1)); done`,
  // 100 files per directory, 1 KiB each, written by one awk process (a shell loop would measure the shell).
  `awk 'BEGIN { s = sprintf("%1024s", ""); for (i = 0; i < ${FILES}; i++) { f = "d" (i % 100) "/f" i; printf "%s", s > f; close(f) } }'`,
  `i=0; while [ $i -lt ${LARGE_FILES} ]; do head -c ${Math.floor((MEGABYTES * 1024 * 1024) / LARGE_FILES)} /dev/zero > big$i; i=$((i+1)); done`,
  'date +%s%N',
].join(' && ');

function runOnce(mode) {
  const cwd = mkdtempSync(join(base, `${mode}-`));
  return new Promise((resolveRun, reject) => {
    const started = process.hrtime.bigint();
    const wallStart = Date.now();
    const child = spawn(process.execPath, [CLI, 'run', '-q', '--policy', policy, '--ca-dir', join(state, 'ca'), '--write-mode', mode, '--', 'sh', '-c', script], {
      cwd,
      env: { ...process.env, XDG_STATE_HOME: state },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const totalMs = Number(process.hrtime.bigint() - started) / 1e6;
      const wallEnd = Date.now();
      if (code !== 0) return reject(new Error(`srt-gw run --write-mode ${mode} exited ${code}`));
      const [commandStart, commandEnd] = out.trim().split('\n').map((line) => Number(BigInt(line) / 1_000_000n));
      const files = readdirSync(cwd, { recursive: true }).length;
      const bytes = readdirSync(cwd).filter((name) => name.startsWith('big')).reduce((sum, name) => sum + statSync(join(cwd, name)).size, 0);
      rmSync(cwd, { recursive: true, force: true });
      resolveRun({ mode, totalMs, commandMs: commandEnd - commandStart, afterCommandMs: wallEnd - commandEnd, startupMs: commandStart - wallStart, files, bytes });
    });
  });
}

const results = { direct: [], overlay: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ['direct', 'overlay']) results[mode].push(await runOnce(mode));
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}

const summary = Object.fromEntries(
  Object.entries(results).map(([mode, runs]) => [
    mode,
    {
      totalMs: median(runs.map((run) => run.totalMs)),
      commandMs: median(runs.map((run) => run.commandMs)),
      afterCommandMs: median(runs.map((run) => run.afterCommandMs)),
      entriesOnHost: runs[0].files,
      bytesOnHost: runs[0].bytes,
    },
  ]),
);
const row = (mode) => {
  const s = summary[mode];
  return `${mode.padEnd(8)} ${s.commandMs.toFixed(0).padStart(10)} ${s.afterCommandMs.toFixed(0).padStart(16)} ${s.totalMs.toFixed(0).padStart(9)} ${String(s.entriesOnHost).padStart(8)} ${(s.bytesOnHost / 1048576).toFixed(0).padStart(8)}`;
};
process.stdout.write(
  `${FILES} files of 1 KiB in 100 directories + ${MEGABYTES} MB in ${LARGE_FILES} files; median of ${ROUNDS} rounds (ms)\n` +
    `mode     command-ms  after-command-ms  total-ms  entries  big-MB\n${row('direct')}\n${row('overlay')}\n` +
    `review + apply ≈ ${(summary.overlay.afterCommandMs - summary.direct.afterCommandMs).toFixed(0)} ms\n`,
);
mkdirSync(RESULTS_DIR, { recursive: true });
const file = join(RESULTS_DIR, `overlay-writes-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ files: FILES, megabytes: MEGABYTES, rounds: ROUNDS, summary, results }, null, 2)}\n`);
process.stdout.write(`written: ${file}\n`);
