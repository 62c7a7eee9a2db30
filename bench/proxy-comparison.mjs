#!/usr/bin/env node
// `npm run bench`: the same HTTPS load, in one run, straight to a local upstream and through
// srt-gw and the peers a user would pick instead (squid ssl-bump, mitmproxy) when installed.
// Prints a table with each system's ratio to direct, CPU per request and peak RSS, checks
// srt-gw's performance targets (evaluateTargets), and writes everything as JSON to bench/results/.
// Method and caveats: bench/README.md. Expects dist/ to be built (the npm script builds it).
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memoryMb } from './proc-stats.mjs';
import { median } from './statistics.mjs';
import {
  CLIENT_CPU,
  commandExists,
  firstLine,
  freePort,
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
  waitForPort,
} from './processes.mjs';
import { ensureUpstreamCertificates, UPSTREAM_NAME } from './upstream.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(BENCH_DIR, '..');
const GATEWAY_CLI = join(REPO_ROOT, 'dist', 'bin', 'srt-gw.js');
const RESULTS_DIR = join(BENCH_DIR, 'results');
// The first two CPUs this process may run on (normally 0 and 1); set by setUpPinning().
const MIB = 1024 * 1024;
/** Other load on the bench's cores (other processes + steal) above which a row is flagged. */
const NOISY_PERCENT = 10;

const CASES = [
  { id: 'ka-c1', label: 'keepalive 1KiB', mode: 'keepalive', path: '/small', concurrency: 1 },
  { id: 'ka-c32', label: 'keepalive 1KiB', mode: 'keepalive', path: '/small', concurrency: 32 },
  { id: 'newconn-c16', label: 'newconn 1KiB', mode: 'newconn', path: '/small', concurrency: 16 },
  { id: 'down-1mib-c4', label: 'download 1MiB', mode: 'keepalive', path: '/big?mb=1', concurrency: 4, bulk: true },
  { id: 'up-1mib-c4', label: 'upload 1MiB', mode: 'upload', path: '/upload', concurrency: 4, bulk: true },
];

const SYSTEM_IDS = ['direct', 'srt-gw', 'srt-gw-2w', 'squid', 'mitmproxy'];

// ---------------------------------------------------------------------------------------------
// Options

function usage() {
  return `usage: node bench/proxy-comparison.mjs [--duration S] [--warmup S] [--quick] [--only ${SYSTEM_IDS.join(',')}]
                        [--cases ${CASES.map((c) => c.id).join(',')}] [--names N] [--no-extras] [--rounds N]
  --duration S   measured seconds per case (default 8)
  --warmup S     warm-up seconds per case, not measured (default 2)
  --quick        --duration 2 (a smoke run, ~2 minutes with every peer)
  --only LIST    systems to run, comma-separated (default: all; peers that are not installed are skipped)
  --cases LIST   cases to run (default: all)
  --names N      never-seen host names for the new-name case (default 50)
  --no-extras    skip the new-name and slow-reader/slow-upstream cases
  --rounds N     alternating keep-alive c=32 rounds of srt-gw and squid, both running, for the
                 "ahead of squid" target (default 5; 0: compare the sequential rows instead)`;
}

function parseOptions(argv) {
  const options = { duration: 8, warmup: 2, only: SYSTEM_IDS, cases: CASES.map((c) => c.id), names: 50, extras: true, rounds: 5 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${usage()}`);
      return v;
    };
    if (flag === '--duration') options.duration = Number(value());
    else if (flag === '--warmup') options.warmup = Number(value());
    else if (flag === '--quick') options.duration = 2;
    else if (flag === '--only') options.only = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (flag === '--cases') options.cases = value().split(',').map((s) => s.trim()).filter(Boolean);
    else if (flag === '--names') options.names = Number(value());
    else if (flag === '--no-extras') options.extras = false;
    else if (flag === '--rounds') options.rounds = Number(value());
    else if (flag === '--help' || flag === '-h') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${flag}\n${usage()}`);
  }
  for (const id of options.only) if (!SYSTEM_IDS.includes(id)) throw new Error(`--only: unknown system ${id} (known: ${SYSTEM_IDS.join(', ')})`);
  for (const id of options.cases) if (!CASES.some((c) => c.id === id)) throw new Error(`--cases: unknown case ${id}`);
  if (!(options.duration > 0) || !(options.warmup >= 0)) throw new Error('--duration must be > 0 and --warmup >= 0');
  if (!Number.isInteger(options.names) || options.names < 1 || options.names > 500) throw new Error('--names must be an integer in 1..500');
  if (!Number.isInteger(options.rounds) || options.rounds < 0 || options.rounds > 20) throw new Error('--rounds must be an integer in 0..20');
  return options;
}

// ---------------------------------------------------------------------------------------------
// The upstream and the systems under test

