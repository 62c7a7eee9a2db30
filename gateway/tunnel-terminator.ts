// Takes a client connection that is already bound to one host (a CONNECT tunnel, or later a
// transparent connection from the jail) and serves HTTP on it: TLS terminated with a leaf for
// that host (ALPN h2 or http/1.1), or plain HTTP when the first byte is not a TLS record.
import http from 'node:http';
import type http2 from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { LeafContextCache } from '../ca/index.js';
import { normalizeHost } from '../policies/host.js';
import type { ConnectionContext } from './connection-context.js';
import type { GatewayEvents } from './events.js';
import { ConnectionSweeper } from './connection-sweeper.js';
import type { GatewayLimits } from './limits.js';
import type { RequestPipeline } from './request-pipeline.js';
import { denialResponse, writeRawResponse } from './responses.js';

/** The first byte of a TLS connection (a handshake record); anything else is taken as plain HTTP. */
export const TLS_HANDSHAKE_RECORD = 0x16;

export interface TunnelTerminatorOptions {
  leafContexts: LeafContextCache;
  pipeline: RequestPipeline;
  events: GatewayEvents;
  limits: GatewayLimits;
}

/** Node sets `_parent` on a TLSSocket to the socket it wraps; the tunnel context hangs off that. */
interface WrappedSocket {
  _parent?: unknown;
}

export class TunnelTerminator {
  /** Raw tunnel socket → its context. Weak, so a closed tunnel leaves nothing behind. */
  private readonly tunnels = new WeakMap<object, ConnectionContext>();
  private readonly sniFailures = new WeakMap<object, string>();
  private tlsServerValue: http2.Http2SecureServer | null = null;
  private readonly plainServer: http.Server;
  /** The idle and keep-alive limits of the connections served here (node's timers are off: see the sweeper). */
  private readonly sweeper: ConnectionSweeper;

  constructor(private readonly options: TunnelTerminatorOptions) {
    this.sweeper = new ConnectionSweeper({ idleMs: options.limits.idleTimeoutMs, keepAliveMs: options.limits.keepAliveTimeoutMs }, options.limits.sweepClock);
    this.plainServer = this.createPlainServer();
  }

  /** Built by the first TLS connection: node's http2 module is ~4 ms of a run that makes none. */
  private get tlsServer(): http2.Http2SecureServer {
    this.tlsServerValue ??= this.createTlsServer();
    return this.tlsServerValue;
  }

  /** Serves HTTP on `socket`, which carries traffic meant for `context.host:context.port`. */
  accept(socket: Duplex, context: ConnectionContext, head?: Buffer): void {
    socket.on('error', () => undefined); // client resets are normal; never crash the gateway
    if (head && head.length > 0) {
      socket.unshift(head);
      this.route(socket, context, head[0]!);
      return;
    }
    const timer = setTimeout(() => socket.destroy(), this.options.limits.headersTimeoutMs);
    socket.once('data', (chunk: Buffer) => {
      clearTimeout(timer);
      socket.pause();
      socket.unshift(chunk);
      this.route(socket, context, chunk[0]!);
    });
    socket.once('close', () => clearTimeout(timer));
    socket.resume(); // callers may hand over a paused socket (the transparent listener does)
  }

