// Assembles and starts one gateway: CA, policy, resolver, upstream client, pipeline, listeners,
// audit log and metrics. `srt-gw serve`, `srt-gw run` and the library API all start it here.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type net from 'node:net';
import { loadOrCreateCertificateAuthority, LeafContextCache } from '../ca/index.js';
import { defaultCaDir } from '../ca/paths.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { compilePolicy, type CompiledPolicy } from '../policies/match.js';
import type { Policy, Rule } from '../policies/types.js';
import type { AuditLog } from './audit-log.js';
import { loadRuleCredentials, type RuleCredentials } from './credential-secrets.js';
import { DestinationCheck } from './destination-check.js';
import { DecisionHub, type DecisionKinds, type DecisionStream, type DecisionStreamOptions } from './decisions.js';
import { DnsResponder, serveDns, serveDnsOverUnixSocket, type DnsServer, type DnsUnixListener } from './dns/server.js';
import { SyntheticAddressPool } from './dns/synthetic-pool.js';
import { UpstreamResolver } from './dns/upstream-resolver.js';
import { WildcardNameCap } from './dns/wildcard-names.js';
import { GatewayEvents } from './events.js';
import { EgressBudgets } from './egress-budget.js';
import { createExplicitProxyServer } from './explicit-proxy.js';
import { DEFAULT_LIMITS, type GatewayLimits } from './limits.js';
import type { GatewayMetrics } from './metrics.js';
import { RequestPipeline } from './request-pipeline.js';
import { loadUpstreamTrust } from './trust-store.js';
import type { OriginalDestination } from './proxy-protocol-header.js';
import { routeRedirectedConnection, startTransparentListener, type RedirectedConnectionOptions } from './transparent-listener.js';
import { TunnelTerminator } from './tunnel-terminator.js';
import {
  approvedRuleId,
  DEFAULT_MAX_DEFERRED_NAMES,
  DEFAULT_MAX_UNKNOWN_HOST_QUESTIONS,
  DEFAULT_UNKNOWN_HOST_TIMEOUT_MS,
  UnknownHostQuestions,
  type UnknownHostCallback,
} from './unknown-host.js';
import { UpstreamClient } from './upstream-client.js';

export interface ListenAddress {
  host: string;
  port: number;
}

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

/** What a jail needs from a gateway: its DNS on a unix socket, and a door for redirected connections. */
export interface JailEndpoints {
  /** The `client` of this jail's DNS queries and the prefix of its connections' `client` ("jail:<address>"). */
  readonly clientLabel: string;
  readonly dnsSocket: string;
  acceptRedirected(socket: net.Socket, destination: OriginalDestination): void;
  /** Stops the DNS socket and drops this jail's connections. Safe to call twice. */
  close(): Promise<void>;
}

