// The sockets one gateway listens on: the explicit proxy, the metrics endpoint, DNS (UDP/TCP and
// a unix socket) and the transparent socket. Each is recorded as it starts, so that a start that
// fails half-way closes exactly those that did.
import type http from 'node:http';
import type net from 'node:net';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { GatewayEvents } from '../audit/events.js';
import type { DnsResponder } from '../dns/responder.js';
import { serveDns, type DnsServer } from '../dns/server.js';
import type { GatewayLimits } from '../limits.js';
import type { RedirectedConnections } from './redirected-connections.js';
import { startTransparentListener } from './transparent-socket.js';

export interface ListenAddress {
  host: string;
  port: number;
}

export interface ListenerOptions {
  /** Explicit proxy listener. */
  listen: ListenAddress;
  /** Prometheus metrics, when a server for them exists. */
  metrics: { server: http.Server; address: ListenAddress } | null;
  /** DNS for the sandbox on UDP and TCP (and `dnsSocket`, a unix socket), else none. */
  dns: { responder: DnsResponder; address: ListenAddress; unixSocketPath?: string } | null;
  /** The transparent socket for a jail's redirector, else none. */
  transparent: { socketPath: string; redirected: RedirectedConnections; events: GatewayEvents; limits: GatewayLimits } | null;
}

export interface ListeningAddresses {
  readonly address: ListenAddress;
  readonly metricsAddress: ListenAddress | null;
  readonly dnsAddress: ListenAddress | null;
}

export class GatewayListeners {
  private readonly servers: http.Server[] = [];
  private dnsServer: DnsServer | null = null;
  private transparentServer: net.Server | null = null;

  /** Starts every listener `options` asks for; throws SrtGwError(LISTEN_FAILED) naming the one that failed. */
  async start(proxyServer: http.Server, options: ListenerOptions): Promise<ListeningAddresses> {
    const address = await listen(proxyServer, options.listen, 'proxy');
    this.servers.push(proxyServer);
    let metricsAddress: ListenAddress | null = null;
    if (options.metrics) {
      metricsAddress = await listen(options.metrics.server, options.metrics.address, 'metrics');
      this.servers.push(options.metrics.server);
    }
    const dns = options.dns;
    if (dns) {
      this.dnsServer = await serveDns(dns.responder, { host: dns.address.host, port: dns.address.port, unixSocketPath: dns.unixSocketPath }).catch((error: NodeJS.ErrnoException) => {
        if (error instanceof SrtGwError) throw error;
        throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot serve DNS on ${dns.address.host}:${dns.address.port}: ${error.code ?? error.message}`, { cause: error });
      });
    }
    const transparent = options.transparent;
    if (transparent) {
      this.transparentServer = await startTransparentListener(transparent).catch((error: NodeJS.ErrnoException) => {
        throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `cannot listen on ${transparent.socketPath}: ${error.code ?? error.message}`, { cause: error });
      });
    }
    const udp = this.dnsServer?.address.udp;
    return { address, metricsAddress, dnsAddress: udp ? { host: udp.address, port: udp.port } : null };
  }

  /** Takes no more connections from a jail's redirector (the transparent socket). */
  stopTransparent(): void {
    this.transparentServer?.close();
  }

  async closeDns(): Promise<void> {
    await this.dnsServer?.close();
  }

  /** Closes the proxy and metrics servers, once their connections are gone. */
  async closeServers(): Promise<void> {
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
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