  private route(socket: Duplex, context: ConnectionContext, firstByte: number): void {
    this.tunnels.set(socket, context);
    // The proxy listener's idle timer on a CONNECT socket is dead weight from here: node's HTTP
    // server stopped listening for its timeout when it handed the socket over, yet every read and
    // write through the tunnel would still re-arm it. The sweeper times the connection instead.
    if (socket instanceof Socket) socket.setTimeout(0);
    if (firstByte === TLS_HANDSHAKE_RECORD) {
      context.scheme = 'https';
      let leafContext: tls.SecureContext;
      try {
        leafContext = this.options.leafContexts.secureContextFor(context.host);
      } catch {
        this.options.events.emit('tls', { kind: 'tls', conn: context.id, host: context.host, outcome: 'failed', reason: 'no certificate can be issued for this host' });
        socket.destroy();
        return;
      }
      // A client that sends no SNI (always the case for IP literals) gets the server's default
      // credentials. node builds the TLSSocket synchronously inside emit('connection') from
      // server._sharedCreds, so setting it just before the emit gives this connection the
      // tunnel host's leaf — one shared server, no per-host servers.
      (this.tlsServer as unknown as { _sharedCreds: tls.SecureContext })._sharedCreds = leafContext;
      // The TLS socket takes its half-open setting from the socket it wraps, and node's HTTP
      // server (the explicit proxy) makes half-open ones. node's HTTP/2 session never ends a
      // half-open socket: a client's close_notify and FIN would leave the session, the socket
      // and its fd open until the idle sweep. Not half-open, the socket ends its side in turn
      // (after what is still queued), as on a server that accepted the connection itself —
      // test/e2e/h2-connection-release.test.ts
      socket.allowHalfOpen = false;
      this.tlsServer.emit('connection', socket);
    } else {
      context.scheme = 'http';
      this.plainServer.emit('connection', socket);
      // The bytes read to tell TLS from HTTP sit in the socket's buffer, and accept() may have
      // paused it. node's HTTP server hands a fresh socket's later bytes straight to its parser
      // (past the stream), and waits for 'data' events on one whose handle was already consumed
      // (a CONNECT socket): either way only a flowing stream gives the parser those first
      // bytes, so without this the request never arrives and times out.
      socket.resume();
    }
  }

  private contextOf(socket: unknown): ConnectionContext | undefined {
    if (!socket || typeof socket !== 'object') return undefined;
    return this.tunnels.get((socket as WrappedSocket)._parent as object) ?? this.tunnels.get(socket);
  }

