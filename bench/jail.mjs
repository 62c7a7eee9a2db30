#!/usr/bin/env node
// `npm run bench` (jail part): what `srt-gw run` costs. Start-up of `srt-gw run -- true` against
// bare `true` and a bare bwrap, the peak RSS of the process tree, a new HTTPS connection + small
// GET from inside the jail against the same request from the host straight to the upstream, and
// kept-alive requests/s from inside the jail against the same gateway as an explicit proxy.
// Checks its targets (TARGETS below) and writes JSON to bench/results/. Method: bench/README.md.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CLIENT_CPU,
  commandExists,
  killAllChildren,
  pinning,
  SERVER_CPU,
  setUpPinning,
  spawnPinned,
  START_TIMEOUT_MS,
  startUpstream,
  stopProcess,
  tail,
  waitForJsonLine,
} from './processes.mjs';
import { processMemory, processTree } from './proc-stats.mjs';
import { median } from './statistics.mjs';
import { ensureUpstreamCertificates, UPSTREAM_NAME } from './upstream.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(BENCH_DIR, '..');
const CLI = join(REPO_ROOT, 'dist', 'bin', 'srt-gw.js');
const LOADGEN = join(BENCH_DIR, 'loadgen.mjs');
const RESULTS_DIR = join(BENCH_DIR, 'results');
const SRT_PACKAGE = '@anthropic-ai/sandbox-runtime';

const TARGETS = {
  startupMedianMs: 150,
  peakRssMb: 70,
  helperPeakRssMb: 5,
  newConnectionExtraMs: 5,
  keepAliveRatio: 0.85,
};

function usage() {
  return `usage: node bench/jail.mjs [--runs N] [--duration S] [--warmup S] [--quick]
  --runs N       start-ups measured per command (default 20)
  --duration S   measured seconds of kept-alive load per side, split across the rounds (at least 2 s a round; default 15)
  --warmup S     warm-up seconds per kept-alive run, not measured (default 2)
  --rounds N     kept-alive rounds, explicit proxy and jail alternating; the ratio is the median round's (default 5)
  --quick        --runs 8 --duration 3 --rounds 1
Needs: bwrap, nft and the native helpers (bash native/build.sh), python3 (rusage), curl.`;
}

function parseOptions(argv) {
  const options = { runs: 20, duration: 15, warmup: 2, rounds: 5 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else if (flag === '--quick') Object.assign(options, { runs: 8, duration: 3, rounds: 1 });
    else if (['--runs', '--duration', '--warmup', '--rounds'].includes(flag)) options[flag.slice(2)] = Number(argv[++i]);
    else throw new Error(`unknown flag ${flag}\n${usage()}`);
  }
  if (!(options.runs >= 3) || !(options.duration > 0) || !(options.warmup >= 0)) throw new Error('--runs must be >= 3, --duration > 0, --warmup >= 0');
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error('--rounds must be a whole number >= 1');
  return options;
}

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};

// python3 runs each command and reports wall time, CPU time (user + system of the whole tree: every
// process in it was waited for by its parent) and ru_maxrss from wait4: the largest resident set of
// any process in the tree (for `srt-gw run`, the node process).
const TIMER = `
import json, os, sys, time
start = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"ms": (time.monotonic() - start) * 1000, "cpuMs": (usage.ru_utime + usage.ru_stime) * 1000, "maxRssKb": usage.ru_maxrss, "status": os.waitstatus_to_exitcode(status)}))
`;