/** Per system: start() → { pid, version, target(upstream) → loadgen args, stop() } or throws. */
const SYSTEMS = {
  direct: {
    label: 'direct',
    available: () => null,
  },
  'srt-gw': {
    label: 'srt-gw',
    available: () => (existsSync(GATEWAY_CLI) ? null : `${GATEWAY_CLI} not built (run npm run build)`),
    /** `workers` > 1: `serve --workers N`, its processes free to run on both bench CPUs. */
    async start({ workDir, upstream, options, workers = 1 }) {
      const dir = join(workDir, workers === 1 ? 'srt-gw' : `srt-gw-${workers}w`);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const policyPath = join(dir, 'policy.yaml');
      writeFileSync(policyPath, [
        'version: 1',
        'rules:',
        '  - id: bench',
        `    host: ${UPSTREAM_NAME}`,
        '    methods: [GET, POST]',
        '    paths: ["/**"]',
        '  - id: bench-new-names',
        `    host: "*.${UPSTREAM_NAME}"`,
        '    methods: [GET, POST]',
        '    paths: ["/**"]',
        '',
      ].join('\n'));
      const logPath = join(dir, 'audit.log');
      const resolveFlags = benchNames(options).flatMap((name) => ['--resolve', `${name}=127.0.0.1`]);
      const child = spawnPinned(workers === 1 ? SERVER_CPU : `${SERVER_CPU},${CLIENT_CPU}`, process.execPath, [
        ...gatewayNodeFlags(),
        GATEWAY_CLI, 'serve',
        ...(workers === 1 ? [] : ['--workers', String(workers)]),
        '--listen', '127.0.0.1:0',
        '--ca-dir', join(dir, 'ca'),
        '--policy', policyPath,
        '--upstream-ca', upstream.caPath,
        '--log', logPath,
        ...resolveFlags,
      ], { env: withoutProxyVariables() });
      const ready = await waitForJsonLine(child, (r) => r.event === 'listening', START_TIMEOUT_MS, 'srt-gw serve')
        .catch(async (error) => {
          await stopProcess(child);
          throw error;
        });
      const proxyPort = Number(String(ready.proxy).split(':').pop());
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
      return {
        child,
        pid: child.pid,
        version: `srt-gw ${pkg.version} (${gitRevision()})`,
        logPath,
        target: (port) => ['--proxy', `127.0.0.1:${proxyPort}`, '--connect', `${UPSTREAM_NAME}:${port}`],
        extras: workers === 1,
        stop: () => stopProcess(child),
      };
    },
  },
  // Two worker processes on the bench's two CPUs, so they compete with the load generator and
  // the upstream on the client CPU: the row shows what a second process buys on a small machine,
  // not how the gateway scales. Only the request-rate cases, to keep the run short.
  'srt-gw-2w': {
    label: 'srt-gw --workers 2',
    available: () => SYSTEMS['srt-gw'].available(),
    start: (context) => SYSTEMS['srt-gw'].start({ ...context, workers: 2 }),
    cases: ['ka-c32', 'newconn-c16'],
  },
  squid: {
    label: 'squid ssl-bump',
    available() {
      if (!commandExists('squid')) return 'not installed (Debian: apt-get install squid-openssl)';
      const configure = firstLine('sh', ['-c', 'squid -v | tr "\\n" " "']) ?? '';
      if (!/--with-openssl/.test(configure)) return 'installed without OpenSSL, so no ssl-bump (Debian: squid-openssl)';
      if (!certgenPath()) return 'security_file_certgen helper not found';
      return null;
    },
    async start({ workDir, upstream, options }) {
      const dir = join(workDir, 'squid');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      // squid started as root drops to its cache_effective_user (Debian: proxy): it must be able
      // to reach its files, so this directory is world-traversable and owned by that user.
      chmodSync(workDir, 0o755);
      chmodSync(dirname(upstream.caPath), 0o755);
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'ca-key.pem'), '-out', join(dir, 'ca.pem'),
        '-days', '2', '-subj', '/CN=srt-gw bench squid CA'], { stdio: 'ignore' });
      execFileSync(certgenPath(), ['-c', '-s', join(dir, 'ssl_db'), '-M', '16MB'], { stdio: 'ignore' });
      // squid resolves the CONNECT host itself: a hosts_file of its own instead of /etc/hosts.
      writeFileSync(join(dir, 'hosts'), benchNames(options).map((n) => `127.0.0.1 ${n}\n`).join(''));
      const port = await freePort();
      const conf = join(dir, 'squid.conf');
      writeFileSync(conf, [
        `http_port 127.0.0.1:${port} ssl-bump tls-cert=${dir}/ca.pem tls-key=${dir}/ca-key.pem generate-host-certificates=on dynamic_cert_mem_cache_size=16MB`,
        `sslcrtd_program ${certgenPath()} -s ${dir}/ssl_db -M 16MB`,
        'sslcrtd_children 5 startup=1 idle=1',
        'ssl_bump bump all',
        `tls_outgoing_options cafile=${upstream.caPath}`,
        `hosts_file ${dir}/hosts`,
        'dns_nameservers 127.0.0.1',
        'http_access allow localhost',
        'http_access deny all',
        'cache deny all',
        'cache_mem 0 MB',
        'access_log none',
        `cache_log ${dir}/cache.log`,
        `pid_filename ${dir}/squid.pid`,
        `coredump_dir ${dir}`,
        'pinger_enable off',
        'netdb_filename none',
        'workers 1',
        'shutdown_lifetime 1 seconds',
        '',
      ].join('\n'));
      if (process.getuid?.() === 0) chownTree(dir, 'proxy');
      const child = spawnPinned(SERVER_CPU, 'squid', ['-N', '-f', conf]);
      try {
        await waitForPort(port, child, START_TIMEOUT_MS, 'squid');
      } catch (error) {
        error.message += `\n${tail(safeRead(join(dir, 'cache.log')))}`;
        await stopProcess(child);
        throw error;
      }
      return {
        child,
        pid: child.pid,
        version: firstLine('squid', ['-v']) ?? 'squid',
        target: (upstreamPort) => ['--proxy', `127.0.0.1:${port}`, '--connect', `${UPSTREAM_NAME}:${upstreamPort}`],
        extras: true,
        stop: () => stopProcess(child),
      };
    },
  },
  mitmproxy: {
    label: 'mitmproxy',
    available: () => (commandExists('mitmdump') ? null : 'not installed (Debian: apt-get install mitmproxy)'),
    async start({ workDir, upstream }) {
      const dir = join(workDir, 'mitmproxy');
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const port = await freePort();
      const child = spawnPinned(SERVER_CPU, 'mitmdump', [
        '--listen-host', '127.0.0.1', '--listen-port', String(port), '-q',
        '--set', 'flow_detail=0',
        '--set', `confdir=${join(dir, 'conf')}`,
        '--set', `ssl_verify_upstream_trusted_ca=${upstream.caPath}`,
      ], { env: withoutProxyVariables() });
      await waitForPort(port, child, START_TIMEOUT_MS * 2, 'mitmdump').catch(async (error) => {
        await stopProcess(child);
        throw error;
      });
      return {
        child,
        pid: child.pid,
        version: firstLine('mitmdump', ['--version']) ?? 'mitmproxy',
        // mitmproxy has no hosts-file option and resolves CONNECT hosts itself. Without touching
        // /etc/hosts: CONNECT to 127.0.0.1 and send SNI upstream.test; mitmproxy forwards that
        // SNI upstream and verifies the upstream's certificate against it (a wrong
        // ssl_verify_upstream_trusted_ca gives 502s, checked when this was written).
        target: (upstreamPort) => ['--proxy', `127.0.0.1:${port}`, '--connect', `127.0.0.1:${upstreamPort}`, '--sni', UPSTREAM_NAME],
        extras: false,
        stop: () => stopProcess(child),
      };
    },
  },
};

