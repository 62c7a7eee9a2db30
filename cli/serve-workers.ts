// `srt-gw serve --workers N`: one listening port served by N processes (node:cluster). The
// primary checks the policy and creates the CA before forking, forwards SIGHUP and SIGUSR1,
// restarts a worker that dies, drains them all on SIGTERM and serves one /metrics for all.
import cluster, { type Worker } from 'node:cluster';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import os from 'node:os';
import { dirname } from 'node:path';
import { loadOrCreateCertificateAuthority } from '../ca/index.js';
import { defaultCaDir } from '../ca/paths.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import type { ListenAddress } from '../gateway/gateway.js';
import type { WorkerMetricsSource } from '../gateway/audit/worker-metrics.js';
import { auditLogDestination, parseListenAddress } from './flags.js';
import { policyFromFlags } from './policy-source.js';

/** Messages a worker sends the primary. */
export const WORKER_LISTENING = 'srt-gw:worker-listening';

/** Crashes within this window count towards a crash loop. */
const CRASH_WINDOW_MS = 60_000;
/** This many crashes within the window stop serve. */
const MAX_CRASHES_IN_WINDOW = 5;
const FIRST_RESTART_DELAY_MS = 100;
const MAX_RESTART_DELAY_MS = 5_000;
/** SIGTERM drains: a worker that has not exited after this long is killed. */
const DRAIN_TIMEOUT_MS = 30_000;

/**
 * Round-robin by the primary (Node's default on Linux) rather than the kernel's accept queue
 * (SCHED_NONE). On the 2-core bench machine the two measured the same within its noise, in
 * request rate and in how 64 simultaneous connections were spread (bench/README.md); round-robin
 * does not depend on which worker the scheduler wakes first, which Node's cluster documentation
 * reports can leave most connections to a few workers under load.
 */
const SCHEDULING_POLICY = cluster.SCHED_RR;

/** The value of --workers: a positive integer, or "auto" for the number of cores. */
export function parseWorkerCount(value: string | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto') return Math.max(1, os.availableParallelism());
  if (!/^[1-9][0-9]{0,3}$/.test(value)) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--workers must be a positive whole number or "auto" (got ${JSON.stringify(value)})`);
  }
  return Number(value);
}

/** True in a process that cluster forked for `serve --workers`. */
export function isServeWorker(): boolean {
  return cluster.isWorker;
}

/** The prefix of this worker's connection ids (its cluster id), so ids stay unique across workers. */
export function workerConnectionIdPrefix(): string {
  return `w${cluster.worker?.id ?? 0}-`;
}

/** Tells the primary this worker is listening. */
export function announceWorkerListening(proxy: ListenAddress): void {
  process.send?.({ type: WORKER_LISTENING, proxy });
}

/**
 * What serve's flags do not allow with more than one worker: each of these keeps state that one
 * process alone would have to hold (synthetic DNS addresses a later connection must find, one
 * jail socket path, one draft policy from every request).
 */
function refuseFlagsWithoutWorkerSupport(flags: WorkerServeFlags): void {
  const unsupported = [
    ['--dns', flags.dns],
    ['--dns-socket', flags.dnsSocket],
    ['--transparent', flags.transparent],
    ['--write-policy', flags.writePolicy],
  ].filter(([, value]) => value !== undefined);
  if (unsupported.length > 0) {
    const names = unsupported.map(([name]) => name).join(', ');
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${names} cannot be used with --workers above 1 (each worker would keep its own state); drop --workers or run one serve for them`);
  }
}

export interface WorkerServeFlags {
  policy?: string;
  allow: string[];
  listen: string;
  caDir?: string;
  log?: string;
  metrics?: string;
  dns?: string;
  dnsSocket?: string;
  transparent?: string;
  writePolicy?: string;
}

interface WorkerSlot {
  /** The cluster worker serving this slot now; null while it waits to be restarted. */
  worker: Worker | null;
  listening: boolean;
  proxy: ListenAddress | null;
}

/**
 * The primary: checks what a bad start would otherwise find N times, forks, and supervises.
 * Resolves after a SIGTERM/SIGINT drain; rejects when the workers cannot start or crash in a loop.
 */