export interface Gateway {
  /** The explicit proxy listener (HTTP and CONNECT), e.g. { host: '127.0.0.1', port: 41234 }. */
  readonly address: ListenAddress;
  /** The same, as a proxy URL for HTTPS_PROXY and friends: "http://127.0.0.1:41234". */
  readonly proxyUrl: string;
  /** Same as `address` (the name the CLI and older code use). */
  readonly proxyAddress: ListenAddress;
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
   * Serves a connection the jail's redirector handed over as the program's own socket (srt-gw
   * run), for the address it dialled; decided exactly like one from the transparent socket.
   */
  acceptRedirectedConnection(socket: net.Socket, destination: OriginalDestination): void;
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

/** Bounds on what onUnknownHost may cost one gateway (questions asked, names answered before asking). */
const UNKNOWN_HOST_LIMITS = { maxQuestions: DEFAULT_MAX_UNKNOWN_HOST_QUESTIONS, maxDeferredNames: DEFAULT_MAX_DEFERRED_NAMES };

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const events = new GatewayEvents(randomBytes(4).toString('hex'));
  let basePolicy = await policyFrom(options.policy);
  // Rules onUnknownHost approved: kept across reloads, for the gateway's life.
  const approvedRules: Rule[] = [];
  const withApprovals = (base: Policy): Policy => (approvedRules.length === 0 ? base : { ...base, rules: [...base.rules, ...approvedRules] });
  let policy = compilePolicy(basePolicy);
  // Before anything listens: a secret that cannot be read fails the start.
  let credentials: RuleCredentials = await loadRuleCredentials(basePolicy, { env: options.secretEnv });
  const ca = await loadOrCreateCertificateAuthority(options.caDir ?? defaultCaDir());
  const leafContexts = new LeafContextCache(ca, { onLookup: (hit) => events.emit('leafCache', { hit }) });
  // Shared by the DNS answers and the gateway's own lookups: a name counts once, whichever comes first.
  const wildcardNames = new WildcardNameCap(() => policy.policy);
  const resolver = new UpstreamResolver({
    overrides: resolveOverrides(options.resolve),
    nameCheck: (name) => (policy.couldResolveHost(name) ? (wildcardNames.check(name)?.refusal ?? null) : null),
    dnsServers: options.dnsUpstream ? [...options.dnsUpstream] : undefined,
    // Read at each connection: a reload's rules and allowPrivateDestinations apply to the next one.
    addressCheck: new DestinationCheck(() => policy.policy),
  });
  const timeout = options.upstreamTimeoutMs;
  const upstream = new UpstreamClient({
    trustedCa: loadUpstreamTrust(options.upstreamCaFiles),
    lookup: resolver.lookup,
    literalRefusal: (host) => resolver.literalRefusal(host),
    ...(timeout !== undefined ? { connectTimeoutMs: timeout, headersTimeoutMs: timeout, bodyTimeoutMs: timeout } : {}),
  });

  // pino and prom-client load only when asked for: a run without --log or --metrics starts faster.
  const auditLog: AuditLog | null = options.auditLog === false ? null : (await import('./audit-log.js')).startAuditLog(events, options.auditLog ?? 2);
  const metricsModule = options.metrics ? await import('./metrics.js') : null;
  const budgets = new EgressBudgets();
  const metrics: GatewayMetrics | null = metricsModule ? metricsModule.startGatewayMetrics(events, policy, budgets) : null;

  const monitor = options.monitor ?? false;
  const currentPolicy = () => policy;
  const decisions = new DecisionHub(events);
  // Monitor mode blocks nothing, so there is nothing to ask about.
  const unknownHosts =
    options.onUnknownHost && !monitor
      ? new UnknownHostQuestions(
          { ask: options.onUnknownHost, timeoutMs: options.unknownHostTimeoutMs ?? DEFAULT_UNKNOWN_HOST_TIMEOUT_MS, ...UNKNOWN_HOST_LIMITS },
          (host, port) => {
            const taken = new Set([...basePolicy.rules, ...approvedRules].map((rule) => rule.id));
            const stem = approvedRuleId(host, port);
            let id = stem;
            for (let n = 2; taken.has(id); n++) id = `${stem}-${n}`;
            const rule: Rule = Object.freeze({ id, host, port, action: 'allow', protocol: 'http' });
            // Compiled before it counts: a rule that does not compile is no approval.
            const next = compilePolicy({ ...basePolicy, rules: [...basePolicy.rules, ...approvedRules, rule] });
            approvedRules.push(rule);
            policy = next;
            metrics?.setPolicy(next);
            return id;
          },
        )
      : null;
  const pipeline = new RequestPipeline({ currentPolicy, currentCredentials: () => credentials, budgets, upstream, events, monitor });
  const terminator = new TunnelTerminator({ leafContexts, pipeline, events, limits });
  const proxyServer = createExplicitProxyServer({ currentPolicy, terminator, pipeline, events, limits, monitor, unknownHosts });