function certgenPath() {
  for (const dir of ['/usr/lib/squid', '/usr/lib64/squid', '/usr/libexec/squid', '/usr/lib/squid3']) {
    const candidate = join(dir, 'security_file_certgen');
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function chownTree(dir, user) {
  try {
    execFileSync('chown', ['-R', `${user}:${user}`, dir], { stdio: 'ignore' });
  } catch {
    // no such user: squid keeps running as whoever started it
  }
}

function safeRead(path) {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Never-seen names for the new-name cases: `n*` for the case where the known name's upstream
 * connection is reused, `c*` for the one where every request opens a new upstream connection.
 */
function newNames(count, prefix = 'n') {
  return Array.from({ length: count }, (_, i) => `${prefix}${i}.${UPSTREAM_NAME}`);
}

/** Every name the systems under test must resolve. */
function benchNames(options) {
  return [UPSTREAM_NAME, ...newNames(options.names), ...newNames(options.names, 'c')];
}

function withoutProxyVariables() {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(https?|all|no|ftp)_proxy$/i.test(name) && name !== 'NODE_OPTIONS') env[name] = value;
  }
  return env;
}

function gitRevision() {
  const rev = firstLine('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD']);
  if (!rev) return 'no git';
  let dirty = false;
  try {
    dirty = execFileSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim() !== '';
  } catch {
    // leave it clean
  }
  return dirty ? `${rev}+changes` : rev;
}

/**
 * Extra node flags for the gateway process only, from SRT_GW_BENCH_NODE_FLAGS (space-separated),
 * e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it under the bench's load; node refuses
 * --cpu-prof in NODE_OPTIONS, and NODE_OPTIONS would reach the load generator as well.
 */
function gatewayNodeFlags() {
  return (process.env.SRT_GW_BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
}

// ---------------------------------------------------------------------------------------------
// Load generator runs

async function runLoadgen(args, timeoutMs) {
  const child = spawnPinned(CLIENT_CPU, process.execPath, [join(BENCH_DIR, 'loadgen.mjs'), ...args]);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await waitForJsonLine(child, (r) => r.event === 'result', timeoutMs + 1000, 'loadgen');
  } finally {
    clearTimeout(timer);
    await stopProcess(child, 5000, null); // it exits by itself after printing
  }
}

