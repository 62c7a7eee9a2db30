// The sandbox-facing DNS server: UDP and TCP on one port, and length-framed streams on unix
// sockets for the jails' forwarders. Every answer comes from the responder (responder.ts), which
// answers from policy and never forwards a query.
import { chmodSync, rmSync } from 'node:fs';
import dgram from 'node:dgram';
import net, { isIPv4, type AddressInfo } from 'node:net';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { DnsResponder, type DnsResponderOptions } from './responder.js';
import { SyntheticAddressPool } from './synthetic-pool.js';

/** Where and how a DNS server listens. */
export interface DnsListenOptions {
  host: string;
  /** 0 picks a free port; UDP and TCP always share it. */
  port: number;
  /** Idle TCP connections are closed after this long (default 10 s). */
  tcpIdleTimeoutMs?: number;
  /** Open TCP connections beyond this are refused (default 64). */
  maxTcpConnections?: number;
  /**
   * Also serve DNS-over-stream (2-byte length framing, as TCP) on this unix socket, mode 0600:
   * the jail's forwarder reaches the resolver here, since the jail cannot see host loopback.
   */
  unixSocketPath?: string;
}

export interface DnsServerOptions extends Omit<DnsResponderOptions, 'pool'>, DnsListenOptions {
  /** Share a pool with the gateway (the redirector maps addresses back through it). Default: a new one. */
  pool?: SyntheticAddressPool;
}

/** A unix socket serving length-framed DNS for one jail. */
export interface DnsUnixListener {
  readonly path: string;
  close(): Promise<void>;
}

export interface DnsUnixSocketOptions {
  /** The `client` of every query on this socket (and its rate-limit bucket). Default "jail". */
  clientLabel?: string;
  idleTimeoutMs?: number;
  maxConnections?: number;
}

export interface DnsServer {
  readonly address: { udp: AddressInfo; tcp: AddressInfo; unix?: string };
  readonly pool: SyntheticAddressPool;
  close(): Promise<void>;
}

/** Starts the DNS server on host:port over UDP and TCP. */
export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const pool = options.pool ?? new SyntheticAddressPool();
  return serveDns(new DnsResponder({ ...options, pool }), options);
}

/** Serves `responder`'s answers on host:port over UDP and TCP (and a unix socket, if asked). */
export async function serveDns(responder: DnsResponder, options: DnsListenOptions): Promise<DnsServer> {
  const pool = responder.pool;
  const idleTimeoutMs = options.tcpIdleTimeoutMs ?? 10_000;
  const sockets = new Set<net.Socket>();

  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveTcpConnection(socket, responder, idleTimeoutMs);
  });
  tcp.maxConnections = options.maxTcpConnections ?? 64;
  tcp.on('error', () => undefined);

  // With port 0, UDP takes the port TCP was given; if that UDP port is taken, try another.
  let lastError: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    let udp: dgram.Socket | undefined;
    try {
      await listenTcp(tcp, options.host, options.port);
      udp = createUdpSocket(options.host, responder);
      await bindUdp(udp, options.host, (tcp.address() as AddressInfo).port);
    } catch (error) {
      lastError = error;
      void closeQuietly(udp);
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
      if (options.port === 0 && (error as { code?: string }).code === 'EADDRINUSE') continue;
      break;
    }
    const bound = udp;
    let unix: DnsUnixListener | null = null;
    if (options.unixSocketPath) {
      try {
        unix = await serveDnsOverUnixSocket(responder, options.unixSocketPath, { idleTimeoutMs, maxConnections: tcp.maxConnections });
      } catch (error) {
        await Promise.all([new Promise<void>((resolve) => tcp.close(() => resolve())), closeQuietly(bound)]);
        throw error;
      }
    }
    return {
      address: { udp: bound.address(), tcp: tcp.address() as AddressInfo, ...(options.unixSocketPath ? { unix: options.unixSocketPath } : {}) },
      pool,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await Promise.all([new Promise<void>((resolve) => tcp.close(() => resolve())), closeQuietly(bound), unix ? unix.close() : Promise.resolve()]);
      },
    };
  }
  throw new SrtGwError(
    ErrorCodes.LISTEN_FAILED,
    `DNS server could not listen on ${options.host}:${options.port}: ${(lastError as Error | undefined)?.message ?? 'unknown error'}`,
    { cause: lastError },
  );
}

/**
 * Serves `responder` as length-framed DNS on a unix socket (mode 0600): what the jail's DNS
 * forwarder connects to. Everything on it comes from the one jail behind it: one client.
 */
