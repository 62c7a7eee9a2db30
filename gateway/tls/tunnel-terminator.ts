// Takes a client connection that is already bound to one host (a CONNECT tunnel, or later a
// transparent connection from the jail) and serves HTTP on it: TLS terminated with a leaf for
// that host (ALPN h2 or http/1.1), or plain HTTP when the first byte is not a TLS record.
import http from 'node:http';
import type http2 from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { normalizeHost } from '../../policies/host.js';
import type { ReasonCode } from '../../reason-codes.js';
import type { ConnectionContext } from '../connection-context.js';
import type { GatewayEvents } from '../audit/events.js';
import { ConnectionSweeper } from '../http/connection-sweeper.js';
import type { GatewayLimits } from '../limits.js';
import type { RequestPipeline } from '../http/request-pipeline.js';
import { answerParseError } from '../http/parse-errors.js';
import { canSetDefaultSecureContext, checkTlsSocketWrapping, setDefaultSecureContext, startHeaderTimeoutChecks, wrappedSocketOf } from '../node-internals.js';

/** The first byte of a TLS connection (a handshake record); anything else is taken as plain HTTP. */
export const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * Where the terminator gets the leaf certificate for a name (the CA's LeafContextCache). Named by
 * what it is used for, so the library's declarations do not reach the CA's node-forge types.
 */
export interface LeafContexts {
  secureContextFor(host: string): tls.SecureContext;
}

export interface TunnelTerminatorOptions {
  leafContexts: LeafContexts;
  pipeline: RequestPipeline;
  events: GatewayEvents;
  limits: GatewayLimits;
}

/** How often node checks the head timeouts of the connections served here (slowloris). */
const HEADER_TIMEOUT_CHECK_MS = 1000;

export class TunnelTerminator {
  /** Raw tunnel socket → its context. Weak, so a closed tunnel leaves nothing behind. */
  private readonly tunnels = new WeakMap<object, ConnectionContext>();
  /** Why the SNICallback refused a connection, for its tlsClientError. */
  private readonly sniFailures = new WeakMap<object, HandshakeFailure>();
  private tlsServerValue: http2.Http2SecureServer | null = null;
  /** Whether a client without SNI can be given the tunnel's leaf (node-internals.ts); else the SNICallback hands it out. */
  private defaultContextSettable = false;
  private readonly plainServer: http.Server;
  /** The idle and keep-alive limits of the connections served here (node's timers are off: see the sweeper). */
  private readonly sweeper: ConnectionSweeper;

  constructor(private readonly options: TunnelTerminatorOptions) {
    this.sweeper = new ConnectionSweeper({ idleMs: options.limits.idleTimeoutMs, keepAliveMs: options.limits.keepAliveTimeoutMs }, options.limits.sweepClock);
    this.plainServer = this.createPlainServer();
  }

  /**
   * Built by the first TLS connection (node's http2 module is ~4 ms of a run that makes none),
   * whose leaf context checks the node internals it needs; throws NodeInternalsError without them.
   */
  private tlsServerFor(leafContext: tls.SecureContext): http2.Http2SecureServer {
    if (this.tlsServerValue === null) {
      checkTlsSocketWrapping(leafContext);
      this.tlsServerValue = this.createTlsServer();
    }
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
        this.options.events.emit('tls', { kind: 'tls', conn: context.id, host: context.host, outcome: 'failed', reason: 'no certificate can be issued for this host', code: 'no-certificate' });
        socket.destroy();
        return;
      }
      let tlsServer: http2.Http2SecureServer;
      try {
        tlsServer = this.tlsServerFor(leafContext);
      } catch (error) {
        // Fails closed: without what it needs from node, the TLS side serves nothing.
        this.options.events.emit('tls', { kind: 'tls', conn: context.id, host: context.host, outcome: 'failed', reason: (error as Error).message, code: 'node-unsupported' });
        socket.destroy();
        return;
      }
      // A client that sends no SNI (always the case for IP literals) gets the server's default
      // credentials, set to the tunnel host's leaf just before the connection is handed over —
      // one shared server, no per-host servers.
      if (this.defaultContextSettable) setDefaultSecureContext(tlsServer, leafContext);
      // The TLS socket takes its half-open setting from the socket it wraps, and node's HTTP
      // server (the explicit proxy) makes half-open ones. node's HTTP/2 session never ends a
      // half-open socket: a client's close_notify and FIN would leave the session, the socket
      // and its fd open until the idle sweep. Not half-open, the socket ends its side in turn
      // (after what is still queued), as on a server that accepted the connection itself —
      // test/e2e/h2-connection-release.test.ts
      socket.allowHalfOpen = false;
      tlsServer.emit('connection', socket);
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
    const wrapped = wrappedSocketOf(socket);
    return (wrapped && this.tunnels.get(wrapped)) ?? this.tunnels.get(socket);
  }

  private createTlsServer(): http2.Http2SecureServer {
    const { events, limits } = this.options;
    const contextOf = (socket: unknown) => this.contextOf(socket);
    const sniFailures = this.sniFailures;
    const leafContexts = this.options.leafContexts;
    // Set below, once the server exists; read by the SNICallback.
    let defaultContextSettable = false;
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
          sniFailures.set(this, { reason, code: 'sni-host-mismatch' });
          callback(new Error(reason));
          return;
        }
        // The connection already holds this host's leaf as its default context, where node
        // lets it be set; else the public path: the leaf is handed out here.
        if (defaultContextSettable) {
          callback(null);
          return;
        }
        try {
          callback(null, leafContexts.secureContextFor(context.host));
        } catch (error) {
          sniFailures.set(this, { reason: 'no certificate can be issued for this host', code: 'no-certificate' });
          callback(error as Error);
        }
      },
    });
    defaultContextSettable = this.defaultContextSettable = canSetDefaultSecureContext(server);
    // With allowHTTP1, node serves HTTP/1.1 connections through http's own connection handler,
    // which reads these fields off the server object (they are not in the h2 server's types).
    Object.assign(server, {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: 0, // enforced by this.sweeper, as the idle timeout is
      requestTimeout: 0, // long uploads are fine; stalls are caught by the idle timeout
    });
    startHeaderTimeoutChecks(server, HEADER_TIMEOUT_CHECK_MS);
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      this.sweeper.track(socket);
      const context = this.contextOf(socket);
      events.emit('tls', { kind: 'tls', conn: context?.id ?? '-', host: context?.host ?? '-', outcome: 'ok', alpn: socket.alpnProtocol || 'none' });
    });
    server.on('tlsClientError', (error: Error & { code?: string }, socket: tls.TLSSocket) => {
      const context = this.contextOf(socket);
      const failure = this.sniFailures.get(socket) ?? handshakeFailure(error, socket);
      events.emit('tls', { kind: 'tls', conn: context?.id ?? '-', host: context?.host ?? '-', outcome: 'failed', ...failure });
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
    startHeaderTimeoutChecks(server, HEADER_TIMEOUT_CHECK_MS);
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

interface HandshakeFailure {
  reason: string;
  code: ReasonCode;
}

/** Why a handshake failed that the SNICallback did not refuse. */
function handshakeFailure(error: Error & { code?: string }, socket: tls.TLSSocket): HandshakeFailure {
  const why = error.code ?? error.message;
  if (socket.servername === false || socket.servername === undefined) return { reason: `client sent no TLS server name (${why})`, code: 'tls-no-server-name' };
  return { reason: why, code: 'tls-handshake-failed' };
}