function loadgenTarget(system, upstream) {
  if (system.id === 'direct') return ['--direct', `127.0.0.1:${upstream.port}`];
  return system.instance.target(upstream.port);
}

/** Load generator arguments for one case against `system`. */
function caseArgs(system, upstream, benchCase, timing, clientPids) {
  return [
    ...loadgenTarget(system, upstream),
    '--host', `${UPSTREAM_NAME}:${upstream.port}`,
    '--mode', benchCase.mode,
    '--path', benchCase.path,
    '--concurrency', String(benchCase.concurrency),
    '--warmup', String(timing.warmup),
    '--duration', String(timing.duration),
    '--server-pid', String(system.pid),
    '--client-pids', clientPids.join(','),
  ];
}

const cpuUsPerRequest = (result) => (result.serverCpuSeconds !== null && result.responses > 0 ? (result.serverCpuSeconds / result.responses) * 1e6 : null);

/** Runs every selected case against `system`, appending one row per case to `rows`. */
async function runCases(system, upstream, options, clientPids, rows) {
  const systemCases = SYSTEMS[system.id]?.cases;
  for (const benchCase of CASES.filter((c) => options.cases.includes(c.id) && (systemCases?.includes(c.id) ?? true))) {
    const args = caseArgs(system, upstream, benchCase, options, clientPids);
    process.stderr.write(`  ${system.id} ${benchCase.label} c=${benchCase.concurrency} ...`);
    const row = { system: system.id, systemLabel: system.label, case: benchCase.id, caseLabel: benchCase.label, concurrency: benchCase.concurrency, bulk: Boolean(benchCase.bulk) };
    try {
      const result = await runLoadgen(args, (options.warmup + options.duration + 30) * 1000);
      Object.assign(row, result);
      delete row.event;
      row.serverCpuUsPerReq = cpuUsPerRequest(result);
      row.serverCpuPercent = result.serverCpuSeconds !== null ? (result.serverCpuSeconds / result.seconds) * 100 : null;
      row.clientCpuPercent = (result.clientCoreCpuSeconds / result.seconds) * 100;
      row.otherLoadPercent = otherLoadPercent(result);
      row.mibPerServerCpuSecond = benchCase.bulk && result.serverCpuSeconds > 0 ? (result.bytesIn + result.bytesOut) / MIB / result.serverCpuSeconds : null;
      process.stderr.write(` ${Math.round(result.reqPerSec)} req/s, ${result.errors} errors\n`);
    } catch (error) {
      row.failure = error.message;
      process.stderr.write(` FAILED: ${error.message}\n`);
    }
    const memory = memoryMb(system.pid);
    row.peakRssMb = memory?.hwmMb ?? null;
    row.rssMb = memory?.rssMb ?? null;
    rows.push(row);
    if (system.child.exitState) {
      throw new Error(`${system.id} died during ${benchCase.id} (code ${system.child.exitState.code}, signal ${system.child.exitState.signal}): ${tail(system.child.stderrText)}`);
    }
  }
}

/**
 * CPU that neither the server nor the load side used on the bench's cores during the window, as
 * a percentage of one core: other processes on the machine plus hypervisor steal. A few percent
 * is bookkeeping noise; well above 10 means the row is skewed by other work.
 */
function otherLoadPercent(result) {
  const cpus = result.perCpu;
  if (!cpus) return null;
  const percent = (cpu, ownSeconds) => (cpu ? (Math.max(0, cpu.work - ownSeconds) + cpu.steal) / cpu.total * 100 : 0);
  if (pinning.enabled) {
    return Math.max(
      percent(cpus[`cpu${SERVER_CPU}`], result.serverCpuSeconds ?? 0),
      percent(cpus[`cpu${CLIENT_CPU}`], result.clientCoreCpuSeconds ?? 0),
    );
  }
  const all = Object.values(cpus).reduce((sum, c) => ({ work: sum.work + c.work, steal: sum.steal + c.steal, total: sum.total + c.total }), { work: 0, steal: 0, total: 0 });
  return percent(all, (result.serverCpuSeconds ?? 0) + (result.clientCoreCpuSeconds ?? 0));
}

