// `srt-gw serve`: the gateway as a long-running explicit proxy.
import { lstatSync, readFileSync, readlinkSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { setConnectionIdPrefix } from '../gateway/connection-context.js';
import { startGateway } from '../gateway/gateway.js';
import type { SharedStateConnection } from '../gateway/state/redis-state.js';
import { policyFiles } from '../policies/policy-files.js';
import type { Policy } from '../policies/types.js';
import { auditLogDestination, parseDnsServer, parseListenAddress, parseResolveOverride, parseSeconds, upstreamProxyFromFlags } from './flags.js';
import { tuneHeapForProxying } from './heap-tuning.js';
import { policyFromFlags } from './policy-source.js';
import { announceWorkerListening, isServeWorker, parseWorkerCount, serveWithWorkers, workerConnectionIdPrefix } from './serve-workers.js';

export interface ServeFlags {
  policy?: string;
  allow: string[];
  listen: string;
  caDir?: string;
  upstreamCa: string[];
  upstreamProxy?: string;
  /** --no-upstream-proxy-for (commander names a "--no-" flag's value after the rest of its name). */
  upstreamProxyFor: string[];
  resolve: string[];
  dnsUpstream: string[];
  log?: string;
  metrics?: string;
  dns?: string;
  transparent?: string;
  dnsSocket?: string;
  upstreamTimeout?: string;
  headerTimeout?: string;
  dnsDeny: 'nxdomain' | 'refused';
  monitor: boolean;
  writePolicy?: string;
  tlsCert?: string;
  tlsKey?: string;
  clientCa?: string;
  /** Where client-tokens/ (keys and revocations of `srt-gw token issue`) is read. */
  stateDir?: string;
  /** --workers: a count or "auto"; above 1 this process becomes the primary of a cluster. */
  workers?: string;
  /** --state: the Redis URL replicas share budgets, approvals and revocations through. */
  state?: string;
}

export async function serve(flags: ServeFlags): Promise<void> {
  if (!flags.policy && flags.allow.length === 0) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'serve needs --policy FILE or at least one --allow HOST (default deny would refuse everything)');
  }
  const workerCount = parseWorkerCount(flags.workers);
  const worker = isServeWorker();
  if (workerCount > 1 && !worker) return serveWithWorkers(flags, workerCount);
  if (worker) setConnectionIdPrefix(workerConnectionIdPrefix());
  const listen = parseListenAddress('--listen', flags.listen);
  const metrics = flags.metrics ? parseListenAddress('--metrics', flags.metrics) : null;
  const dns = flags.dns ? parseListenAddress('--dns', flags.dns) : null;
  const resolve = new Map(flags.resolve.map(parseResolveOverride));
  const dnsUpstream = flags.dnsUpstream.map(parseDnsServer);
  const upstreamProxy = upstreamProxyFromFlags(flags.upstreamProxy, flags.upstreamProxyFor, process.env, (message) => process.stderr.write(`${message}\n`));
  const upstreamTimeoutMs = flags.upstreamTimeout === undefined ? undefined : parseSeconds('--upstream-timeout', flags.upstreamTimeout) * 1000;
  const headersTimeoutMs = flags.headerTimeout === undefined ? undefined : parseSeconds('--header-timeout', flags.headerTimeout) * 1000;
  const proxyTls = readProxyTls(flags);
  const policy = await policyFromFlags(flags.policy, flags.allow);
  // The state client loads only with --state: a serve without it never touches it.
  const sharedState = flags.state === undefined ? undefined : await connectSharedState(flags.state);
  const observedTraffic = flags.writePolicy === undefined ? null : await import('../gateway/audit/observed-traffic.js');
  if (flags.writePolicy !== undefined) observedTraffic?.checkDraftPolicyPath(flags.writePolicy);
  tuneHeapForProxying();

  // Signal handlers go in before anything is announced: the kernel delivers a signal whenever
  // it is sent, and one that arrives before a handler exists kills the process (exit by signal,
  // not 0). They stay installed, so a second signal while closing is absorbed too.
  const stopRequested = new Promise<void>((resolveStop) => {
    process.on('SIGTERM', () => resolveStop());
    process.on('SIGINT', () => resolveStop());
  });
  // logrotate's postrotate sends SIGUSR1: the audit log is opened again under its name.
  let reopenAuditLog = () => {};
  process.on('SIGUSR1', () => reopenAuditLog());
  let stopAnsweringMetrics = () => {};
  const { answerMetricsRequests } = worker && metrics ? await import('../gateway/audit/worker-metrics.js') : { answerMetricsRequests: () => () => {} };
  const gateway = await startGateway({
    policy,
    caDir: flags.caDir,
    listen,
    upstreamCaFiles: flags.upstreamCa,
    upstreamProxy,
    resolve,
    dnsUpstream,
    auditLog: auditLogDestination(flags.log, 2),
    // A worker's metrics go to the primary, which serves one /metrics for all workers.
    metrics: worker ? null : metrics,
    collectMetrics: worker && metrics ? (workerMetrics) => (stopAnsweringMetrics = answerMetricsRequests(workerMetrics)) : undefined,
    dns,
    transparentSocket: flags.transparent,
    dnsSocket: flags.dnsSocket,
    upstreamTimeoutMs,
    limits: headersTimeoutMs === undefined ? undefined : { headersTimeoutMs },
    dnsDenyRcode: flags.dnsDeny === 'refused' ? 'REFUSED' : 'NXDOMAIN',
    monitor: flags.monitor,
    sharedState,
    // The policy's clients: (if it names any) authenticate every request to the proxy.
    clientAuthentication: { stateDirectory: flags.stateDir },
    ...(proxyTls === null ? {} : { proxyTls }),
  });
  reopenAuditLog = () => gateway.reopenAuditLog();
  const observed = observedTraffic ? new observedTraffic.ObservedTraffic(gateway.events) : null;
  // Reload on SIGHUP and when the policy file, or a file it extends, changes; a bad file keeps
  // the old policy.
  let watcher: PolicyWatcher | null = null;
  const reload = async (why: string) => {
    try {
      const next = await policyFromFlags(flags.policy, flags.allow);
      await gateway.reload(next);
      watcher?.follow(next);
      process.stderr.write(`srt-gw: policy reloaded (${why})\n`);
    } catch (error) {
      gateway.reportReloadFailure((error as Error).message);
      process.stderr.write(`srt-gw: policy reload failed, the previous policy stays in force: ${(error as Error).message}\n`);
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
  const format = (a: { host: string; port: number }) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  if (worker) announceWorkerListening(gateway.address);
  else process.stdout.write(
    JSON.stringify({
      event: 'listening',
      proxy: format(gateway.address),
      metrics: gateway.metricsAddress ? format(gateway.metricsAddress) : null,
      dns: gateway.dnsAddress ? format(gateway.dnsAddress) : null,
      transparent: flags.transparent ?? null,
      dnsSocket: flags.dnsSocket ?? null,
      ca: gateway.ca.certPath,
    }) + '\n',
  );

  if (flags.policy) {
    watcher = new PolicyWatcher(flags.policy, () => void reload('file changed'));
    watcher.follow(policy);
  }

  await stopRequested;
  watcher?.close();
  await gateway.close();
  await sharedState?.close();
  stopAnsweringMetrics();
  // The IPC channel would keep a worker alive; its audit lines are written by now.
  if (worker) process.disconnect();
  observed?.stop();
  if (observed && flags.writePolicy !== undefined) {
    observed.writeDraft(flags.writePolicy, "srt-gw serve's clients");
    process.stderr.write(`srt-gw: draft policy written to ${flags.writePolicy} (review it, then: srt-gw policy check ${flags.writePolicy})\n`);
  }
}

/** The proxy's TLS files (--tls-cert, --tls-key, --client-ca), read once at start; null without --tls-cert. */
function readProxyTls(flags: Pick<ServeFlags, 'tlsCert' | 'tlsKey' | 'clientCa'>): { cert: Buffer; key: Buffer; ca?: Buffer } | null {
  if (flags.tlsCert === undefined && flags.tlsKey === undefined) {
    if (flags.clientCa !== undefined) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, '--client-ca needs --tls-cert and --tls-key: client certificates are asked for on a TLS listener');
    return null;
  }
  if (flags.tlsCert === undefined || flags.tlsKey === undefined) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, '--tls-cert and --tls-key go together: give both');
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${flag} ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
    }
  };
  const cert = read('--tls-cert', flags.tlsCert);
  const key = read('--tls-key', flags.tlsKey);
  return flags.clientCa === undefined ? { cert, key } : { cert, key, ca: read('--client-ca', flags.clientCa) };
}