function timeCommand(argv, cwd, env) {
  const out = execFileSync('python3', ['-c', TIMER, ...argv], { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const result = JSON.parse(out.trim().split('\n').at(-1));
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}`);
  return result;
}

/**
 * srt (Anthropic's sandbox runtime), the optional peer for start-up: the srt on PATH, else the
 * npm package installed into a directory of this bench (never added to package.json). Returns
 * { argv, version } or { skipped: reason }: not installable, or installed but unable to run here
 * (srt needs ripgrep and socat on Linux, and says so).
 */
function locateSrt(workDir, cwd) {
  let srt = 'srt';
  if (!commandExists('srt')) {
    const prefix = join(workDir, 'srt');
    try {
      execFileSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', SRT_PACKAGE], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 180_000 });
    } catch (error) {
      return { skipped: `not installed, and npm install ${SRT_PACKAGE} failed (${tail(String(error.stderr ?? error.message)).trim().split('\n').at(-1)})` };
    }
    srt = join(prefix, 'node_modules', '.bin', 'srt');
  }
  let version = 'srt';
  try {
    version = `srt ${execFileSync(srt, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()}`;
  } catch {
    // an srt without --version still runs
  }
  // The same policy as srt-gw's --allow H row: that one host allowed, nothing else.
  const settings = join(workDir, 'srt-settings.json');
  writeFileSync(settings, JSON.stringify({ network: { allowedDomains: [UPSTREAM_NAME], deniedDomains: [] }, filesystem: { denyRead: [], allowRead: [], allowWrite: [], denyWrite: [] } }));
  const argv = [srt, '--settings', settings, '--', 'true'];
  try {
    execFileSync(argv[0], argv.slice(1), { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 60_000 });
  } catch (error) {
    const said = String(error.stderr ?? '').trim().split('\n')[0] || error.message;
    return { skipped: `${version} installed, but 'srt -- true' fails here: ${said}` };
  }
  return { argv, version };
}

function measureStartup(label, argv, options, cwd, env) {
  timeCommand(argv, cwd, env); // warm the page cache
  const runs = Array.from({ length: options.runs }, () => timeCommand(argv, cwd, env));
  const ms = runs.map((run) => run.ms);
  return { label, runs: runs.length, medianMs: median(ms), p90Ms: percentile(ms, 90), minMs: Math.min(...ms), cpuMedianMs: median(runs.map((run) => run.cpuMs)), peakRssMb: Math.max(...runs.map((run) => run.maxRssKb)) / 1024 };
}

/**
 * The memory of the whole tree of `srt-gw run -- sleep S`: every 20 ms, each descendant's
 * resident set (peak per command name), and the tree's sum of resident sets (an upper bound:
 * libc's pages count once per process) and of proportional sets (Pss: a page shared with any
 * other process, this bench's own node included, counts only in part).
 */
async function measureProcessTree(argv, cwd) {
  const child = spawn(argv[0], argv.slice(1), { cwd, stdio: 'ignore' });
  const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise));
  let running = true;
  void exited.then(() => (running = false));
  const peakRssMb = new Map();
  let peakTreePssMb = 0;
  let peakTreeRssMb = 0;
  while (running) {
    let treePssMb = 0;
    let treeRssMb = 0;
    for (const pid of processTree(child.pid)) {
      const memory = processMemory(pid);
      if (memory === null) continue;
      treePssMb += memory.pssMb;
      treeRssMb += memory.rssMb;
      peakRssMb.set(memory.name, Math.max(peakRssMb.get(memory.name) ?? 0, memory.rssMb));
    }
    peakTreePssMb = Math.max(peakTreePssMb, treePssMb);
    peakTreeRssMb = Math.max(peakTreeRssMb, treeRssMb);
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 20));
  }
  const code = await exited;
  if (code !== 0) throw new Error(`${argv.join(' ')} exited ${code}`);
  return { peakTreeRssMb, peakTreePssMb, peakRssMbByCommand: Object.fromEntries(peakRssMb) };
}

/** Runs a command to completion, collecting stdout; rejects on a non-zero exit. */
function runToEnd(child, what) {
  return new Promise((resolvePromise, reject) => {
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => (stdout += text));
    child.once('exit', (code) => (code === 0 ? resolvePromise(stdout) : reject(new Error(`${what} exited ${code}: ${tail(child.stderrText)}`))));
  });
}

function curlTimes(lines) {
  return lines
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((value) => Number.isFinite(value) && value > 0)
    .map((seconds) => seconds * 1000);
}

async function measureNewConnections(ctx, count) {
  const url = `https://${UPSTREAM_NAME}:${ctx.upstream.port}/small`;
  const curlLoop = `for i in $(seq ${count}); do curl -sS -o /dev/null -w '%{time_total}\\n' ${url}; done`;
  // From the host, straight to the upstream (curl's --resolve; inside the jail, its DNS answers).
  // The same-size CA bundle as in the jail (system CAs + one), since curl parses the whole bundle
  // on every run: ~20 ms for the ~150 certificates of Debian's bundle.
  const directChild = spawnPinned(CLIENT_CPU, 'sh', ['-c', curlLoop.replace('curl -sS', `curl -sS --resolve ${UPSTREAM_NAME}:${ctx.upstream.port}:127.0.0.1`)], {
    env: { ...process.env, CURL_CA_BUNDLE: ctx.directBundle },
  });
  const directMs = curlTimes(await runToEnd(directChild, 'curl (direct)'));
  // From inside the jail, through the gateway: the same curl, trusting the jail's bundle.
  const jailed = spawnPinned(SERVER_CPU, process.execPath, [CLI, 'run', ...ctx.runFlags, '--', 'taskset', '-c', String(CLIENT_CPU), 'sh', '-c', curlLoop], { cwd: ctx.workDir });
  const jailedMs = curlTimes(await runToEnd(jailed, 'srt-gw run curl'));
  return {
    count,
    directMedianMs: median(directMs),
    jailedFirstMs: jailedMs[0] ?? null,
    jailedMedianMs: median(jailedMs.slice(1)),
    extraMs: median(jailedMs.slice(1)) - median(directMs),
  };
}

async function measureKeepAlive(ctx, options) {
  // Rounds, alternating which side goes first: the machine's own speed drifts between runs (the
  // explicit proxy alone varied 10-13k req/s between identical runs), and the ratio is taken per
  // round, from neighbouring measurements.
  const seconds = Math.max(2, Math.round(options.duration / options.rounds));
  const load = ['--mode', 'keepalive', '--concurrency', '32', '--warmup', String(options.warmup), '--duration', String(seconds), '--host', `${UPSTREAM_NAME}:${ctx.upstream.port}`];
  const rounds = [];
  for (let round = 0; round < options.rounds; round++) {
    const sides = round % 2 === 0 ? ['explicit', 'jail'] : ['jail', 'explicit'];
    const result = {};
    for (const side of sides) result[side] = side === 'explicit' ? await keepAliveThroughExplicitProxy(ctx, load) : await keepAliveInsideJail(ctx, load);
    rounds.push({ explicitProxy: result.explicit, jail: result.jail, ratio: result.jail.reqPerSec / result.explicit.reqPerSec });
  }
  const middle = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)];
  return { explicitProxy: middle.explicitProxy, jail: middle.jail, ratio: middle.ratio, rounds };
}