async function runExtras(system, upstream, options) {
  const extras = {};
  const attempt = async (key, args, describe) => {
    process.stderr.write(`  ${system.id} ${key} ...`);
    const base = [...loadgenTarget(system, upstream), '--host', `${UPSTREAM_NAME}:${upstream.port}`, '--server-pid', String(system.pid)];
    try {
      extras[key] = await runLoadgen([...base, ...args], 60_000);
      delete extras[key].event;
      process.stderr.write(` ${describe(extras[key])}\n`);
    } catch (error) {
      extras[key] = { failure: error.message };
      process.stderr.write(` FAILED: ${error.message}\n`);
    }
  };
  const describeNames = (r) => `new ${fmt(r.newMedianMs, 2)} ms vs known ${fmt(r.cachedMedianMs, 2)} ms (median), ${r.errors} errors`;
  await attempt('newNames', ['--mode', 'names', '--path', '/small', '--names', newNames(options.names).join(',')], describeNames);
  // The same with an upstream that closes every connection, so the known name's requests open a
  // new upstream connection as a new name's must: the difference is then what a new name itself
  // costs (leaf issuance and TLS context, a new pool), not a new origin.
  await attempt('newNamesNewUpstream', ['--mode', 'names', '--path', '/small?close', '--names', newNames(options.names, 'c').join(',')], describeNames);
  // The memory cases start from a fresh, warmed-up server: after the load cases its heap is
  // large and shrinking, which would hide (or fake) an increase.
  await restart(system, upstream, options);
  await attempt('slowReader', ['--mode', 'slowread', '--path', '/big?mb=1024', '--read-mib', '8', '--pause', '5'],
    (r) => r.error ?? `RSS +${fmt(r.rssIncreaseMb, 1)} MB (from ${fmt(r.baselineRssMb, 1)} MB)`);
  await restart(system, upstream, options);
  await attempt('slowUpstream', ['--mode', 'slowupload', '--pause', '5'],
    (r) => r.error ?? `RSS +${fmt(r.rssIncreaseMb, 1)} MB (from ${fmt(r.baselineRssMb, 1)} MB), client could write ${fmt(r.writtenMib, 1)} MiB`);
  return extras;
}

/**
 * srt-gw against squid at keep-alive c=32, in alternating rounds (srt-gw first in odd rounds,
 * squid first in even ones) with both proxies running. The main table measures them minutes
 * apart, and on a shared VM the machine's speed drifts by 30-60 % within an hour (same code, same
 * case): enough to flip "ahead of squid" either way. Alternating short runs make both see the same
 * drift. Returns the rounds; throws when either proxy cannot start or a round has errors.
 */
async function runAlternatingRounds(workDir, upstreamFiles, options) {
  const benchCase = CASES.find((c) => c.id === 'ka-c32');
  const timing = { warmup: 1, duration: Math.max(2, options.duration / 2) };
  const upstreamProcess = await startUpstream(workDir, CLIENT_CPU);
  const upstream = { port: upstreamProcess.port, caPath: upstreamFiles.ca, pid: upstreamProcess.pid };
  const systems = [];
  try {
    for (const id of ['srt-gw', 'squid']) {
      const instance = await SYSTEMS[id].start({ workDir, upstream, options });
      systems.push({ id, instance, pid: instance.pid, child: instance.child });
    }
    const rounds = [];
    for (let round = 0; round < options.rounds; round++) {
      const cpuUs = {};
      for (const system of round % 2 === 0 ? systems : [...systems].reverse()) {
        process.stderr.write(`  round ${round + 1}: ${system.id} ${benchCase.label} c=${benchCase.concurrency} ...`);
        const result = await runLoadgen(caseArgs(system, upstream, benchCase, timing, [upstreamProcess.pid]), (timing.warmup + timing.duration + 30) * 1000);
        if (result.errors > 0) throw new Error(`${system.id}: ${result.errors} errors in round ${round + 1}`);
        cpuUs[system.id] = cpuUsPerRequest(result);
        if (cpuUs[system.id] === null) throw new Error(`${system.id}: no CPU figures in round ${round + 1} (/proc unreadable?)`);
        process.stderr.write(` ${fmt(cpuUs[system.id])} us/req\n`);
      }
      rounds.push({ srtGwCpuUs: cpuUs['srt-gw'], squidCpuUs: cpuUs.squid, ratio: cpuUs['srt-gw'] / cpuUs.squid });
    }
    return rounds;
  } finally {
    for (const system of systems) await system.instance.stop();
    await upstreamProcess.stop();
  }
}

async function restart(system, upstream, options) {
  await system.instance.stop();
  system.instance = await SYSTEMS[system.id].start({ workDir: system.workDir, upstream, options });
  system.pid = system.instance.pid;
  system.child = system.instance.child;
}

// ---------------------------------------------------------------------------------------------
// Report

function fmt(value, digits = 0) {
  if (value === null || value === undefined || Number.isNaN(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false });
}

/** fmt() plus a unit, or just "n/a". */
function withUnit(value, digits, unit) {
  const text = fmt(value, digits);
  return text === 'n/a' ? text : `${text} ${unit}`;
}

