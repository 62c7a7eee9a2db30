// Assembles and starts one gateway: CA, policy, resolver, upstream client, pipeline, listeners,
// audit log and metrics. `srt-gw serve`, `srt-gw run` and the library API all start it here.
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import type net from 'node:net';
import { loadOrCreateCertificateAuthority, LeafContextCache, type CertificateAuthority } from '../ca/index.js';
import { defaultCaDir } from '../ca/paths.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { compilePolicy, type CompiledPolicy } from '../policies/match.js';
import type { Policy } from '../policies/types.js';
import type { AuditLog } from './audit-log.js';
import { loadRuleCredentials, type RuleCredentials } from './credential-secrets.js';
import { startDnsServer, type DnsServer } from './dns/server.js';
import { SyntheticAddressPool } from './dns/synthetic-pool.js';
import { UpstreamResolver } from './dns/upstream-resolver.js';
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
import { UpstreamClient } from './upstream-client.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface GatewayOptions {
  policy: Policy;
  /** Directory of the local CA; created on first use. Default: SRT_GW_CA_DIR or ~/.config/srt-gw/ca. */
  caDir?: string;
  /** Explicit proxy listener. Default 127.0.0.1, a free port. */
  listen?: ListenAddress;
  /** Extra PEM files trusted for upstream certificates, on top of the system store. */
  upstreamCaFiles?: readonly string[];
  /** Host → addresses overrides for upstream connections (like curl --resolve). */
  resolve?: ReadonlyMap<string, string[]>;
  /** DNS servers ("ip" or "ip:port") for the gateway's own upstream lookups. Default: the system's. */
  dnsUpstream?: readonly string[];
  /** Audit log destination: a file path, a file descriptor (2 = stderr), or false for none. */
  auditLog?: string | number | false;
  /**
   * Serve DNS for the sandbox here (UDP and TCP): allowed names get synthetic addresses, all else
   * NXDOMAIN, and no query is ever forwarded.
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
  /** Report mode: policy, credential and budget denials are logged but let through. */
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
}