/** The gateway as an explicit proxy: srt-gw serve on the server core, the load generator on the other. */
async function keepAliveThroughExplicitProxy(ctx, load) {
  // Both sides write the audit log to a file, so both pay for the same logging.
  const serve = spawnPinned(SERVER_CPU, process.execPath, [CLI, 'serve', '--listen', '127.0.0.1:0', '--log', join(ctx.workDir, '..', 'serve-audit.jsonl'), ...ctx.gatewayFlags]);
  try {
    const ready = await waitForJsonLine(serve, (r) => r.event === 'listening', START_TIMEOUT_MS, 'srt-gw serve');
    const proxied = spawnPinned(CLIENT_CPU, process.execPath, [LOADGEN, ...load, '--proxy', ready.proxy]);
    return loadResult(await runToEnd(proxied, 'loadgen (explicit proxy)'));
  } finally {
    await stopProcess(serve);
  }
}

/**
 * The same load from inside the jail: srt-gw run (gateway, bwrap, helpers) on the server core,
 * the load generator moved to the other core inside the jail.
 */
async function keepAliveInsideJail(ctx, load) {
  const jailed = spawnPinned(SERVER_CPU, process.execPath, [CLI, 'run', '--log', join(ctx.workDir, '..', 'run-audit.jsonl'), ...ctx.runFlags, '--', 'taskset', '-c', String(CLIENT_CPU), process.execPath, LOADGEN, ...load, '--direct', `${UPSTREAM_NAME}:${ctx.upstream.port}`], { cwd: ctx.workDir });
  return loadResult(await runToEnd(jailed, 'loadgen (in the jail)'));
}

function loadResult(stdout) {
  const result = JSON.parse(stdout.trim().split('\n').at(-1));
  return { reqPerSec: result.reqPerSec, p50Ms: result.p50Ms, p99Ms: result.p99Ms, errors: result.errors };
}

function readSystemBundle() {
  try {
    return readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
  } catch {
    return '';
  }
}