function table(headers, rows, alignLeft = 2) {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) => cells.map((cell, i) => (i < alignLeft ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function addRatios(rows) {
  for (const row of rows) {
    const direct = rows.find((r) => r.system === 'direct' && r.case === row.case && r.reqPerSec > 0);
    row.ratioToDirect = direct && row.reqPerSec !== undefined ? row.reqPerSec / direct.reqPerSec : null;
  }
}

function mainTable(rows) {
  const headers = ['system', 'case', 'c', 'req/s', 'MB/s', 'x direct', 'p50 ms', 'p99 ms', 'errors', 'srv CPU us/req', 'srv CPU %', 'cpu1 %', 'other %', 'peak RSS MB'];
  const cells = rows.map((r) => r.failure
    ? [r.systemLabel, r.caseLabel, r.concurrency, 'FAILED', '', '', '', '', '', '', '', '', '', fmt(r.peakRssMb, 1)]
    : [
      r.systemLabel, r.caseLabel, r.concurrency, fmt(r.reqPerSec), r.bulk ? fmt(r.mibPerSec, 1) : '',
      fmt(r.ratioToDirect, 2), fmt(r.p50Ms, 2), fmt(r.p99Ms, 2), r.errors, fmt(r.serverCpuUsPerReq),
      fmt(r.serverCpuPercent), fmt(r.clientCpuPercent), `${fmt(r.otherLoadPercent)}${r.otherLoadPercent > NOISY_PERCENT ? '!' : ''}`,
      fmt(r.peakRssMb, 1),
    ]);
  return table(headers, cells, 2);
}

function memoryCell(result) {
  if (!result) return 'n/a';
  if (result.failure || result.error) return 'FAILED';
  return `${result.rssIncreaseMb >= 0 ? '+' : ''}${fmt(result.rssIncreaseMb, 1)} (${fmt(result.baselineRssMb)} -> ${fmt(result.peakRssMb)})`;
}

function extrasTable(extrasBySystem) {
  const rows = Object.entries(extrasBySystem).map(([id, e]) => [
    SYSTEMS[id].label,
    fmt(e.newNames?.newMedianMs, 2), fmt(e.newNames?.cachedMedianMs, 2), fmt(e.newNames?.extraMs, 2),
    fmt(e.newNames?.newServerCpuUsPerConn), fmt(e.newNames?.cachedServerCpuUsPerConn),
    fmt(e.newNamesNewUpstream?.extraMs, 2),
    (e.newNames || e.newNamesNewUpstream) ? (e.newNames?.errors ?? 0) + (e.newNamesNewUpstream?.errors ?? 0) : 'n/a',
    memoryCell(e.slowReader), memoryCell(e.slowUpstream),
  ]);
  return table(['system', 'new name ms', 'known name ms', 'extra ms', 'new CPU us', 'known CPU us', 'extra ms, new upstream conn. both', 'errors', 'slow reader RSS MB', 'slow upstream RSS MB'], rows, 1);
}

function evaluateTargets(rows, extrasBySystem, alternating) {
  const row = (system, id) => rows.find((r) => r.system === system && r.case === id && !r.failure);
  const gw = (id) => row('srt-gw', id);
  const targets = [];
  const add = (label, measured, goal, pass) => targets.push({ label, measured, goal, result: pass === null ? 'n/a' : pass ? 'PASS' : 'MISS' });
  const check = (value, test) => (value === null || value === undefined ? null : test(value));

  const c32 = gw('ka-c32');
  add('keep-alive 1 KiB c=32: gateway CPU per request', withUnit(c32?.serverCpuUsPerReq, 0, 'us'), '<= 65 us', check(c32?.serverCpuUsPerReq, (v) => v <= 65));
  const squid = row('squid', 'ka-c32');
  if (alternating?.rounds) {
    const { rounds, medianRatio } = alternating;
    add(`keep-alive 1 KiB c=32: ahead of squid ssl-bump (${rounds.length} alternating rounds)`,
      `median ratio ${fmt(medianRatio, 2)}; ${rounds.map((r) => `${fmt(r.srtGwCpuUs)}/${fmt(r.squidCpuUs)}`).join(', ')} us`,
      'less CPU/req than squid', medianRatio < 1);
  } else if (squid) {
    add('keep-alive 1 KiB c=32: ahead of squid ssl-bump (same run, CPU/req)',
      `${fmt(c32?.serverCpuUsPerReq)} vs ${fmt(squid.serverCpuUsPerReq)} us; ${fmt(c32?.reqPerSec)} vs ${fmt(squid.reqPerSec)} req/s`,
      'less CPU/req than squid', check(c32?.serverCpuUsPerReq, (v) => v < squid.serverCpuUsPerReq));
  } else {
    add('keep-alive 1 KiB c=32: ahead of squid ssl-bump (same run)', 'squid not run', 'less CPU/req than squid', null);
  }
  const c1 = gw('ka-c1');
  add('keep-alive 1 KiB c=1: p50 latency', withUnit(c1?.p50Ms, 2, 'ms'), '<= 0.4 ms', check(c1?.p50Ms, (v) => v <= 0.4));
  add('keep-alive 1 KiB c=1: p99 latency', withUnit(c1?.p99Ms, 2, 'ms'), '<= 1 ms', check(c1?.p99Ms, (v) => v <= 1));
  const newconn = gw('newconn-c16');
  add('new client TLS connection: gateway CPU per connection', withUnit(newconn?.serverCpuUsPerReq, 0, 'us'), '<= 1100 us', check(newconn?.serverCpuUsPerReq, (v) => v <= 1100));
  const names = extrasBySystem['srt-gw']?.newNamesNewUpstream;
  add('never-seen name: extra latency, leaf issuance + context (median)', withUnit(names?.extraMs, 2, 'ms'), '<= 3 ms', check(names?.extraMs, (v) => v <= 3));
  const namesReuse = extrasBySystem['srt-gw']?.newNames;
  add('never-seen name vs a known one on a kept-alive upstream conn.', withUnit(namesReuse?.extraMs, 2, 'ms'), 'informational', null);
  for (const [id, label] of [['down-1mib-c4', '1 MiB downloads'], ['up-1mib-c4', '1 MiB uploads']]) {
    const bulk = gw(id);
    add(`${label}: MB/s per gateway core`, bulk ? `${fmt(bulk.mibPerServerCpuSecond)} (${fmt(bulk.mibPerSec)} MB/s at ${fmt(bulk.serverCpuPercent)} % CPU)` : 'n/a',
      '>= 360', check(bulk?.mibPerServerCpuSecond, (v) => v >= 360));
  }
  const gwRows = rows.filter((r) => r.system === 'srt-gw');
  const peak = gwRows.length ? Math.max(...gwRows.map((r) => r.peakRssMb ?? 0)) : null;
  add('peak RSS under load (VmHWM)', withUnit(peak, 1, 'MB'), '<= 150 MB', check(peak, (v) => v <= 150));
  const slowReader = extrasBySystem['srt-gw']?.slowReader;
  add('client stops reading a 1 GiB download for 5 s: RSS increase', withUnit(slowReader?.rssIncreaseMb, 1, 'MB'), '< 32 MB', check(slowReader?.rssIncreaseMb, (v) => v < 32));
  const slowUpstream = extrasBySystem['srt-gw']?.slowUpstream;
  add('upstream stops reading a 1 GiB upload for 5 s: RSS increase', withUnit(slowUpstream?.rssIncreaseMb, 1, 'MB'), '< 32 MB', check(slowUpstream?.rssIncreaseMb, (v) => v < 32));
  const errors = gwRows.length ? gwRows.reduce((sum, r) => sum + (r.failure ? 1 : r.errors), 0) : null;
  add('errors (transport + non-2xx) in the gateway cases', String(errors ?? 'n/a'), '0', check(errors, (v) => v === 0));
  return targets;
}

function machineInfo() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpus: cpus.length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    openssl: process.versions.openssl,
    kernel: `${os.type()} ${os.release()}`,
    loadAverageAtStart: os.loadavg(),
  };
}