  private createTlsServer(): http2.Http2SecureServer {
    const { events, limits } = this.options;
    const contextOf = (socket: unknown) => this.contextOf(socket);
    const sniFailures = this.sniFailures;
    const server = process.getBuiltinModule('node:http2').createSecureServer({
      allowHTTP1: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      minVersion: 'TLSv1.2',
      handshakeTimeout: limits.handshakeTimeoutMs,
      maxSessionMemory: 32,
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes },
      SNICallback(this: tls.TLSSocket, servername: string, callback: (err: Error | null, ctx?: tls.SecureContext) => void) {
        const context = contextOf(this);
        const name = normalizeHost(servername);
        // SECURITY: the TLS name must be the tunnel's (policy-checked) host, else domain
        // fronting — test/e2e/fronting.test.ts
        if (!context || name !== context.host) {
          const reason = `TLS server name ${servername.slice(0, 253)} does not match the tunnel host ${context?.host ?? '?'}`;
          sniFailures.set(this, reason);
          callback(new Error(reason));
          return;
        }
        // The connection already holds this host's leaf as its default context.
        callback(null);
      },
    });
    // With allowHTTP1, node serves HTTP/1.1 connections through http's own connection handler,
    // which reads these fields off the server object (they are not in the h2 server's types).
    Object.assign(server, {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: 0, // enforced by this.sweeper, as the idle timeout is
      requestTimeout: 0, // long uploads are fine; stalls are caught by the idle timeout
    });
    startHeaderTimeoutChecks(server);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.sweeper.track(socket);
      const context = this.contextOf(socket);
      events.emit('tls', { kind: 'tls', conn: context?.id ?? '-', host: context?.host ?? '-', outcome: 'ok', alpn: socket.alpnProtocol || 'none' });
    });
    server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => {
      const context = this.contextOf(socket);
      const reason = this.sniFailures.get(socket) ?? (socket.servername === false || socket.servername === undefined ? `client sent no TLS server name (${error.code ?? error.message})` : error.code ?? error.message);
      events.emit('tls', { kind: 'tls', conn: context?.id ?? '-', host: context?.host ?? '-', outcome: 'failed', reason });
      socket.destroy();
    });
    server.on('request', (req: http2.Http2ServerRequest | http.IncomingMessage, res: http2.Http2ServerResponse | http.ServerResponse) => {
      const context = this.contextOf(req.socket);
      if (!context) {
        res.destroy();
        return;
      }
      if (req.httpVersionMajor === 1) this.sweeper.noteRequest(req.socket, res);
      this.options.pipeline.handleRequest(req, res, context, context.id);
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    // SECURITY: node answers a CONNECT it has no listener for by itself (h2: a bare 405; HTTP/1:
    // the connection closed), so it would leave no audit line; the pipeline refuses it with its
    // reason and logs it — test/e2e/smuggling.test.ts.
    server.on('connect', (req: http2.Http2ServerRequest | http.IncomingMessage, second: http2.Http2ServerResponse | Duplex, head?: Buffer) => {
      if (req.httpVersionMajor === 2) server.emit('request', req, second);
      else this.onUpgrade(req as http.IncomingMessage, second as Duplex, head ?? Buffer.alloc(0));
    });
    server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => answerParseError(error, socket, this.contextOf(socket), this.options.events));
    server.on('sessionError', () => undefined);
    return server;
  }

  private createPlainServer(): http.Server {
    const { limits } = this.options;
    const server = http.createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: 0, // enforced by this.sweeper, as the idle timeout is
      requestTimeout: 0,
    });
    startHeaderTimeoutChecks(server);
    server.on('connection', (socket: Socket) => this.sweeper.track(socket));
    server.on('request', (req, res) => {
      const context = this.contextOf(req.socket);
      if (!context) {
        res.destroy();
        return;
      }
      this.sweeper.noteRequest(req.socket, res);
      this.options.pipeline.handleRequest(req, res, context, context.id);
    });
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    // As on the TLS side: refused by the pipeline, with its audit line.
    server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    server.on('clientError', (error: Error & { code?: string }, socket: Duplex) => answerParseError(error, socket, this.contextOf(socket), this.options.events));
    return server;
  }

  /** Stops the servers' timers; connections are closed by their owners. */
  close(): void {
    this.tlsServerValue?.close();
    this.plainServer.close();
    this.sweeper.close();
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    this.sweeper.forget(socket as Socket);
    const context = this.contextOf(socket);
    if (!context) {
      socket.destroy();
      return;
    }
    this.options.pipeline.handleUpgrade(req, socket, head, context, context.id);
  }
}

/**
 * SECURITY: node enforces headersTimeout (slowloris) from a timer it starts on 'listening'.
 * These servers never listen (connections are handed to them), so start the timer ourselves;
 * server.close() stops it.
 */
function startHeaderTimeoutChecks(server: http.Server | http2.Http2SecureServer): void {
  Object.assign(server, { connectionsCheckingInterval: 1000 });
  server.emit('listening');
}

/**
 * node's HTTP/1 parser rejected the request (CL+TE, duplicate Content-Length, oversized head,
 * garbage): answer 400/431, close, and report it as a framing denial so it is in the audit log.
 */
export function answerParseError(error: Error & { code?: string }, socket: Duplex, context: { id: string; host: string; port: number } | undefined, events: GatewayEvents): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const reason = tooLarge ? 'request headers are too large' : `malformed HTTP request (${error.code ?? 'parse error'})`;
  writeRawResponse(socket, denialResponse(status, null, reason));
  events.emit('request', {
    kind: 'request',
    conn: context?.id ?? '-',
    protocol: 'http/1.1',
    method: '-',
    host: context?.host ?? '-',
    port: context?.port ?? 0,
    path: '-',
    decision: 'deny',
    rule: null,
    reason,
    step: 'framing',
    status,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: 0,
  });
}
