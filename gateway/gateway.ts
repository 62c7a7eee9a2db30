// Assembles and starts one gateway from its parts: the policy in force (policy-state.ts), the CA
// and leaf cache, the resolver and upstream client, the request pipeline and tunnel terminator,
// the audit log and metrics, the listeners, and the doors jails open (listeners/jail-endpoints.ts).
// `srt-gw serve`, `srt-gw run` and the library API all start it here.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { loadOrCreateCertificateAuthority, LeafContextCache } from '../ca/index.js';
import { defaultCaDir } from '../ca/paths.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import type { CompiledPolicy } from '../policies/match.js';
import type { Policy } from '../policies/types.js';
import type { AuditLog } from './audit/audit-log.js';
import { DecisionHub, type DecisionKinds, type DecisionStream, type DecisionStreamOptions } from './audit/decisions.js';
import { GatewayEvents } from './audit/events.js';
import type { GatewayHealth, GatewayMetrics } from './audit/metrics.js';
import { EgressBudgets } from './credentials/egress-budget.js';
import type { SharedStateConnection } from './state/redis-state.js';
import { SharedEgressBudgets } from './state/shared-egress-budgets.js';
import { RedisApprovals } from './state/redis-approvals.js';
import { DnsResponder } from './dns/responder.js';
import { SyntheticAddressPool } from './dns/synthetic-pool.js';
import { UpstreamResolver } from './dns/upstream-resolver.js';
import { WildcardNameCap } from './dns/wildcard-names.js';
import { RequestPipeline } from './http/request-pipeline.js';
import { DEFAULT_LIMITS, type GatewayLimits } from './limits.js';
import { ClientConnections } from './listeners/client-connections.js';
import { createExplicitProxyServer, type ExplicitProxyTls } from './listeners/explicit-proxy.js';
import type { ClientAuthenticatorOptions } from '../identity/authenticate-client.js';
import { GatewayListeners, type ListenAddress } from './listeners/gateway-listeners.js';
import { JailDoors, type JailEndpoints } from './listeners/jail-endpoints.js';
import { RedirectedConnections } from './listeners/redirected-connections.js';
import { PolicyState } from './policy-state.js';
import { loadUpstreamTrust } from './tls/trust-store.js';
import { TunnelTerminator } from './tls/tunnel-terminator.js';
import {
  DEFAULT_MAX_DEFERRED_NAMES,
  DEFAULT_MAX_UNKNOWN_HOST_QUESTIONS,
  DEFAULT_UNKNOWN_HOST_TIMEOUT_MS,
  UnknownHostQuestions,
  type UnknownHostCallback,
} from './unknown-host.js';
import { DestinationCheck } from './upstream/destination-check.js';
import { ResponseEnds } from './upstream/response-ends.js';
import { UpstreamClient } from './upstream/upstream-client.js';
import { parseUpstreamProxy, type UpstreamProxyOptions } from './upstream/upstream-proxy.js';

export type { JailEndpoints, ListenAddress };

/** Host → addresses overrides for the gateway's upstream connections (like curl --resolve). */
export type ResolveOverrides = ReadonlyMap<string, readonly string[]> | Readonly<Record<string, string | readonly string[]>>;