/** Symlink hops followed when listing what a policy path's content depends on. */
const MAX_LINK_HOPS = 8;

/**
 * The directory entries whose change changes what `file` reads: the file itself and, when it is
 * reached through symlinks, each link on the way. Kubernetes updates a mounted ConfigMap by
 * renaming a `..data` symlink beside `policy.yaml -> ..data/policy.yaml`; only `..data` changes then.
 */
function entriesThatChange(file: string): string[] {
  const entries: string[] = [];
  let path = file;
  for (let hop = 0; hop <= MAX_LINK_HOPS; hop++) {
    entries.push(path);
    let target: string;
    try {
      if (!lstatSync(path).isSymbolicLink()) break;
      target = resolve(dirname(path), readlinkSync(path));
    } catch {
      break;
    }
    for (let ancestor = dirname(target); ancestor !== dirname(ancestor); ancestor = dirname(ancestor)) {
      try {
        if (lstatSync(ancestor).isSymbolicLink()) entries.push(ancestor);
      } catch {
        // a link target that does not exist (yet): the reload reports it
      }
    }
    path = target;
  }
  return entries;
}

/** Changes closer together than this are one reload. */
const CHANGE_DEBOUNCE_MS = 100;
/** How long an empty policy file is given to be written before it counts as broken. */
const EMPTY_FILE_SECOND_LOOK_MS = 500;