  const sockets = new Set<net.Socket>();
  proxyServer.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const syntheticAddresses = new SyntheticAddressPool();
  const dnsListen = options.dns ?? (options.dnsSocket ? { host: '127.0.0.1', port: 0 } : null);
  const dnsMetrics = metrics ? (await import('./dns/metrics.js')).registerDnsMetrics(metrics.registry, (listener) => events.on('dns', listener), syntheticAddresses) : null;
  // One responder for every way DNS reaches this gateway (UDP/TCP, the jails' unix sockets).
  const dnsResponder = new DnsResponder({
    pool: syntheticAddresses,
    denyRcode: options.dnsDenyRcode,
    // SECURITY: names are answered from the policy alone; nothing is ever forwarded, so a query
    // cannot carry data to an outside DNS server — test/e2e/dns-tunnel.test.ts. With
    // onUnknownHost a name no rule allows may get a synthetic address too (it carries nothing
    // out, and the connection to it is asked about) — test/e2e/library-unknown-host.test.ts
    admission: { couldAllowHost: (host) => policy.couldResolveHost(host) || (unknownHosts?.mayDeferName(host) ?? false) },
    onQuery: (event) => events.emit('dns', event),
    wildcardNames,
    // Report mode lets data out by design: A/AAAA for a name no rule allows is resolved upstream
    // (only those types) and gets a synthetic address — test/e2e/monitor-mode.test.ts.
    ...(monitor ? { monitor: { exists: (name: string) => resolver.exists(name) } } : {}),
  });
  let dnsServer: DnsServer | null = null;
  const jailEndpoints = new Set<JailEndpoints>();

  const servers: http.Server[] = [];
  let transparentServer: net.Server | null = null;
  const closeAll = async () => {
    unknownHosts?.close();
    transparentServer?.close();
    await Promise.all([...jailEndpoints].map((endpoints) => endpoints.close()));
    await dnsServer?.close();
    dnsMetrics?.close();
    for (const socket of sockets) socket.destroy();
    terminator.close();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await upstream.close();
    metrics?.close();
    await auditLog?.close();
    decisions.end();
  };

