#!/usr/bin/env node
// `npm run bench` (reviewed-writes part): what `srt-gw run --write-mode overlay` costs against
// --write-mode direct, on three workloads — build-like ones and a bulk one:
//   extract   `tar -x` of a package set of a few thousand files into node_modules (what npm ci does
//             once the tarballs are fetched), the set copied from this checkout's node_modules;
//   checkout  `git checkout` of a branch that adds that package set, in a clone of a local
//             repository the bench makes;
//   bulk      10,000 files of 1 KiB in 100 directories and 200 MB in 4 files (not by default:
//             --workloads extract,checkout,bulk).
// For each: wall time of the whole `srt-gw run`, CPU time of srt-gw and everything it started
// (the jail and the command), the command's own time inside the jail, and the time from the
// command's end to srt-gw's exit — where overlay mode reviews the upper layer and applies the
// changes; overlay's minus direct's is the apply step. Prints a table and writes JSON to
// bench/results/. Method and figures: bench/README.md.
//   node bench/overlay-writes.mjs [--rounds N] [--workloads extract,checkout,bulk] [--package-files N] [--files N] [--mb N]
//   Defaults: 3 rounds of extract and checkout of about 2,500 package files: 1-2 minutes.
//   (dist/ must be built; Linux with bubblewrap, as for srt-gw run)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { treeCpuSeconds } from './proc-stats.mjs';
import { median } from './statistics.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(BENCH_DIR, '..');
const CLI = join(REPO_ROOT, 'dist', 'bin', 'srt-gw.js');
const RESULTS_DIR = join(BENCH_DIR, 'results');

const argv = process.argv.slice(2);
const option = (name, fallback) => {
  const at = argv.indexOf(name);
  return at === -1 ? fallback : argv[at + 1];
};
const ROUNDS = Number(option('--rounds', 3));
const WORKLOADS = option('--workloads', 'extract,checkout').split(',');
const PACKAGE_FILES = Number(option('--package-files', 2500));
const FILES = Number(option('--files', 10_000));
const MEGABYTES = Number(option('--mb', 200));
const LARGE_FILES = 4;

for (const name of WORKLOADS) {
  if (!['extract', 'checkout', 'bulk'].includes(name)) throw new Error(`unknown workload ${name}: extract, checkout or bulk`);
}
if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);

const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'bench',
  GIT_AUTHOR_EMAIL: 'bench@example.test',
  GIT_COMMITTER_NAME: 'bench',
  GIT_COMMITTER_EMAIL: 'bench@example.test',
};

// Not under /tmp: the jail's /tmp is private.
const base = mkdtempSync('/var/tmp/srt-gw-bench-overlay-');
const state = join(base, 'state');
mkdirSync(state);
const policy = join(base, 'policy.yaml');
writeFileSync(policy, 'version: 1\nrules: []\n');

/** Whole packages of this checkout's node_modules, in name order, until they hold `files` files. */
function packageSet(files) {
  const modules = join(REPO_ROOT, 'node_modules');
  const names = readdirSync(modules)
    .filter((name) => !name.startsWith('.'))
    .flatMap((name) => (name.startsWith('@') ? readdirSync(join(modules, name)).map((inner) => `${name}/${inner}`) : [name]))
    .sort();
  const chosen = [];
  let count = 0;
  for (const name of names) {
    if (count >= files) break;
    const inside = readdirSync(join(modules, name), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).length;
    chosen.push(name);
    count += inside;
  }
  return { modules, names: chosen, files: count };
}

/** The inputs the workloads read (outside the directory they write), made once. */
function prepare() {
  const inputs = {};
  if (WORKLOADS.includes('extract') || WORKLOADS.includes('checkout')) {
    const set = packageSet(PACKAGE_FILES);
    const tarball = join(base, 'packages.tar');
    execFileSync('tar', ['-cf', tarball, '-C', set.modules, ...set.names]);
    inputs.packages = { tarball, files: set.files, packages: set.names.length, bytes: statSync(tarball).size };
    if (WORKLOADS.includes('checkout')) {
      // A repository whose `main` has a README and whose `packages` branch adds the package set.
      const repository = join(base, 'repository');
      mkdirSync(repository);
      const git = (...args) => execFileSync('git', args, { cwd: repository, env: { ...process.env, ...GIT_ENV }, stdio: ['ignore', 'ignore', 'inherit'] });
      git('init', '-q', '-b', 'main');
      writeFileSync(join(repository, 'README.md'), 'bench\n');
      git('add', 'README.md');
      git('commit', '-q', '-m', 'readme');
      git('checkout', '-q', '-b', 'packages');
      mkdirSync(join(repository, 'node_modules'));
      execFileSync('tar', ['-xf', tarball, '-C', join(repository, 'node_modules')]);
      git('add', '-A', '-f');
      git('commit', '-q', '-m', 'packages');
      git('checkout', '-q', 'main');
      inputs.repository = repository;
    }
  }
  return inputs;
}

