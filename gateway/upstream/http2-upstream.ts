// Sends gRPC calls upstream over HTTP/2, with node:http2. gRPC needs HTTP/2 and its trailers (the
// call's status). undici 7.x can speak HTTP/2, but it ends a response as soon as the trailers
// arrive and drops the DATA still waiting behind backpressure (a 20 kB reply came back cut at
// 16 KiB), and it hands the trailers to new-style handlers as {}. Everything else stays on undici
// and HTTP/1.1. As there, the gateway picks the address (its resolver) and the TLS name (the
// policy-checked host), and streams both ways with backpressure.
// node:http2 and node:tls load on the first gRPC call, not with the gateway: a run that makes
// no call (`srt-gw run -- true`) never pays for them.
import type http2 from 'node:http2';
import type tls from 'node:tls';
import { BoundedMap } from '../../bounded-map.js';
import { formatAuthority } from '../connection-context.js';
import { HOP_BY_HOP_HEADERS } from '../http/exchange.js';
import type { ForwardResult, LookupFunction, ResponseSink, UpstreamRequest, UpstreamTarget } from './upstream-client.js';
import { classifyUpstreamError, NOT_HTTP2_CODE } from './upstream-errors.js';
import { upstreamServername } from '../tls/upstream-servername.js';

export interface Http2UpstreamOptions {
  /** The upstream trust store (built once, shared with the HTTP/1.1 client). */
  trustContext: () => tls.SecureContext;
  lookup: LookupFunction;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** An idle session is closed after this long. */
  idleTimeoutMs: number;
  /** Bound on open sessions (one per origin); the least recently opened goes first. */
  maxSessions: number;
  /** Whether connections to the target go through the upstream proxy. */
  viaProxy?: (target: UpstreamTarget) => boolean;
  /** The TLS connection (after its handshake) to the target through the upstream proxy. */
  connectThroughProxy?: (target: UpstreamTarget) => Promise<import('node:stream').Duplex>;
}

function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

export class Http2Upstream {
  /** The session opened longest ago is closed to make room for a new origin's. */
  readonly #sessions: BoundedMap<string, http2.ClientHttp2Session>;
  /** Why a session failed: its streams only learn that they were cancelled. */
  readonly #sessionErrors = new WeakMap<http2.ClientHttp2Session, Error>();
  /** Tunnels through the upstream proxy being opened, one per origin, shared by the calls waiting. */
  readonly #pendingTunnels = new Map<string, Promise<void>>();

  constructor(private readonly options: Http2UpstreamOptions) {
    this.#sessions = new BoundedMap({ capacity: options.maxSessions, onEvict: (_key, session) => session.close() });
  }