export interface GatewayOptions {
  /** The policy: a parsed Policy (parsePolicy, loadPolicy) or the path of a policy file. */
  policy: Policy | string;
  /** Directory of the local CA; created on first use. Default: SRT_GW_CA_DIR or ~/.config/srt-gw/ca. */
  caDir?: string;
  /** Explicit proxy listener. Default 127.0.0.1, a free port. */
  listen?: ListenAddress;
  /** Extra PEM files trusted for upstream certificates, on top of the system store. */
  upstreamCaFiles?: readonly string[];
  /**
   * Send allowed traffic through this proxy with HTTP CONNECT (docs/serve.md, "Upstream proxy"):
   * the gateway still decides, resolves and checks each destination first.
   */
  upstreamProxy?: UpstreamProxyOptions;
  /**
   * Host → addresses overrides for upstream connections (like curl --resolve). A pinned address
   * may be private (loopback, the LAN): pinning is the operator's choice, so it is not refused.
   */
  resolve?: ResolveOverrides;
  /** DNS servers ("ip" or "ip:port") for the gateway's own upstream lookups. Default: the system's. */
  dnsUpstream?: readonly string[];
  /** Audit log destination: a file path, a file descriptor (2 = stderr), or false for none. */
  auditLog?: string | number | false;
  /**
   * Serve DNS for the sandbox here (UDP and TCP): allowed names get synthetic addresses, all else
   * NXDOMAIN, and no query is ever forwarded (except A/AAAA lookups in `monitor` mode).
   */
  dns?: ListenAddress | null;
  /**
   * Also serve DNS over a unix socket (stream framing, mode 0600) for the jail's forwarder.
   * Starts the DNS server on 127.0.0.1 with a free port when `dns` is not given.
   */
  dnsSocket?: string;
  /** Answer for names no rule could allow. Default NXDOMAIN. */
  dnsDenyRcode?: 'NXDOMAIN' | 'REFUSED';
  /**
   * Unix socket for the jail's redirector: connections prefixed with a PROXY v2 header naming
   * the address the sandboxed program dialled. Created with mode 0600.
   */
  transparentSocket?: string;
  /** Serve Prometheus metrics here. */
  metrics?: ListenAddress | null;
  /**
   * Collect metrics without serving them, and hand the registry to this callback: a worker of
   * `srt-gw serve --workers` passes it to the primary, which serves one /metrics for all.
   */
  collectMetrics?: (metrics: Pick<GatewayMetrics, 'registry' | 'countPending'>) => void;
  /**
   * Report mode: policy, credential and budget denials are logged but let through, and a name no
   * rule allows is resolved (A/AAAA only, upstream) instead of refused. It lets data out: use it
   * only for a trusted command, to learn the policy it needs.
   */
  monitor?: boolean;
  /**
   * Where `inject: { env: NAME }` secrets are read, at start and at each reload. Default:
   * process.env. (A jail's environment gets placeholders instead: credentialPlaceholders().)
   */
  secretEnv?: NodeJS.ProcessEnv;
  /**
   * How long the upstream may take to accept a connection, to send response headers, and
   * between body chunks. Default: 10 s to connect, 60 s for headers, 300 s between chunks.
   */
  upstreamTimeoutMs?: number;
  limits?: Partial<GatewayLimits>;
  /**
   * Asked, once per host:port, when a connection or request is for a host no rule allows or
   * denies (an interactive harness asks its user). `true` adds an allow rule for that host:port,
   * id `approved-<host>-<port>`, for the rest of the gateway's life; anything else, a throw or no
   * answer within `unknownHostTimeoutMs` denies it, and that answer is kept too. DNS does not
   * wait for it: with this option, a name no rule allows gets a synthetic address (up to 4096
   * such names) and the question comes when the program connects, with the port. Not consulted
   * in monitor mode, which blocks nothing.
   */
  onUnknownHost?: UnknownHostCallback;
  /** How long onUnknownHost may take before the host is denied. Default 30 s. */
  unknownHostTimeoutMs?: number;
  /**
   * State shared with the other replicas (serve --state): egress budgets are counted there and
   * onUnknownHost approvals recorded there. Absent: all of it lives in this process. The caller
   * opens it (connectRedisState) and closes it after the gateway.
   */
  sharedState?: SharedStateConnection;
  /**
   * Make every request to the explicit proxy authenticate as one of the policy's `clients:`
   * (407 otherwise), each client limited to its rules. Without it `clients:` is not enforced.
   * The jail's redirected connections are never asked (a jail is its gateway's only client).
   */
  clientAuthentication?: ClientAuthenticatorOptions;
  /** Serve the explicit proxy over TLS (an HTTPS proxy); `ca` asks clients for certificates (mTLS clients). */
  proxyTls?: ExplicitProxyTls;
}