/** The workload in the run directory `cwd`: made ready on the host, and the script the jail runs. */
function workload(name, inputs, cwd) {
  switch (name) {
    case 'extract':
      return { script: `mkdir node_modules && tar -xf ${inputs.packages.tarball} -C node_modules` };
    case 'checkout':
      // A local clone: its objects are hard links, checked out at `main` (the README only).
      execFileSync('git', ['clone', '-q', '--branch', 'main', inputs.repository, cwd], { env: { ...process.env, ...GIT_ENV }, stdio: ['ignore', 'ignore', 'inherit'] });
      return { script: 'git -c safe.directory=* checkout -q packages' };
    case 'bulk':
      return {
        script: [
          `i=0; while [ $i -lt 100 ]; do mkdir -p d$i; i=$((i+1)); done`,
          // 100 files per directory, 1 KiB each, written by one awk process (a shell loop would measure the shell).
          `awk 'BEGIN { s = sprintf("%1024s", ""); for (i = 0; i < ${FILES}; i++) { f = "d" (i % 100) "/f" i; printf "%s", s > f; close(f) } }'`,
          `i=0; while [ $i -lt ${LARGE_FILES} ]; do head -c ${Math.floor((MEGABYTES * 1024 * 1024) / LARGE_FILES)} /dev/zero > big$i; i=$((i+1)); done`,
        ].join(' && '),
      };
  }
  throw new Error(`unknown workload ${name}`);
}

/**
 * How the CPU time of one `srt-gw run` and everything it starts is counted. Not by the children's
 * times of /proc/self/stat: a process in the jail's PID namespace is reaped by no one who passes
 * its time up (a bwrap with --unshare-pid reports ~0 for a command that used a second), so a
 * cgroup of its own holds the run: cgroup v1 cpuacct or v2 cpu.stat where this user may make one;
 * else the process tree is sampled every 20 ms (a lower bound: the last tick of a process that
 * ended between samples is lost).
 */
function cpuAccounting() {
  const candidates = [
    { dir: '/sys/fs/cgroup/cpuacct', read: (cgroup) => Number(readFileSync(join(cgroup, 'cpuacct.usage'), 'utf8')) / 1e6 },
    {
      dir: existsSync('/sys/fs/cgroup/cgroup.controllers') ? join('/sys/fs/cgroup', ownCgroupV2()) : '/sys/fs/cgroup/unified',
      read: (cgroup) => Number(/^usage_usec (\d+)$/m.exec(readFileSync(join(cgroup, 'cpu.stat'), 'utf8'))[1]) / 1e3,
    },
  ];
  for (const { dir, read } of candidates) {
    const cgroup = join(dir, `srt-gw-bench-${process.pid}`);
    try {
      mkdirSync(cgroup);
    } catch {
      continue;
    }
    return {
      method: `cgroup ${dir}`,
      /** argv that runs `argv` inside the cgroup. */
      wrap: (command, args) => ['sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec "$@"`, 'sh', command, ...args]],
      start: () => read(cgroup),
      sample: () => {},
      end: (before) => read(cgroup) - before,
      dispose: () => rmdirQuietly(cgroup),
    };
  }
  let peak = 0;
  let pid = 0;
  return {
    method: 'process tree sampled every 20 ms (a lower bound)',
    wrap: (command, args) => [command, args],
    start: () => ((peak = 0), 0),
    track: (child) => (pid = child.pid),
    sample: () => {
      const seconds = pid === 0 ? null : treeCpuSeconds(pid);
      if (seconds !== null) peak = Math.max(peak, seconds * 1000);
    },
    end: () => peak,
    dispose: () => {},
  };
}

function ownCgroupV2() {
  const line = readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((entry) => entry.startsWith('0::'));
  return line === undefined ? '' : line.slice(3);
}

function rmdirQuietly(dir) {
  try {
    rmdirSync(dir);
  } catch {
    // The cgroup stays until the machine restarts: empty, and harmless.
  }
}

const cpu = cpuAccounting();

/** Files and bytes under `dir` outside its .git, symlinks not followed. */
function treeSize(dir) {
  let files = 0;
  let bytes = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || `${entry.parentPath}/`.startsWith(join(dir, '.git/'))) continue;
    files += 1;
    bytes += statSync(join(entry.parentPath, entry.name)).size;
  }
  return { files, bytes };
}