  /** Forwards one call and streams the response, then its trailers, into `sink`. */
  forward(target: UpstreamTarget, request: UpstreamRequest, sink: ResponseSink): Promise<ForwardResult> {
    const key = formatAuthority(target.host, target.port);
    const known = this.#sessions.get(key);
    if (known !== undefined && !known.closed && !known.destroyed) return this.#forwardOn(target, request, sink);
    // Through the upstream proxy the connection is made before the session, which then runs on it.
    let pending = this.#pendingTunnels.get(key);
    if (pending === undefined) {
      if (this.options.viaProxy?.(target) !== true) return this.#forwardOn(target, request, sink);
      pending = this.options.connectThroughProxy!(target).then((socket) => {
        if ((socket as tls.TLSSocket).alpnProtocol !== 'h2') {
          socket.destroy();
          throw failure(NOT_HTTP2_CODE, `${target.host} did not agree to HTTP/2`);
        }
        this.#openSession(key, () => socket);
      });
      this.#pendingTunnels.set(key, pending);
      pending.finally(() => this.#pendingTunnels.delete(key)).catch(() => undefined);
    }
    return pending.then(
      () => this.#forwardOn(target, request, sink),
      (error: Error) => {
        request.body?.destroy();
        return { ok: false, failure: classifyUpstreamError(error, target.host), headersSent: false, bytesOut: 0 };
      },
    );
  }

  #forwardOn(target: UpstreamTarget, request: UpstreamRequest, sink: ResponseSink): Promise<ForwardResult> {
    return new Promise<ForwardResult>((resolve) => {
      let bytesOut = 0;
      let status = 0;
      let trailers: http2.IncomingHttpHeaders | null = null;
      let grpcStatus: number | undefined;
      let settled = false;
      let stream: http2.ClientHttp2Stream;
      let session: http2.ClientHttp2Session | null = null;
      const settle = (error: Error | null) => {
        if (settled) return;
        settled = true;
        const cause = (session && this.#sessionErrors.get(session)) ?? error;
        if (cause === null) {
          resolve({ ok: true, status, bytesOut, ...(grpcStatus === undefined ? {} : { grpcStatus }) });
          return;
        }
        // The rest of the body goes nowhere: ending it lets the pipeline drain the client's upload.
        if (request.body !== null && !request.body.destroyed) request.body.destroy();
        resolve({ ok: false, failure: classifyUpstreamError(cause, target.host), headersSent: sink.headersSent, bytesOut });
      };
      try {
        session = this.#sessionFor(target);
        stream = session.request(requestHeaders(target, request), { endStream: request.body === null });
      } catch (error) {
        settle(error as Error);
        return;
      }
      const fail = (error: Error) => {
        settle(error);
        if (!stream.destroyed) stream.close(process.getBuiltinModule('node:http2').constants.NGHTTP2_CANCEL);
      };
      stream.setTimeout(this.options.headersTimeoutMs, () => fail(failure('ETIMEDOUT', 'no response headers in time')));
      // If the client goes away, stop reading from upstream at once.
      sink.once('close', () => {
        if (!sink.writableFinished) fail(failure('ECONNRESET', 'client closed the connection'));
      });
      if (request.body !== null) {
        const body = request.body;
        body.pipe(stream);
        // A budget refusal (or the client's own error) ends the call short of its end.
        body.once('error', (error: Error) => fail(error));
      }
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
        // A trailers-only reply (an error, mostly) puts the status in its headers.
        grpcStatus = grpcStatusOf(headers);
        stream.setTimeout(this.options.bodyTimeoutMs, () => fail(failure('ETIMEDOUT', 'the response body stalled')));
        try {
          sink.writeHead(status, withoutPseudoHeaders(headers));
        } catch (error) {
          fail(error as Error);
        }
      });
      stream.on('data', (chunk: Buffer) => {
        bytesOut += chunk.length;
        // SECURITY/DoS: stream, never buffer — a client that stops reading pauses the upstream.
        if (!sink.write(chunk)) {
          stream.pause();
          sink.once('drain', () => stream.resume());
        }
      });
      // Trailers may arrive while DATA still waits to be read: they are sent after it, at 'end'.
      stream.on('trailers', (received) => {
        trailers = received;
        grpcStatus = grpcStatusOf(received) ?? grpcStatus;
      });
      stream.on('end', () => {
        if (settled) return;
        if (trailers !== null && sink.addTrailers !== undefined) sink.addTrailers(withoutPseudoHeaders(trailers));
        sink.end();
        settle(null);
      });
      stream.on('error', (error) => settle(error));
      stream.on('close', () => settle(failure('ECONNRESET', `stream closed (code ${stream.rstCode ?? 'none'})`)));
    });
  }

  async close(): Promise<void> {
    const sessions = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const session of sessions) session.destroy();
  }

  #sessionFor(target: UpstreamTarget): http2.ClientHttp2Session {
    const key = formatAuthority(target.host, target.port);
    const known = this.#sessions.get(key);
    if (known !== undefined && !known.closed && !known.destroyed) return known;
    // SECURITY: a target behind the upstream proxy never gets a direct connection (its session is
    // made in forward(), on a tunnel); one that closed in between fails the call instead.
    if (this.options.viaProxy?.(target) === true) throw failure('ECONNRESET', 'the session through the upstream proxy closed');
    const servername = upstreamServername(target);
    // The socket's handlers below use `session`: they run on its events, after it is assigned.
    const session: http2.ClientHttp2Session = this.#openSession(key, () => {
        const socket = process.getBuiltinModule('node:tls').connect({
          host: target.host,
          port: target.port,
          ...(servername !== undefined ? { servername } : {}),
          secureContext: this.options.trustContext(),
          rejectUnauthorized: true,
          ALPNProtocols: ['h2'],
          // Hands out only addresses the destination check allowed (IP literals are checked by
          // UpstreamClient.forward, as node connects to those without a lookup).
          lookup: this.options.lookup,
        });
        // Recorded before the socket goes: the session cancels its streams before it reports why.
        const refuse = (error: Error) => {
          this.#sessionErrors.set(session, error);
          socket.destroy(error);
        };
        socket.setTimeout(this.options.connectTimeoutMs, () => refuse(failure('ETIMEDOUT', 'connect timed out')));
        socket.once('secureConnect', () => {
          socket.setTimeout(0);
          if (socket.alpnProtocol !== 'h2') refuse(failure(NOT_HTTP2_CODE, `${target.host} did not agree to HTTP/2`));
        });
        socket.once('error', (error) => {
          if (!this.#sessionErrors.has(session)) this.#sessionErrors.set(session, error);
        });
        return socket;
    });
    return session;
  }

  #openSession(key: string, createConnection: () => import('node:stream').Duplex): http2.ClientHttp2Session {
    const session = process.getBuiltinModule('node:http2').connect(`https://${key}`, { createConnection });
    const forget = () => {
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
    };
    session.on('error', (error) => {
      if (!this.#sessionErrors.has(session)) this.#sessionErrors.set(session, error);
      forget();
    });
    session.on('goaway', forget);
    session.on('close', forget);
    session.setTimeout(this.options.idleTimeoutMs, () => session.close());
    this.#sessions.set(key, session);
    return session;
  }
}

function requestHeaders(target: UpstreamTarget, request: UpstreamRequest): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {
    ':method': request.method,
    ':scheme': 'https',
    ':authority': formatAuthority(target.host, target.port, 443),
    ':path': request.path,
  };
  for (let i = 0; i < request.headers.length; i += 2) {
    const name = request.headers[i]!.toLowerCase();
    const value = request.headers[i + 1]!;
    if (name === 'host') headers[':authority'] = value;
    // Hop-by-hop headers (illegal in HTTP/2, RFC 9113 §8.2.2) and host; te is set below.
    if (HOP_BY_HOP_HEADERS.has(name)) continue;
    const previous = headers[name];
    headers[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [String(previous)]), value];
  }
  // gRPC servers refuse a call without it: it says the client takes trailers, where the status is.
  headers.te = 'trailers';
  return headers;
}

/** grpc-status as a number, or undefined when absent or not a non-negative integer. */
function grpcStatusOf(headers: http2.IncomingHttpHeaders): number | undefined {
  const value = headers['grpc-status'];
  return typeof value === 'string' && /^\d{1,3}$/.test(value) ? Number(value) : undefined;
}

/** Response headers or trailers as the client's side takes them: no pseudo or hop-by-hop headers. */
function withoutPseudoHeaders(headers: http2.IncomingHttpHeaders): Record<string, string | string[]> {
  const kept: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value !== undefined && name.charCodeAt(0) !== 58 /* ':' */ && !HOP_BY_HOP_HEADERS.has(name)) kept[name] = value;
  }
  return kept;
}