  try {
    const proxyAddress = await listen(proxyServer, options.listen ?? { host: '127.0.0.1', port: 0 }, 'proxy');
    servers.push(proxyServer);
    let metricsAddress: ListenAddress | null = null;
    if (metrics && metricsModule && options.metrics) {
      const metricsServer = metricsModule.createMetricsServer(metrics);
      metricsAddress = await listen(metricsServer, options.metrics, 'metrics');
      servers.push(metricsServer);
    }
    if (dnsListen) {
      dnsServer = await serveDns(dnsResponder, { host: dnsListen.host, port: dnsListen.port, unixSocketPath: options.dnsSocket }).catch((error: NodeJS.ErrnoException) => {
        if (error instanceof SrtGwError) throw error;
        throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot serve DNS on ${dnsListen.host}:${dnsListen.port}: ${error.code ?? error.message}`, { cause: error });
      });
    }
    const redirected: RedirectedConnectionOptions = { currentPolicy, syntheticAddresses, resolver, terminator, events, limits, monitor, unknownHosts };
    if (options.transparentSocket) {
      transparentServer = await startTransparentListener({ socketPath: options.transparentSocket, ...redirected }).catch((error: NodeJS.ErrnoException) => {
        throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${options.transparentSocket}: ${error.code ?? error.message}`, { cause: error });
      });
    }
    const dnsAddress = dnsServer ? { host: dnsServer.address.udp.address, port: dnsServer.address.udp.port } : null;
    let closing: Promise<void> | null = null;
    const acceptRedirected = (socket: net.Socket, destination: OriginalDestination, clientLabel: string, owned?: Set<net.Socket>) => {
      if (closing || sockets.size >= limits.maxConnections) {
        socket.destroy();
        return;
      }
      sockets.add(socket);
      owned?.add(socket);
      socket.setNoDelay(true);
      socket.on('error', () => undefined);
      events.emit('connections', { delta: 1 });
      socket.once('close', () => {
        sockets.delete(socket);
        owned?.delete(socket);
        events.emit('connections', { delta: -1 });
      });
      routeRedirectedConnection(redirected, socket, destination, undefined, clientLabel);
    };
    return {
      address: proxyAddress,
      proxyUrl: `http://${proxyAddress.host.includes(':') ? `[${proxyAddress.host}]` : proxyAddress.host}:${proxyAddress.port}`,
      proxyAddress,
      metricsAddress,
      dnsAddress,
      syntheticAddresses,
      events,
      ca,
      get policy() {
        return policy;
      },
      decisions: (streamOptions?: DecisionStreamOptions) => decisions.stream(streamOptions),
      on: (kind, listener) => decisions.on(kind, listener),
      async reload(source: Policy | string) {
        let next: Policy;
        try {
          next = await policyFrom(source);
        } catch (error) {
          events.emit('policyReload', { kind: 'policy-reload', outcome: 'failed', reason: (error as Error).message });
          throw error;
        }
        let compiled = compilePolicy(withApprovals(next));
        const approvals = approvedRules.length;
        // Secrets are read again (a rotated key takes effect); if one cannot be read, the reload
        // fails as a whole and the old policy with its secrets stays.
        const nextCredentials = await loadRuleCredentials(next, { env: options.secretEnv });
        // An approval that came while the secrets were read is not lost.
        if (approvedRules.length !== approvals) compiled = compilePolicy(withApprovals(next));
        basePolicy = next;
        policy = compiled;
        credentials = nextCredentials;
        metrics?.setPolicy(compiled);
        events.emit('policyReload', { kind: 'policy-reload', outcome: 'ok', rules: next.rules.length });
      },
      reportReloadFailure(reason: string) {
        events.emit('policyReload', { kind: 'policy-reload', outcome: 'failed', reason });
      },
      reopenAuditLog() {
        auditLog?.reopen();
      },
      acceptRedirectedConnection(socket: net.Socket, destination: OriginalDestination) {
        acceptRedirected(socket, destination, 'jail');
      },
      async openJailEndpoints(dnsSocket: string, clientLabel: string) {
        if (closing) throw new SrtGwError(ErrorCodes.LISTEN_FAILED, 'the gateway is closed');
        const dns: DnsUnixListener = await serveDnsOverUnixSocket(dnsResponder, dnsSocket, { clientLabel });
        const owned = new Set<net.Socket>();
        let closed: Promise<void> | null = null;
        const endpoints: JailEndpoints = {
          clientLabel,
          dnsSocket,
          acceptRedirected: (socket, destination) => {
            if (closed) socket.destroy();
            else acceptRedirected(socket, destination, clientLabel, owned);
          },
          close() {
            closed ??= (async () => {
              jailEndpoints.delete(endpoints);
              for (const socket of owned) socket.destroy();
              await dns.close();
            })();
            return closed;
          },
        };
        jailEndpoints.add(endpoints);
        return endpoints;
      },
      prepareUpstream() {
        return upstream.prepare();
      },
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

/** A policy given as an object is used as is; a path is read with the same loader (and errors) as the CLI's. */
async function policyFrom(source: Policy | string): Promise<Policy> {
  if (typeof source !== 'string') return source;
  // The YAML parser and the schema load only when a file is read.
  return (await import('../policies/loader.js')).loadPolicyFile(source);
}

function resolveOverrides(overrides: ResolveOverrides | undefined): ReadonlyMap<string, string[]> | undefined {
  if (overrides === undefined) return undefined;
  const entries: [string, string | readonly string[]][] = overrides instanceof Map ? [...(overrides as ReadonlyMap<string, readonly string[]>)] : Object.entries(overrides);
  return new Map(entries.map(([host, addresses]) => [host, typeof addresses === 'string' ? [addresses] : [...addresses]]));
}

function listen(server: http.Server, address: ListenAddress, what: string): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      reject(new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot listen for ${what} on ${address.host}:${address.port}: ${error.code ?? error.message}`, { cause: error }));
    };
    server.once('error', onError);
    server.listen(address.port, address.host, () => {
      server.off('error', onError);
      const bound = server.address() as net.AddressInfo;
      resolve({ host: bound.address, port: bound.port });
    });
  });
}