export async function serveWithWorkers(flags: WorkerServeFlags, count: number): Promise<void> {
  refuseFlagsWithoutWorkerSupport(flags);
  parseListenAddress('--listen', flags.listen);
  const metricsAddress = flags.metrics ? parseListenAddress('--metrics', flags.metrics) : null;
  // A bad policy stops everything before anything is forked or listens (exit 2).
  await policyFromFlags(flags.policy, flags.allow);
  // Created once here: N workers creating the CA directory at once would race.
  const ca = await loadOrCreateCertificateAuthority(flags.caDir ?? defaultCaDir());
  checkAuditLogFile(auditLogDestination(flags.log, 2));

  const slots: WorkerSlot[] = Array.from({ length: count }, () => ({ worker: null, listening: false, proxy: null }));
  let stopping = false;
  let failure: SrtGwError | null = null;
  let announced = false;
  const crashes: number[] = [];
  const restartTimers = new Set<NodeJS.Timeout>();
  let wakeSupervisor = () => {};
  const finished = new Promise<void>((resolveFinished) => {
    wakeSupervisor = resolveFinished;
  });
  const liveWorkers = () => slots.flatMap((slot) => (slot.worker ? [slot.worker] : []));
  const signalWorkers = (signal: NodeJS.Signals) => {
    for (const worker of liveWorkers()) worker.process.kill(signal);
  };
  const stop = () => {
    if (stopping) return;
    stopping = true;
    for (const timer of restartTimers) clearTimeout(timer);
    restartTimers.clear();
    signalWorkers('SIGTERM');
    if (liveWorkers().length === 0) wakeSupervisor();
    // A worker stuck in its drain must not keep serve from exiting.
    setTimeout(() => signalWorkers('SIGKILL'), DRAIN_TIMEOUT_MS).unref();
  };
  // Installed before the first fork: a signal without a handler would kill the primary and
  // orphan its workers.
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => signalWorkers('SIGHUP'));
  process.on('SIGUSR1', () => signalWorkers('SIGUSR1'));

  // NODE_CLUSTER_SCHED_POLICY (rr, none), Node's own setting, still chooses when it is set.
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = SCHEDULING_POLICY;

  const fork = (slot: WorkerSlot) => {
    const worker = cluster.fork();
    slot.worker = worker;
    slot.listening = false;
    worker.on('message', (message: { type?: string; proxy?: ListenAddress }) => {
      if (message?.type !== WORKER_LISTENING || slot.worker !== worker) return;
      slot.listening = true;
      slot.proxy = message.proxy ?? null;
      if (!announced && slots.every((s) => s.listening)) {
        announced = true;
        announceListening(slots[0]!.proxy!, metrics?.address ?? null, ca.certPath, count);
      }
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      const wasListening = slot.listening;
      slot.listening = false;
      if (stopping) {
        if (liveWorkers().length === 0) wakeSupervisor();
        return;
      }
      const how = signal ? `signal ${signal}` : `exit code ${code}`;
      if (!announced && !wasListening) {
        // A worker that cannot start (port taken, audit log unwritable) will not start on a retry.
        failure = new SrtGwError(code === 2 ? ErrorCodes.CONFIG_INVALID : ErrorCodes.LISTEN_FAILED, `a worker failed to start (${how}); its message is above`);
        stop();
        return;
      }
      const now = Date.now();
      crashes.push(now);
      while (crashes.length > 0 && crashes[0]! < now - CRASH_WINDOW_MS) crashes.shift();
      if (crashes.length >= MAX_CRASHES_IN_WINDOW) {
        failure = new SrtGwError(ErrorCodes.LISTEN_FAILED, `workers crashed ${crashes.length} times within ${CRASH_WINDOW_MS / 1000} s (last: ${how}); serve stops rather than restart in a loop`);
        stop();
        return;
      }
      const delay = Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (crashes.length - 1));
      process.stderr.write(`srt-gw: worker ${worker.id} ended (${how}); starting another in ${delay} ms\n`);
      const timer = setTimeout(() => {
        restartTimers.delete(timer);
        if (!stopping) fork(slot);
      }, delay);
      restartTimers.add(timer);
    });
  };

  const source: WorkerMetricsSource = { workers: () => slots.flatMap((slot) => (slot.worker && slot.listening ? [slot.worker] : [])) };
  const metrics = metricsAddress
    ? await (await import('../gateway/audit/worker-metrics.js')).startPrimaryMetricsServer(metricsAddress, source, { ready: () => !stopping && slots.every((slot) => slot.listening) })
    : null;
  try {
    for (const slot of slots) fork(slot);
    await finished;
  } finally {
    await metrics?.close();
  }
  // Set by the exit handlers, which TypeScript's narrowing does not see.
  const failed = failure as SrtGwError | null;
  if (failed) throw failed;
}

/** Fails before forking when the audit log file cannot be opened for appending. */
function checkAuditLogFile(destination: string | number | false): void {
  if (typeof destination !== 'string') return;
  try {
    mkdirSync(dirname(destination), { recursive: true });
    closeSync(openSync(destination, 'a', 0o600));
  } catch (error) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot open the audit log ${destination}: ${(error as Error).message}; give --log a writable file`, { cause: error });
  }
}

function announceListening(proxy: ListenAddress, metrics: ListenAddress | null, caCertPath: string, workers: number): void {
  const format = (a: ListenAddress) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  process.stdout.write(
    JSON.stringify({ event: 'listening', proxy: format(proxy), metrics: metrics ? format(metrics) : null, dns: null, transparent: null, dnsSocket: null, ca: caCertPath, workers }) + '\n',
  );
}