function verdict(ok) {
  return ok === null ? 'n/a' : ok ? 'PASS' : 'MISS';
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  for (const command of ['bwrap', 'nft', 'python3', 'curl', 'taskset']) {
    if (!commandExists(command)) throw new Error(`bench/jail.mjs needs ${command}; run scripts/install.sh`);
  }
  setUpPinning();
  const workDir = mkdtempSync(join(os.tmpdir(), 'srt-gw-bench-jail-'));
  const cleanup = () => {
    killAllChildren();
    rmSync(workDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => (cleanup(), process.exit(130)));
  try {
    const project = join(workDir, 'project');
    mkdirSync(project);
    const upstreamFiles = ensureUpstreamCertificates(join(workDir, 'upstream'));
    const upstreamProcess = await startUpstream(workDir, CLIENT_CPU);
    const caDir = join(workDir, 'ca');
    const gatewayFlags = ['--ca-dir', caDir, '--allow', UPSTREAM_NAME, '--upstream-ca', upstreamFiles.ca, '--resolve', `${UPSTREAM_NAME}=127.0.0.1`];
    const ctx = {
      workDir: project,
      upstream: upstreamProcess,
      upstreamCa: upstreamFiles.ca,
      gatewayFlags,
      runFlags: ['-q', ...gatewayFlags],
    };
    execFileSync(process.execPath, [CLI, 'ca', 'init', '--ca-dir', caDir], { stdio: 'ignore' });
    ctx.directBundle = join(workDir, 'direct-bundle.pem');
    writeFileSync(ctx.directBundle, `${readSystemBundle()}\n${readFileSync(upstreamFiles.ca, 'utf8')}`);

    process.stderr.write(`pinning: ${pinning.note}\nstart-up: ${options.runs} runs each...\n`);
    const bareBwrap = ['bwrap', '--unshare-user', '--unshare-net', '--unshare-pid', '--die-with-parent', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', 'true'];
    const startup = [
      measureStartup('true', ['true'], options, project),
      measureStartup('bwrap --unshare-net ... true', bareBwrap, options, project),
      // What node costs before any code of srt-gw's (or srt's) runs: the floor of both.
      measureStartup('node -e 0', [process.execPath, '-e', '0'], options, project),
      measureStartup('srt-gw run -- true', [process.execPath, CLI, 'run', '-q', '--ca-dir', caDir, '--', 'true'], options, project),
      measureStartup('srt-gw run --allow H -- true', [process.execPath, CLI, 'run', ...ctx.runFlags, '--', 'true'], options, project),
    ];
    const srt = locateSrt(workDir, project);
    if (srt.argv) startup.push({ ...measureStartup('srt (allowedDomains H) -- true', srt.argv, options, project), version: srt.version });
    process.stderr.write('process tree of srt-gw run -- sleep 1...\n');
    const tree = await measureProcessTree([process.execPath, CLI, 'run', '-q', '--ca-dir', caDir, '--', 'sleep', '1'], project);
    const helpers = ['srt-gw-jail-ini', 'srt-gw-redirect', 'srt-gw-dns-forw'].map((name) => tree.peakRssMbByCommand[name] ?? NaN);
    process.stderr.write('new HTTPS connections...\n');
    const connections = await measureNewConnections(ctx, 30);
    process.stderr.write(`kept-alive load, c=32, ${options.duration} s each...\n`);
    const keepAlive = await measureKeepAlive(ctx, options);
    await upstreamProcess.stop();

    const run = startup.find((s) => s.label === 'srt-gw run -- true');
    const targets = [
      ['srt-gw run -- true, median wall', `${run.medianMs.toFixed(0)} ms`, `<= ${TARGETS.startupMedianMs} ms`, verdict(run.medianMs <= TARGETS.startupMedianMs)],
      ['srt-gw run -- true, peak RSS (largest process)', `${run.peakRssMb.toFixed(1)} MB`, `<= ${TARGETS.peakRssMb} MB`, verdict(run.peakRssMb <= TARGETS.peakRssMb)],
      ['helpers (init, redirector, DNS forwarder), peak RSS each', `${Math.max(...helpers).toFixed(1)} MB`, `<= ${TARGETS.helperPeakRssMb} MB`, verdict(Math.max(...helpers) <= TARGETS.helperPeakRssMb)],
      ['new HTTPS connection + GET, jail minus direct (median)', `${connections.extraMs.toFixed(2)} ms`, `<= ${TARGETS.newConnectionExtraMs} ms`, verdict(connections.extraMs <= TARGETS.newConnectionExtraMs)],
      ['kept-alive req/s, jail / explicit proxy', `${(keepAlive.ratio * 100).toFixed(0)} %`, `>= ${TARGETS.keepAliveRatio * 100} %`, verdict(keepAlive.ratio >= TARGETS.keepAliveRatio)],
    ];
    const lines = [];
    lines.push(`srt-gw jail bench, ${new Date().toISOString()}: ${os.cpus()[0]?.model ?? 'cpu'} x${os.cpus().length}, node ${process.version}, ${pinning.note}`);
    lines.push('', 'start-up (python3 wait4: wall ms, user+system CPU ms of the process tree, ru_maxrss)');
    for (const s of startup) lines.push(`  ${s.label.padEnd(32)} median ${s.medianMs.toFixed(1).padStart(6)} ms  p90 ${s.p90Ms.toFixed(1).padStart(6)} ms  min ${s.minMs.toFixed(1).padStart(6)} ms  CPU median ${s.cpuMedianMs.toFixed(1).padStart(6)} ms  peak RSS ${s.peakRssMb.toFixed(1)} MB${s.version ? `  (${s.version})` : ''}`);
    if (srt.skipped) lines.push(`  srt: ${srt.skipped}, skipped`);
    // Node reads and parses that file as it starts (~30 ms for Debian's bundle on a 2-vCPU VM),
    // in every row that runs node: the table should say when the environment adds it.
    if (process.env.NODE_EXTRA_CA_CERTS) lines.push(`  NODE_EXTRA_CA_CERTS=${process.env.NODE_EXTRA_CA_CERTS} is set: node parses it at every start, in node -e 0 and each row after it`);
    lines.push('', 'process tree of srt-gw run -- sleep 1 (/proc smaps_rollup every 20 ms)');
    lines.push(`  whole tree, peak: ${tree.peakTreeRssMb.toFixed(1)} MB summed Rss, ${tree.peakTreePssMb.toFixed(1)} MB summed Pss`);
    lines.push(`  peak Rss by process: ${Object.entries(tree.peakRssMbByCommand).map(([name, mb]) => `${name} ${mb.toFixed(1)} MB`).join(', ')}`);
    lines.push('', `new HTTPS connection + 1 KiB GET (curl time_total, ${connections.count} each)`);
    lines.push(`  host -> upstream direct: median ${connections.directMedianMs.toFixed(2)} ms`);
    lines.push(`  jail -> gateway -> upstream: first ${connections.jailedFirstMs?.toFixed(2)} ms (leaf issuance, first upstream connection), then median ${connections.jailedMedianMs.toFixed(2)} ms`);
    lines.push('', 'kept-alive 1 KiB GETs, 32 connections');
    lines.push(`  explicit proxy (srt-gw serve): ${keepAlive.explicitProxy.reqPerSec.toFixed(0)} req/s, p50 ${keepAlive.explicitProxy.p50Ms?.toFixed(2)} ms, p99 ${keepAlive.explicitProxy.p99Ms?.toFixed(2)} ms, errors ${keepAlive.explicitProxy.errors}`);
    lines.push(`  inside the jail (srt-gw run):  ${keepAlive.jail.reqPerSec.toFixed(0)} req/s, p50 ${keepAlive.jail.p50Ms?.toFixed(2)} ms, p99 ${keepAlive.jail.p99Ms?.toFixed(2)} ms, errors ${keepAlive.jail.errors}`);
    lines.push(`  rounds (jail / explicit): ${keepAlive.rounds.map((r) => `${r.jail.reqPerSec.toFixed(0)} / ${r.explicitProxy.reqPerSec.toFixed(0)} = ${(r.ratio * 100).toFixed(0)} %`).join('; ')}`);
    lines.push('', 'targets');
    for (const [name, value, target, result] of targets) lines.push(`  ${name.padEnd(56)} ${value.padStart(10)}  ${target.padEnd(10)} ${result}`);
    process.stdout.write(lines.join('\n') + '\n');

    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `jail-${new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z')}.json`);
    writeFileSync(file, JSON.stringify({ startedAt: new Date().toISOString(), options, pinning, nodeExtraCaCerts: process.env.NODE_EXTRA_CA_CERTS ?? null, startup, srt: srt.skipped ? { skipped: srt.skipped } : { version: srt.version }, tree, connections, keepAlive, targets }, null, 2) + '\n');
    process.stdout.write(`\nJSON: ${file}\n`);
  } finally {
    cleanup();
  }
}

main().catch((error) => {
  process.stderr.write(`bench/jail.mjs: ${error.stack ?? error}\n`);
  killAllChildren();
  process.exit(1);
});