function countLines(path) {
  try {
    const fd = openSync(path, 'r');
    const buffer = Buffer.allocUnsafe(1 << 20);
    let lines = 0;
    let n;
    while ((n = readSync(fd, buffer, 0, buffer.length, null)) > 0) {
      for (let i = buffer.indexOf(10); i !== -1 && i < n; i = buffer.indexOf(10, i + 1)) lines++;
    }
    closeSync(fd);
    return { lines, mb: statSync(path).size / 1e6 };
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const startedAt = new Date();
  setUpPinning();
  const workDir = mkdtempSync(join(os.tmpdir(), 'srt-gw-bench-'));
  const cleanup = () => {
    killAllChildren();
    rmSync(workDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  process.once('SIGTERM', () => {
    cleanup();
    process.exit(143);
  });

  const machine = machineInfo();
  process.stderr.write(`srt-gw bench: ${machine.cpuModel} x${machine.cpus}, node ${machine.node}; ${options.warmup} s warm-up + ${options.duration} s per case\n`);
  process.stderr.write(`pinning: ${pinning.note}\n`);
  if (machine.loadAverageAtStart[0] > 0.5) {
    process.stderr.write(`note: load average ${machine.loadAverageAtStart[0].toFixed(2)} at start: other work on this machine will skew the numbers\n`);
  }

  const upstreamFiles = ensureUpstreamCertificates(join(workDir, 'upstream'));
  const rows = [];
  const extrasBySystem = {};
  const systems = {};
  const notes = [];
  let crashed = false;
  let alternating = null;

  try {
    for (const id of SYSTEM_IDS.filter((s) => options.only.includes(s))) {
      const system = { id, label: SYSTEMS[id].label, workDir };
      const unavailable = SYSTEMS[id].available();
      if (unavailable) {
        const note = `${id}: ${unavailable}, skipped`;
        notes.push(note);
        process.stderr.write(`${note}\n`);
        systems[id] = { status: 'skipped', reason: unavailable };
        if (id === 'srt-gw') crashed = true;
        continue;
      }
      // For `direct` the upstream itself is the server under test (cpu0); otherwise it shares
      // cpu1 with the load generator.
      let upstreamProcess = null;
      try {
        upstreamProcess = await startUpstream(workDir, id === 'direct' ? SERVER_CPU : CLIENT_CPU);
        const upstream = { port: upstreamProcess.port, caPath: upstreamFiles.ca, pid: upstreamProcess.pid };
        if (id === 'direct') {
          Object.assign(system, { pid: upstreamProcess.pid, child: upstreamProcess.child, version: `node ${process.version} https` });
        } else {
          process.stderr.write(`starting ${id} ...\n`);
          system.instance = await SYSTEMS[id].start({ workDir, upstream, options });
          Object.assign(system, { pid: system.instance.pid, child: system.instance.child, version: system.instance.version });
        }
        systems[id] = { status: 'ran', version: system.version };
        const clientPids = id === 'direct' ? [] : [upstreamProcess.pid];
        await runCases(system, upstream, options, clientPids, rows);
        if (system.instance?.logPath) systems[id].auditLog = countLines(system.instance.logPath);
        if (options.extras && system.instance?.extras) extrasBySystem[id] = await runExtras(system, upstream, options);
        if (system.child.exitState) throw new Error(`${id} exited during the run: ${tail(system.child.stderrText)}`);
      } catch (error) {
        systems[id] = { ...systems[id], status: 'failed', error: error.message };
        const note = `${id}: FAILED: ${error.message}`;
        notes.push(note);
        process.stderr.write(`${note}\n`);
        if (id === 'direct' || id === 'srt-gw') crashed = true;
      } finally {
        await system.instance?.stop();
        await upstreamProcess?.stop();
      }
    }
    const bothRan = systems['srt-gw']?.status === 'ran' && systems.squid?.status === 'ran';
    if (options.rounds > 0 && bothRan && options.cases.includes('ka-c32')) {
      process.stderr.write('srt-gw and squid, alternating rounds ...\n');
      try {
        const rounds = await runAlternatingRounds(workDir, upstreamFiles, options);
        alternating = { rounds, medianRatio: median(rounds.map((r) => r.ratio)) };
      } catch (error) {
        alternating = { failure: error.message };
        notes.push(`alternating rounds: FAILED: ${error.message}`);
        process.stderr.write(`alternating rounds: FAILED: ${error.message}\n`);
      }
    }
  } finally {
    cleanup();
  }

  addRatios(rows);
  const targets = rows.some((r) => r.system === 'srt-gw') ? evaluateTargets(rows, extrasBySystem, alternating) : [];

  const out = [];
  out.push('');
  out.push(`srt-gw bench, ${startedAt.toISOString()}: ${machine.cpuModel} x${machine.cpus}, node ${machine.node}, ${pinning.note}`);
  out.push(`${options.warmup} s warm-up + ${options.duration} s measured per case. MB/s = MiB/s of bodies. srv CPU = server process + descendants (utime+stime); cpu1 % = load generator + upstream; other % = other processes + steal on the busier bench core.`);
  out.push('');
  out.push(mainTable(rows));
  const noisy = rows.filter((r) => r.otherLoadPercent > NOISY_PERCENT);
  if (noisy.length) {
    out.push(`! ${noisy.length} row(s) ran while other processes or hypervisor steal took > ${NOISY_PERCENT} % of a bench core ("other %"): rerun on a quiet machine before trusting them.`);
  }
  if (Object.keys(extrasBySystem).length) {
    out.push('');
    out.push(`New names (sequential new connections, ${options.names} never-seen names vs a known one) and memory under a stalled peer:`);
    out.push(extrasTable(extrasBySystem));
  }
  if (alternating?.rounds) {
    out.push('');
    out.push('srt-gw and squid ssl-bump at keep-alive 1 KiB c=32 in alternating rounds, both running (each run 1 s warm-up + ' +
      `${fmt(Math.max(2, options.duration / 2), 1)} s), so drift in the machine's speed hits both:`);
    out.push(table(['round', 'srt-gw us/req', 'squid us/req', 'ratio'],
      alternating.rounds.map((r, i) => [String(i + 1), fmt(r.srtGwCpuUs), fmt(r.squidCpuUs), fmt(r.ratio, 2)]), 1));
  }
  if (targets.length) {
    out.push('');
    out.push('Targets, informational:');
    out.push(table(['target', 'measured', 'goal', 'result'], targets.map((t) => [t.label, t.measured, t.goal, t.result]), 3));
  }
  for (const [id, info] of Object.entries(systems)) {
    if (info.auditLog) out.push(`${id} audit log: ${info.auditLog.lines} lines, ${fmt(info.auditLog.mb, 1)} MB (policy matching and audit logging on)`);
  }
  if (notes.length) {
    out.push('');
    for (const note of notes) out.push(note);
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const stamp = startedAt.toISOString().replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  const jsonPath = join(RESULTS_DIR, `bench-${stamp}.json`);
  writeFileSync(jsonPath, JSON.stringify({
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machine, loadAverageAtEnd: os.loadavg() },
    pinning,
    options,
    systems,
    rows,
    extras: extrasBySystem,
    alternating,
    targets,
    notes,
  }, null, 2) + '\n');
  out.push('');
  out.push(`JSON: ${jsonPath}`);
  process.stdout.write(out.join('\n') + '\n');
  process.exitCode = crashed ? 1 : 0;
}

main().catch((error) => {
  process.stderr.write(`bench: ${error.stack ?? error}\n`);
  killAllChildren();
  process.exit(1);
});