/** The gateway's local CA, as far as a library user needs it. */
export interface GatewayCa {
  /** The CA directory. */
  readonly dir: string;
  /** The CA certificate (PEM) clients must trust: pass it as curl's --cacert, NODE_EXTRA_CA_CERTS, ... */
  readonly certPath: string;
  readonly certPem: string;
  /** SHA-256 fingerprint, colon-separated upper-case hex. */
  readonly fingerprint256: string;
}

export interface Gateway {
  /** The explicit proxy listener (HTTP and CONNECT), e.g. { host: '127.0.0.1', port: 41234 }. */
  readonly address: ListenAddress;
  /** The same, as a proxy URL for HTTPS_PROXY and friends: "http://127.0.0.1:41234". */
  readonly proxyUrl: string;
  readonly metricsAddress: ListenAddress | null;
  readonly dnsAddress: ListenAddress | null;
  /** Names the DNS server handed synthetic addresses to, and back. */
  readonly syntheticAddresses: SyntheticAddressPool;
  /** The raw event bus (the audit log's and the metrics' source); most users want decisions() or on(). */
  readonly events: GatewayEvents;
  readonly ca: GatewayCa;
  /** The compiled policy in force now (with the rules onUnknownHost approvals added). */
  readonly policy: CompiledPolicy;
  /**
   * Every request, connection and DNS decision from now until the gateway closes, as typed
   * records (the audit log's lines). Each call is a separate iterator that sees every decision.
   * A consumer that falls behind loses the oldest decisions beyond `bufferSize` (default 1024),
   * counted in `stream.dropped`; the gateway never waits for a consumer.
   */
  decisions(options?: DecisionStreamOptions): DecisionStream;
  /**
   * Calls `listener` synchronously for each decision of `kind` ("decision" for all); returns
   * the function that unsubscribes. A listener that throws is reported as a process warning.
   */
  on<K extends keyof DecisionKinds>(kind: K, listener: (decision: DecisionKinds[K]) => void): () => void;
  /**
   * Swaps the policy (an object, or a file path read again) atomically once its secrets are read
   * again: requests already decided keep their decision. Rejects (an SrtGwError:
   * SRTGW_POLICY_INVALID, SRTGW_POLICY_UNREADABLE, SRTGW_CREDENTIAL_UNAVAILABLE) when the file or
   * a secret cannot be read; the previous policy then stays in force. Egress budget counts and
   * onUnknownHost approvals carry over.
   */
  reload(policy: Policy | string): Promise<void>;
  /** Records a reload that failed before it reached reload() (e.g. the file did not validate). */
  reportReloadFailure(reason: string): void;
  /** Opens the audit log file again by name, for log rotation (`srt-gw serve` does it on SIGUSR1). */
  reopenAuditLog(): void;
  /**
   * Opens what one jail needs (used by run() with a `gateway` option): DNS on a new unix socket,
   * whose queries and connections are labelled `clientLabel` so that one run's decisions can be
   * told from another's.
   */
  openJailEndpoints(dnsSocket: string, clientLabel: string): Promise<JailEndpoints>;
  /**
   * Loads what the first upstream request needs (undici, the trust store) ahead of it; it
   * otherwise loads on demand. srt-gw run calls it shortly after the command starts.
   */
  prepareUpstream(): Promise<void>;
  /** Stops listening, ends every connection and decision iterator; safe to call twice. */
  close(): Promise<void>;
}

/**
 * With shared state (serve --state), issued tokens are checked against its revocations as well as
 * against this host's file (`srt-gw token revoke` without --state), unless the caller chose a store.
 */