export interface Gateway {
  readonly proxyAddress: ListenAddress;
  readonly metricsAddress: ListenAddress | null;
  readonly dnsAddress: ListenAddress | null;
  /** Names the DNS server handed synthetic addresses to, and back. */
  readonly syntheticAddresses: SyntheticAddressPool;
  readonly events: GatewayEvents;
  readonly ca: CertificateAuthority;
  /** The compiled policy in force now. */
  readonly policy: CompiledPolicy;
  /**
   * Swaps the policy atomically once its secrets are read again: requests already decided keep
   * their decision. Rejects (an SrtGwError, SRTGW_CREDENTIAL_UNAVAILABLE) when a secret cannot be
   * read; the previous policy then stays in force. Egress budget counts carry over by rule id.
   */
  reload(policy: Policy): Promise<void>;
  /** Records a reload that failed before it reached reload() (e.g. the file did not validate). */
  reportReloadFailure(reason: string): void;
  /**
   * Serves a connection the jail's redirector handed over as the program's own socket (srt-gw
   * run), for the address it dialled; decided exactly like one from the transparent socket.
   */
  acceptRedirectedConnection(socket: net.Socket, destination: OriginalDestination): void;
  close(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const limits: GatewayLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const events = new GatewayEvents(randomBytes(4).toString('hex'));
  let policy = compilePolicy(options.policy);
  // Before anything listens: a secret that cannot be read fails the start.
  let credentials: RuleCredentials = await loadRuleCredentials(options.policy, { env: options.secretEnv });
  const ca = await loadOrCreateCertificateAuthority(options.caDir ?? defaultCaDir());
  const leafContexts = new LeafContextCache(ca, { onLookup: (hit) => events.emit('leafCache', { hit }) });
  const resolver = new UpstreamResolver({
    overrides: options.resolve,
    dnsServers: options.dnsUpstream ? [...options.dnsUpstream] : undefined,
  });
  const timeout = options.upstreamTimeoutMs;
  const upstream = new UpstreamClient({
    trustedCa: loadUpstreamTrust(options.upstreamCaFiles),
    lookup: resolver.lookup,
    ...(timeout !== undefined ? { connectTimeoutMs: timeout, headersTimeoutMs: timeout, bodyTimeoutMs: timeout } : {}),
  });

  // pino and prom-client load only when asked for: a run without --log or --metrics starts faster.
  const auditLog: AuditLog | null = options.auditLog === false ? null : (await import('./audit-log.js')).startAuditLog(events, options.auditLog ?? 2);
  const metricsModule = options.metrics ? await import('./metrics.js') : null;
  const metrics: GatewayMetrics | null = metricsModule ? metricsModule.startGatewayMetrics(events, policy) : null;

  const monitor = options.monitor ?? false;
  const currentPolicy = () => policy;
  const budgets = new EgressBudgets();
  const pipeline = new RequestPipeline({ currentPolicy, currentCredentials: () => credentials, budgets, upstream, events, monitor });
  const terminator = new TunnelTerminator({ leafContexts, pipeline, events, limits });
  const proxyServer = createExplicitProxyServer({ currentPolicy, terminator, pipeline, events, limits, monitor });

  const sockets = new Set<net.Socket>();
  proxyServer.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const syntheticAddresses = new SyntheticAddressPool();
  const dnsListen = options.dns ?? (options.dnsSocket ? { host: '127.0.0.1', port: 0 } : null);
  const dnsMetrics =
    metrics && dnsListen ? (await import('./dns/metrics.js')).registerDnsMetrics(metrics.registry, (listener) => events.on('dns', listener), syntheticAddresses) : null;
  let dnsServer: DnsServer | null = null;

  const servers: http.Server[] = [];
  let transparentServer: net.Server | null = null;
  const closeAll = async () => {
    transparentServer?.close();
    await dnsServer?.close();
    dnsMetrics?.close();
    for (const socket of sockets) socket.destroy();
    terminator.close();
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await upstream.close();
    metrics?.close();
    await auditLog?.close();
  };

  try {
    const proxyAddress = await listen(proxyServer, options.listen ?? { host: '127.0.0.1', port: 0 }, 'proxy');
    servers.push(proxyServer);
    let metricsAddress: ListenAddress | null = null;
    if (metrics && metricsModule && options.metrics) {
      const metricsServer = metricsModule.createMetricsServer(metrics.registry);
      metricsAddress = await listen(metricsServer, options.metrics, 'metrics');
      servers.push(metricsServer);
    }
    if (dnsListen) {
      dnsServer = await startDnsServer({
        host: dnsListen.host,
        port: dnsListen.port,
        unixSocketPath: options.dnsSocket,
        pool: syntheticAddresses,
        denyRcode: options.dnsDenyRcode,
        // SECURITY: names are answered from the policy alone; nothing is ever forwarded, so a
        // query cannot carry data to an outside DNS server — test/e2e/dns-tunnel.test.ts
        admission: { couldAllowHost: (host) => policy.couldResolveHost(host) },
        onQuery: (event) => events.emit('dns', event),
      }).catch((error: NodeJS.ErrnoException) => {
        if (error instanceof SrtGwError) throw error;
        throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot serve DNS on ${dnsListen.host}:${dnsListen.port}: ${error.code ?? error.message}`, { cause: error });
      });
    }
    const redirected: RedirectedConnectionOptions = { currentPolicy, syntheticAddresses, resolver, terminator, events, limits, monitor };
    if (options.transparentSocket) {
      transparentServer = await startTransparentListener({ socketPath: options.transparentSocket, ...redirected }).catch((error: NodeJS.ErrnoException) => {
        throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${options.transparentSocket}: ${error.code ?? error.message}`, { cause: error });
      });
    }
    const dnsAddress = dnsServer ? { host: dnsServer.address.udp.address, port: dnsServer.address.udp.port } : null;
    let closing: Promise<void> | null = null;
    return {
      proxyAddress,
      metricsAddress,
      dnsAddress,
      syntheticAddresses,
      events,
      ca,
      get policy() {
        return policy;
      },
      async reload(next: Policy) {
        const compiled = compilePolicy(next);
        // Secrets are read again (a rotated key takes effect); if one cannot be read, the reload
        // fails as a whole and the old policy with its secrets stays.
        const nextCredentials = await loadRuleCredentials(next, { env: options.secretEnv });
        policy = compiled;
        credentials = nextCredentials;
        metrics?.setPolicy(compiled);
        events.emit('policyReload', { kind: 'policy-reload', outcome: 'ok', rules: next.rules.length });
      },
      reportReloadFailure(reason: string) {
        events.emit('policyReload', { kind: 'policy-reload', outcome: 'failed', reason });
      },
      acceptRedirectedConnection(socket: net.Socket, destination: OriginalDestination) {
        if (closing || sockets.size >= limits.maxConnections) {
          socket.destroy();
          return;
        }
        sockets.add(socket);
        socket.setNoDelay(true);
        socket.on('error', () => undefined);
        events.emit('connections', { delta: 1 });
        socket.once('close', () => {
          sockets.delete(socket);
          events.emit('connections', { delta: -1 });
        });
        routeRedirectedConnection(redirected, socket, destination);
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