export async function serveDnsOverUnixSocket(responder: DnsResponder, path: string, options: DnsUnixSocketOptions = {}): Promise<DnsUnixListener> {
  const clientLabel = options.clientLabel ?? 'jail';
  const idleTimeoutMs = options.idleTimeoutMs ?? 10_000;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveTcpConnection(socket, responder, idleTimeoutMs, clientLabel);
  });
  server.maxConnections = options.maxConnections ?? 64;
  server.on('error', () => undefined);
  rmSync(path, { force: true });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    chmodSync(path, 0o600);
  } catch (error) {
    server.close();
    throw new SrtGwError(ErrorCodes.LISTEN_FAILED, `DNS server could not listen on ${path}: ${(error as Error).message}`, { cause: error });
  }
  let closing: Promise<void> | null = null;
  return {
    path,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

/** Answers waiting for the kernel beyond this are dropped (see createUdpSocket). */
const MAX_UDP_SEND_QUEUE_BYTES = 1 << 20;

function createUdpSocket(host: string, responder: DnsResponder): dgram.Socket {
  // A larger receive buffer rides out bursts (a package manager resolving many hosts at once);
  // the kernel caps it at net.core.rmem_max.
  const udp = dgram.createSocket({ type: isIPv4(host) ? 'udp4' : 'udp6', recvBufferSize: 1 << 20 });
  udp.on('message', (message, remote) => {
    const send = (answer: Buffer | null) => {
      if (!answer) return;
      // UDP may lose an answer; the gateway may not queue them without end when the kernel
      // cannot take them as fast as a flood asks (the client retries, as it would anyway).
      if (udp.getSendQueueSize() > MAX_UDP_SEND_QUEUE_BYTES) return;
      try {
        udp.send(answer, remote.port, remote.address, () => undefined);
      } catch {
        // e.g. a source port of 0, or a socket closed while the answer was looked up: nowhere to answer
      }
    };
    const answer = responder.respond(message, normalizeClient(remote.address), 'udp');
    if (answer instanceof Promise) void answer.then(send);
    else send(answer);
  });
  udp.on('error', () => undefined); // e.g. ICMP-induced errors: keep serving
  return udp;
}

function closeQuietly(udp: dgram.Socket | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!udp) return resolve();
    try {
      udp.close(() => resolve());
    } catch {
      resolve(); // never bound, or already closed
    }
  });
}

/**
 * RFC 1035 §4.2.2 / RFC 7766 framing: each message is preceded by its 2-byte length. Frames may
 * arrive split or coalesced, so bytes are buffered until a whole frame is present.
 */
function serveTcpConnection(socket: net.Socket, responder: DnsResponder, idleTimeoutMs: number, client = normalizeClient(socket.remoteAddress ?? '')): void {
  let buffered: Buffer = Buffer.alloc(0);
  // SECURITY: a client that does not read its answers is neither read from nor answered until it
  // does, with one 'drain' listener at most, so a query flood on a stream cannot grow the
  // gateway's buffers or its listeners — test/e2e/dns-flood.test.ts.
  let waitingForDrain = false;
  socket.setNoDelay(true);
  socket.setTimeout(idleTimeoutMs, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const send = (answer: Buffer | null): boolean => {
    if (socket.destroyed) return false;
    if (!answer) {
      // Garbage on a stream: the framing can no longer be trusted.
      socket.destroy();
      return false;
    }
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(answer.length, 0);
    if (!socket.write(Buffer.concat([prefix, answer])) && !waitingForDrain) {
      waitingForDrain = true;
      socket.pause();
      socket.once('drain', () => {
        waitingForDrain = false;
        socket.resume();
        answerBuffered();
      });
    }
    return true;
  };
  // Answers whole frames until the client falls behind; the rest (at most what one read brought)
  // waits for 'drain'.
  const answerBuffered = (): void => {
    while (!waitingForDrain && buffered.length >= 2) {
      const length = buffered.readUInt16BE(0);
      if (buffered.length < 2 + length) break;
      const message = buffered.subarray(2, 2 + length);
      buffered = buffered.subarray(2 + length);
      const answer = responder.respond(message, client, 'tcp');
      // An answer that waits for an upstream lookup (report mode) is sent when it comes; the
      // ones after it need not wait (RFC 7766 §6.2.1.1: answers carry their query's id).
      if (answer instanceof Promise) void answer.then(send);
      else if (!send(answer)) return;
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    answerBuffered();
  });
}

function listenTcp(server: net.Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function bindUdp(socket: dgram.Socket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    socket.once('error', onError);
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

function normalizeClient(address: string): string {
  return address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
}