/**
 * Watches the policy file and the files it extends (presets ship with srt-gw and are not
 * watched). Directories, not files: editors and config tools replace files by rename, which
 * would silently end a watch on the old inode.
 */
class PolicyWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private names = new Map<string, Set<string>>();
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    private readonly policyFile: string,
    private readonly onChange: () => void,
  ) {}

  /** Watches the files `policy` was read from, after each successful (re)load. */
  follow(policy: Policy): void {
    const files = policy.origin === undefined ? [resolve(this.policyFile)] : policyFiles(policy, this.policyFile);
    const names = new Map<string, Set<string>>();
    for (const file of files) {
      for (const entry of entriesThatChange(file)) {
        const directory = dirname(entry);
        if (!names.has(directory)) names.set(directory, new Set());
        names.get(directory)!.add(basename(entry));
      }
    }
    this.names = names;
    for (const [directory, watcher] of this.watchers) {
      if (names.has(directory)) continue;
      watcher.close();
      this.watchers.delete(directory);
    }
    for (const directory of names.keys()) {
      if (this.watchers.has(directory)) continue;
      try {
        const watcher = watch(directory, { persistent: false }, (_event, changed) => {
          if (changed !== null && !this.names.get(directory)?.has(changed)) return;
          clearTimeout(this.debounce);
          this.debounce = setTimeout(() => this.settled(), CHANGE_DEBOUNCE_MS);
        });
        // A watched directory that is removed (an old ConfigMap generation) must not end serve.
        watcher.on('error', () => watcher.close());
        this.watchers.set(directory, watcher);
      } catch {
        // A directory that vanished: SIGHUP still reloads.
      }
    }
  }

  /**
   * Many editors save by truncating the file and then writing it, and a change event can come in
   * between: an empty policy file gets one more look before it is reloaded and reported as broken.
   */
  private settled(secondLook = false): void {
    if (!secondLook && this.watchedFileIsEmpty()) {
      this.debounce = setTimeout(() => this.settled(true), EMPTY_FILE_SECOND_LOOK_MS);
      return;
    }
    this.onChange();
  }

  private watchedFileIsEmpty(): boolean {
    for (const [directory, names] of this.names) {
      for (const name of names) {
        try {
          if (statSync(join(directory, name)).size === 0) return true;
        } catch {
          // gone (a rename in progress): the reload reports it if it stays gone
        }
      }
    }
    return false;
  }

  close(): void {
    clearTimeout(this.debounce);
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }
}

async function connectSharedState(url: string): Promise<SharedStateConnection> {
  const { parseStateLocation } = await import('../gateway/state/state-url.js');
  const location = parseStateLocation(url);
  const { connectRedisState } = await import('../gateway/state/redis-state.js');
  return connectRedisState(location, { log: (line) => process.stderr.write(`srt-gw: ${line}\n`) });
}