async function withSharedRevocations(options: GatewayOptions): Promise<ClientAuthenticatorOptions | undefined> {
  const state = options.sharedState;
  if (state === undefined || options.clientAuthentication?.revocations !== undefined) return options.clientAuthentication;
  const { CombinedRevocationStore, RedisRevocationStore } = await import('./state/redis-revocation-store.js');
  const { FileRevocationStore } = await import('../identity/revocation-store.js');
  const { tokenStatePaths } = await import('../identity/token-state-directory.js');
  const file = new FileRevocationStore(tokenStatePaths(options.clientAuthentication?.stateDirectory).revoked);
  return { ...options.clientAuthentication, revocations: new CombinedRevocationStore([new RedisRevocationStore(state), file]) };
}

/** Bounds on what onUnknownHost may cost one gateway (questions asked, names answered before asking). */
const UNKNOWN_HOST_LIMITS = { maxQuestions: DEFAULT_MAX_UNKNOWN_HOST_QUESTIONS, maxDeferredNames: DEFAULT_MAX_DEFERRED_NAMES };

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const monitor = options.monitor ?? false;
  const events = new GatewayEvents(randomBytes(4).toString('hex'));
  // Before anything listens: a policy or a secret that cannot be read fails the start.
  const policy = await PolicyState.load(options.policy, events, { secretEnv: options.secretEnv, clientAuthentication: await withSharedRevocations(options) });
  const ca = await loadOrCreateCertificateAuthority(options.caDir ?? defaultCaDir());
  const leafContexts = new LeafContextCache(ca, { onLookup: (hit) => events.emit('leafCache', { hit }) });
  // Shared by the DNS answers and the gateway's own lookups: a name counts once, whichever comes first.
  const wildcardNames = new WildcardNameCap(() => policy.current.policy);
  const resolver = createResolver(options, policy, wildcardNames);
  const upstream = createUpstreamClient(options, resolver);
  const budgets = options.sharedState ? new SharedEgressBudgets(options.sharedState) : new EgressBudgets();
  const syntheticAddresses = new SyntheticAddressPool();
  let ready = false;
  const observers = await startObservers(options, events, policy, budgets, syntheticAddresses, { ready: () => ready });
  const unknownHosts = monitor ? null : askAboutUnknownHosts(options, policy);
  const currentPolicy = () => policy.current;
  const clientPolicy = (clientId: string) => policy.clients?.policyFor(clientId);
  const pipeline = new RequestPipeline({ currentPolicy, currentCredentials: () => policy.credentials, clientPolicy, budgets, upstream, events, monitor });
  const terminator = new TunnelTerminator({ leafContexts, pipeline, events, limits });
  const connections = new ClientConnections(events, limits.maxConnections);
  const proxyServer = createExplicitProxyServer({ currentPolicy, terminator, pipeline, events, limits, monitor, unknownHosts, clients: () => policy.clients, tls: options.proxyTls });
  proxyServer.on('connection', (socket) => connections.track(socket));
  const redirected = new RedirectedConnections({ currentPolicy, syntheticAddresses, resolver, terminator, events, limits, monitor, unknownHosts, tcpThroughProxy: (host, port) => upstream.tcpThroughProxy(host, port) });
  const dnsResponder = createDnsResponder(options, events, policy, { syntheticAddresses, wildcardNames, resolver, unknownHosts, monitor });
  const jailDoors = new JailDoors(dnsResponder, connections, redirected);

  const listeners = new GatewayListeners();
  let closing: Promise<void> | null = null;
  const closeAll = async () => {
    ready = false;
    connections.stopAdmitting();
    unknownHosts?.close();
    listeners.stopTransparent();
    await jailDoors.closeAll();
    await listeners.closeDns();
    connections.destroyAll();
    terminator.close();
    await listeners.closeServers();
    await upstream.close();
    await observers.close();
  };

  try {
    const dnsListen = options.dns ?? (options.dnsSocket ? { host: '127.0.0.1', port: 0 } : null);
    const { address, metricsAddress, dnsAddress } = await listeners.start(proxyServer, {
      listen: options.listen ?? { host: '127.0.0.1', port: 0 },
      metrics: observers.metricsServer && options.metrics ? { server: observers.metricsServer, address: options.metrics } : null,
      dns: dnsListen ? { responder: dnsResponder, address: dnsListen, unixSocketPath: options.dnsSocket } : null,
      transparent: options.transparentSocket ? { socketPath: options.transparentSocket, redirected, events, limits } : null,
    });
    ready = true;
    return {
      address,
      proxyUrl: `${options.proxyTls ? 'https' : 'http'}://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`,
      metricsAddress,
      dnsAddress,
      syntheticAddresses,
      events,
      ca,
      get policy() {
        return policy.current;
      },
      decisions: (streamOptions?: DecisionStreamOptions) => observers.decisions.stream(streamOptions),
      on: (kind, listener) => observers.decisions.on(kind, listener),
      reload: (source: Policy | string) => policy.reload(source),
      reportReloadFailure: (reason: string) => policy.reportReloadFailure(reason),
      reopenAuditLog: () => observers.auditLog?.reopen(),
      openJailEndpoints(dnsSocket: string, clientLabel: string) {
        if (closing) return Promise.reject(new SrtGwError(ErrorCodes.LISTEN_FAILED, 'the gateway is closed'));
        return jailDoors.open(dnsSocket, clientLabel);
      },
      prepareUpstream: () => upstream.prepare(),
      close() {
        closing ??= closeAll();
        return closing;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The gateway's own resolver: overrides, the policy's name check and the destination check. */
function createResolver(options: GatewayOptions, policy: PolicyState, wildcardNames: WildcardNameCap): UpstreamResolver {
  return new UpstreamResolver({
    overrides: resolveOverrides(options.resolve),
    nameCheck: (name) => (policy.current.couldResolveHost(name) ? (wildcardNames.check(name)?.refusal ?? null) : null),
    dnsServers: options.dnsUpstream ? [...options.dnsUpstream] : undefined,
    // Read at each connection: a reload's rules and allowPrivateDestinations apply to the next one.
    addressCheck: new DestinationCheck(() => policy.current.policy),
  });
}

function createUpstreamClient(options: GatewayOptions, resolver: UpstreamResolver): UpstreamClient {
  const timeout = options.upstreamTimeoutMs;
  return new UpstreamClient({
    trustedCa: loadUpstreamTrust(options.upstreamCaFiles),
    lookup: resolver.lookup,
    literalRefusal: (host) => resolver.literalRefusal(host),
    upstreamProxy: options.upstreamProxy === undefined ? null : parseUpstreamProxy(options.upstreamProxy),
    // This gateway's own: another gateway in the process never delays or batches its responses.
    responseEnds: new ResponseEnds(),
    ...(timeout !== undefined ? { connectTimeoutMs: timeout, headersTimeoutMs: timeout, bodyTimeoutMs: timeout } : {}),
  });
}

/** What watches a gateway's events: the library's decision stream, the audit log, the metrics. */
interface Observers {
  readonly decisions: DecisionHub;
  readonly auditLog: AuditLog | null;
  /** Serves the metrics; null without options.metrics. */
  readonly metricsServer: http.Server | null;
  close(): Promise<void>;
}

async function startObservers(options: GatewayOptions, events: GatewayEvents, policy: PolicyState, budgets: EgressBudgets, pool: SyntheticAddressPool, health: GatewayHealth): Promise<Observers> {
  // pino and prom-client load only when asked for: a run without --log or --metrics starts faster.
  const auditLog = options.auditLog === false ? null : (await import('./audit/audit-log.js')).startAuditLog(events, options.auditLog ?? 2);
  let metrics: GatewayMetrics | null = null;
  let metricsServer: http.Server | null = null;
  let dnsMetrics: { close(): void } | null = null;
  if (options.metrics || options.collectMetrics) {
    const metricsModule = await import('./audit/metrics.js');
    metrics = metricsModule.startGatewayMetrics(events, policy.current, budgets);
    const registry = metrics.registry;
    dnsMetrics = (await import('./dns/metrics.js')).registerDnsMetrics(registry, (listener) => events.on('dns', listener), pool);
    if (options.sharedState) (await import('./state/state-metrics.js')).registerStateMetrics(registry, options.sharedState);
    if (options.metrics) metricsServer = metricsModule.createMetricsServer(metrics, health);
    options.collectMetrics?.(metrics);
    const gatewayMetrics = metrics;
    // Host labels follow the rules in force (after a reload or an onUnknownHost approval).
    policy.onChange = (compiled: CompiledPolicy) => gatewayMetrics.setPolicy(compiled);
  }
  const decisions = new DecisionHub(events);
  return {
    decisions,
    auditLog,
    metricsServer,
    async close() {
      dnsMetrics?.close();
      metrics?.close();
      await auditLog?.close();
      decisions.end();
    },
  };
}

/** onUnknownHost's questions, each approval an allow rule of the policy in force; null without the option. */
function askAboutUnknownHosts(options: GatewayOptions, policy: PolicyState): UnknownHostQuestions | null {
  if (!options.onUnknownHost) return null;
  const timeoutMs = options.unknownHostTimeoutMs ?? DEFAULT_UNKNOWN_HOST_TIMEOUT_MS;
  const shared = options.sharedState ? new RedisApprovals(options.sharedState) : undefined;
  return new UnknownHostQuestions({ ask: options.onUnknownHost, timeoutMs, ...UNKNOWN_HOST_LIMITS, ...(shared ? { shared } : {}) }, (host, port) => policy.approve(host, port));
}

/** One responder for every way DNS reaches this gateway (UDP/TCP, the jails' unix sockets). */
function createDnsResponder(
  options: GatewayOptions,
  events: GatewayEvents,
  policy: PolicyState,
  parts: { syntheticAddresses: SyntheticAddressPool; wildcardNames: WildcardNameCap; resolver: UpstreamResolver; unknownHosts: UnknownHostQuestions | null; monitor: boolean },
): DnsResponder {
  const { unknownHosts, resolver } = parts;
  return new DnsResponder({
    pool: parts.syntheticAddresses,
    denyRcode: options.dnsDenyRcode,
    // SECURITY: names are answered from the policy alone; nothing is ever forwarded, so a query
    // cannot carry data to an outside DNS server — test/e2e/dns-tunnel.test.ts. With
    // onUnknownHost a name no rule allows may get a synthetic address too (it carries nothing
    // out, and the connection to it is asked about) — test/e2e/library-unknown-host.test.ts
    admission: { couldAllowHost: (host) => policy.current.couldResolveHost(host) || (unknownHosts?.mayDeferName(host) ?? false) },
    onQuery: (event) => events.emit('dns', event),
    wildcardNames: parts.wildcardNames,
    // Report mode lets data out by design: A/AAAA for a name no rule allows is resolved upstream
    // (only those types) and gets a synthetic address — test/e2e/monitor-mode.test.ts.
    ...(parts.monitor ? { monitor: { exists: (name: string) => resolver.exists(name) } } : {}),
  });
}

function resolveOverrides(overrides: ResolveOverrides | undefined): ReadonlyMap<string, string[]> | undefined {
  if (overrides === undefined) return undefined;
  const entries: [string, string | readonly string[]][] = overrides instanceof Map ? [...(overrides as ReadonlyMap<string, readonly string[]>)] : Object.entries(overrides);
  return new Map(entries.map(([host, addresses]) => [host, typeof addresses === 'string' ? [addresses] : [...addresses]]));
}