function runOnce(name, mode, inputs) {
  const cwd = join(base, `${name}-${mode}`);
  rmSync(cwd, { recursive: true, force: true });
  mkdirSync(cwd);
  const { script } = workload(name, inputs, cwd);
  // The command's start and end (ns) on stdout, around the workload.
  const wrapped = `date +%s%N && ${script} && date +%s%N`;
  const [command, args] = cpu.wrap(process.execPath, [CLI, 'run', '-q', '--policy', policy, '--ca-dir', join(state, 'ca'), '--write-mode', mode, '--', 'sh', '-c', wrapped]);
  return new Promise((resolveRun, reject) => {
    const cpuBefore = cpu.start();
    const started = process.hrtime.bigint();
    const wallStart = Date.now();
    // stderr is kept, not shown: held changes are listed there, counted below instead.
    const child = spawn(command, args, { cwd, env: { ...process.env, ...GIT_ENV, XDG_STATE_HOME: state }, stdio: ['ignore', 'pipe', 'pipe'] });
    cpu.track?.(child);
    const sampler = setInterval(cpu.sample, 20);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (out += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
      const wallEnd = Date.now();
      clearInterval(sampler);
      const cpuMs = cpu.end(cpuBefore);
      if (code !== 0) return reject(new Error(`srt-gw run --write-mode ${mode} (${name}) exited ${code}:\n${err}`));
      const [commandStart, commandEnd] = out.trim().split('\n').map((line) => Number(BigInt(line) / 1_000_000n));
      const size = treeSize(cwd);
      // What the review held (package bins' new executable bits; checkout's branch section of
      // .git/config) stays off the host: counted, then dropped so every run starts alike.
      const changes = JSON.parse(execFileSync(process.execPath, [CLI, 'changes', 'list', '--json'], { env: { ...process.env, XDG_STATE_HOME: state }, encoding: 'utf8' }));
      const held = changes.reduce((sum, set) => sum + set.held.length, 0);
      for (const set of changes) execFileSync(process.execPath, [CLI, 'changes', 'drop', set.id], { env: { ...process.env, XDG_STATE_HOME: state }, stdio: 'ignore' });
      rmSync(cwd, { recursive: true, force: true });
      resolveRun({ workload: name, mode, wallMs, cpuMs, commandMs: commandEnd - commandStart, afterCommandMs: wallEnd - commandEnd, startupMs: commandStart - wallStart, ...size, held });
    });
  });
}

const results = [];
let inputs;
const benchStarted = Date.now();
try {
  inputs = prepare();
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of WORKLOADS) {
      for (const mode of ['direct', 'overlay']) results.push(await runOnce(name, mode, inputs));
    }
  }
} finally {
  cpu.dispose();
  rmSync(base, { recursive: true, force: true });
}

const summary = {};
for (const name of WORKLOADS) {
  summary[name] = {};
  for (const mode of ['direct', 'overlay']) {
    const runs = results.filter((run) => run.workload === name && run.mode === mode);
    const pick = (key) => median(runs.map((run) => run[key]));
    summary[name][mode] = { wallMs: pick('wallMs'), cpuMs: pick('cpuMs'), commandMs: pick('commandMs'), afterCommandMs: pick('afterCommandMs'), files: runs[0].files, bytes: runs[0].bytes, held: runs[0].held };
  }
  summary[name].applyMs = summary[name].overlay.afterCommandMs - summary[name].direct.afterCommandMs;
}

const describe = {
  extract: () => `extract   tar -x of ${inputs.packages.packages} packages (${inputs.packages.files} files, ${(inputs.packages.bytes / 1048576).toFixed(0)} MB) into node_modules`,
  checkout: () => `checkout  git checkout of a branch adding the same ${inputs.packages.files} files`,
  bulk: () => `bulk      ${FILES} files of 1 KiB in 100 directories + ${MEGABYTES} MB in ${LARGE_FILES} files`,
};
const ms = (value) => value.toFixed(0).padStart(8);
const lines = [`srt-gw run --write-mode direct vs overlay; median of ${ROUNDS} rounds, ms`, ...WORKLOADS.map((name) => describe[name]()), ''];
lines.push(`CPU: srt-gw, the jail and the command, counted by ${cpu.method}`, '');
lines.push('workload  mode       wall-ms   cpu-ms  command-ms  after-command-ms  apply-ms  files on host  held');
for (const name of WORKLOADS) {
  for (const mode of ['direct', 'overlay']) {
    const s = summary[name][mode];
    const apply = mode === 'overlay' ? ms(summary[name].applyMs) : '       -';
    lines.push(`${name.padEnd(9)} ${mode.padEnd(8)} ${ms(s.wallMs)} ${ms(s.cpuMs)} ${ms(s.commandMs).padStart(11)} ${ms(s.afterCommandMs).padStart(17)} ${apply.padStart(9)} ${String(s.files).padStart(14)} ${String(s.held).padStart(5)}`);
  }
}
lines.push('apply-ms: overlay after-command minus direct after-command (the review and the moves onto the host);');
lines.push('held: changes the review held, not on the host: new executable bits (package bins), and for checkout the');
lines.push('      .git/config section git writes for the new tracking branch');
lines.push(`the bench took ${((Date.now() - benchStarted) / 1000).toFixed(0)} s`);
process.stdout.write(`${lines.join('\n')}\n`);
mkdirSync(RESULTS_DIR, { recursive: true });
const file = join(RESULTS_DIR, `overlay-writes-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  `${JSON.stringify({ rounds: ROUNDS, workloads: WORKLOADS, cpuCountedBy: cpu.method, packages: inputs.packages ?? null, bulk: { files: FILES, megabytes: MEGABYTES }, summary, results }, null, 2)}\n`,
);
process.stdout.write(`written: ${file}\n`);
