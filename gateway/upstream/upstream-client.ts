// Sends allowed requests upstream with undici and streams the answer back with backpressure.
// The gateway picks the address (its own resolver) and the TLS name (the policy-checked host):
// nothing the client said about addresses is used.
import type { Duplex, Readable } from 'node:stream';
import type tls from 'node:tls';
import type { Dispatcher, Pool } from 'undici';
import { BoundedMap } from '../../bounded-map.js';
import type { UpstreamResolver } from '../dns/upstream-resolver.js';
import { Http2Upstream } from './http2-upstream.js';
import { ResponseDeadlines } from './response-deadlines.js';
import { ResponseEnds } from './response-ends.js';
import { classifyUpstreamError, type UpstreamFailure } from './upstream-errors.js';
import { plainTunnel, tlsThroughTunnel, UpstreamProxy, type UpstreamProxyConfig } from './upstream-proxy.js';
import { upstreamServername } from '../tls/upstream-servername.js';

export type LookupFunction = UpstreamResolver['lookup'];

// undici is loaded on the first upstream request, not at start: `srt-gw run -- true` never needs
// it, and loading it is ~1/4 of a run's start-up (bench/README.md, "run start-up").
let undici: typeof import('undici') | null = null;
async function loadUndici(): Promise<typeof import('undici')> {
  if (undici) return undici;
  const loaded = (await import('undici')) as typeof import('undici') & { default?: typeof import('undici') };
  // Node's loader gives a CommonJS package named exports; the bundled CLI (esbuild) only `default`.
  undici = typeof loaded.Pool === 'function' ? loaded : loaded.default;
  return undici;
}

export interface UpstreamClientOptions {
  /** PEM bundles trusted for upstream certificates. */
  trustedCa: string[];
  /**
   * The gateway's own resolver (never the client's idea of an address). It hands out only
   * addresses the destination check allowed (UpstreamResolver.lookup).
   */
  lookup: LookupFunction;
  /**
   * Why the gateway may not connect to an IP-literal host, else null: node connects to a literal
   * without calling `lookup`, so literals are checked here (UpstreamResolver.literalRefusal).
   */
  literalRefusal?: (host: string) => Error | null;
  connectTimeoutMs?: number;
  headersTimeoutMs?: number;
  bodyTimeoutMs?: number;
  /** Idle upstream connections are reused for this long. */
  keepAliveTimeoutMs?: number;
  /** Bound on distinct upstream origins with open pools. */
  maxOrigins?: number;
  connectionsPerOrigin?: number;
  /**
   * When completed responses are ended (at once, or batched at the end of the loop turn). The
   * gateway's own, shared with nothing else in the process; default: one for this client.
   */
  responseEnds?: ResponseEnds;
  /** Connections leave through this proxy (CONNECT), except to hosts it bypasses; null: direct. */
  upstreamProxy?: UpstreamProxyConfig | null;
}

export interface UpstreamTarget {
  scheme: 'http' | 'https';
  host: string;
  port: number;
}

export interface UpstreamRequest {
  method: string;
  /** Origin-form path + query. */
  path: string;
  /** Flat [name, value, ...] list, Host included (set by the gateway). */
  headers: string[];
  body: Readable | null;
  /**
   * A gRPC call (ExchangeHead.grpc): sent over HTTP/2 with `te: trailers` (http2-upstream.ts;
   * everything else stays on undici and HTTP/1.1), and the response's trailers, which carry its
   * status, are relayed.
   */
  grpc?: boolean;
}

/** Where the upstream response goes: an http.ServerResponse or an Http2ServerResponse. */
export interface ResponseSink {
  readonly headersSent: boolean;
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  readonly writableFinished: boolean;
  /** HTTP/1.1 responses: hold writes back until uncork(), so several chunks leave in one write. */
  cork?(): void;
  uncork?(): void;
  /** HTTP/2 responses: trailers to send with the end of the stream. */
  addTrailers?(trailers: Record<string, string | string[]>): void;
}

export type ForwardResult =
  | { ok: true; status: number; bytesOut: number; grpcStatus?: number }
  | { ok: false; failure: UpstreamFailure; headersSent: boolean; bytesOut: number };

/** Response headers that describe one hop (and are illegal in HTTP/2 responses). */
const RESPONSE_HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

export class UpstreamClient {
  /** One pool per origin; the least recently used origin's pool is closed to make room. */
  private readonly pools: BoundedMap<string, PoolEntry>;
  private readonly options: Required<UpstreamClientOptions>;
  /**
   * Built once: passing `ca` per connection makes node parse the whole system bundle into a
   * new context for every upstream TLS connection (25-30 ms of CPU each, measured by the bench).
   */
  private trustContextValue: tls.SecureContext | null = null;
  /** gRPC calls (HTTP/2 with trailers): made on first use. */
  private http2Value: Http2Upstream | null = null;
  /** The head and body limits of HTTP/1.1 responses (undici's own timers are off: see there). */
  private readonly deadlines: ResponseDeadlines;
  private readonly proxy: UpstreamProxy | null;

  constructor(options: UpstreamClientOptions) {
    this.options = {
      connectTimeoutMs: 10_000,
      headersTimeoutMs: 60_000,
      bodyTimeoutMs: 300_000,
      keepAliveTimeoutMs: 30_000,
      maxOrigins: 256,
      connectionsPerOrigin: 64,
      literalRefusal: () => null,
      responseEnds: new ResponseEnds(),
      upstreamProxy: null,
      ...options,
    };
    this.proxy = this.options.upstreamProxy === null ? null : new UpstreamProxy(this.options.upstreamProxy, () => this.trustContext);
    this.pools = new BoundedMap({ capacity: this.options.maxOrigins, refreshOnGet: true, onEvict: (_origin, { pool }) => void pool.close().catch(() => undefined) });
    this.deadlines = new ResponseDeadlines({ headMs: this.options.headersTimeoutMs, bodyMs: this.options.bodyTimeoutMs }, (limit) =>
      limit === 'head' ? new undici!.errors.HeadersTimeoutError() : new undici!.errors.BodyTimeoutError(),
    );
  }

  /**
   * Built on first use: parsing the system bundle takes ~25 ms that a run without traffic never
   * needs, and node:tls itself loads only then.
   */
  private get trustContext(): tls.SecureContext {
    this.trustContextValue ??= process.getBuiltinModule('node:tls').createSecureContext({ ca: this.options.trustedCa });
    return this.trustContextValue;
  }

  /**
   * Loads undici and builds the upstream trust context now, instead of on the first request
   * (~60 ms that a run without traffic never pays, but a first request would).
   */
  async prepare(): Promise<void> {
    await loadUndici();
    void this.trustContext;
  }

  /** Forwards one request and streams the response into `sink`; resolves when the exchange ends. */
  forward(target: UpstreamTarget, request: UpstreamRequest, sink: ResponseSink): Promise<ForwardResult> {
    const refusal = this.options.literalRefusal(target.host);
    if (refusal !== null) {
      request.body?.destroy();
      return Promise.resolve({ ok: false, failure: classifyUpstreamError(refusal, target.host), headersSent: false, bytesOut: 0 });
    }
    if (request.grpc === true && target.scheme === 'https') return this.http2.forward(target, request, sink);
    if (!undici) return loadUndici().then(() => this.forward(target, request, sink));
    const origin = originOf(target);
    const { pool, servername } = this.poolFor(target, origin);
    const deadlines = this.deadlines;
    const responseEnds = this.options.responseEnds;
    return new Promise<ForwardResult>((resolve) => {
      let status = 0;
      let controller: Dispatcher.DispatchController | null = null;
      // Sent once undici starts the request on a connection, or once its body has been read.
      const progress = deadlines.watch(false, (error) => controller?.abort(error));
      const body = request.body;
      body?.once('end', () => (progress.sent = true));
      let settled = false;
      let corked = false;
      const uncork = () => {
        if (!corked) return;
        corked = false;
        sink.uncork!();
      };
      const settle = (result: ForwardResult) => {
        if (settled) return;
        settled = true;
        responseEnds.settled();
        deadlines.done(progress);
        resolve(result);
      };
      // If the client goes away, stop reading from upstream at once.
      sink.once('close', () => {
        if (!sink.writableFinished) controller?.abort(new Error('client closed the connection'));
      });
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
          if (body === null) progress.sent = true;
        },
        onResponseStart(c, statusCode, headers) {
          if (statusCode < 200) return; // 1xx informational: node answers 100-continue itself
          status = statusCode;
          progress.headReceived = true;
          const outgoing: Record<string, string | string[]> = {};
          for (const name in headers) {
            if (!RESPONSE_HOP_HEADERS.has(name)) outgoing[name] = headers[name]!;
          }
          try {
            sink.writeHead(statusCode, outgoing);
          } catch (error) {
            c.abort(error as Error);
          }
        },
        onResponseData(c, chunk) {
          progress.bytes += chunk.length;
          // The records that one read from the upstream decrypts to arrive as separate chunks;
          // corked until the loop's next turn they leave in one TLS write (one syscall) instead
          // of one each.
          if (!corked && sink.cork !== undefined) {
            corked = true;
            sink.cork();
            setImmediate(uncork);
          }
          // SECURITY/DoS: stream, never buffer — a client that stops reading pauses the upstream.
          if (!sink.write(chunk)) {
            c.pause();
            progress.paused = true;
            sink.once('drain', () => {
              progress.paused = false;
              c.resume();
            });
          }
        },
        onResponseEnd() {
          // end() while still corked: node's end() adds an empty chunk when writes are pending,
          // and uncorked first that chunk leaves as a TLS write and a write(2) of its own (one
          // syscall and one write request per response). Corked, it joins the batch that end()
          // flushes. That end() comes at the end of this loop turn, with those of every other
          // response completed in it, unless this exchange is the only one (response-ends.ts).
          corked = false;
          responseEnds.end(sink);
          settle({ ok: true, status, bytesOut: progress.bytes });
        },
        onResponseError(_c, error) {
          const failure = classifyUpstreamError(error, target.host);
          settle({ ok: false, failure, headersSent: sink.headersSent, bytesOut: progress.bytes });
        },
      };
      responseEnds.started();
      try {
        pool.dispatch(
          {
            origin,
            path: request.path,
            method: request.method,
            headers: request.headers,
            body,
            // undici derives SNI from Host unless told; the policy-checked host is the only name.
            servername,
          } as Dispatcher.DispatchOptions,
          handler,
        );
      } catch (error) {
        // undici reports its errors to the handler; this is for anything else
        if (!settled) {
          settled = true;
          responseEnds.settled();
          deadlines.done(progress);
        }
        throw error;
      }
    });
  }

  /** Opens an upgraded (WebSocket) stream to the upstream. */
  async upgrade(target: UpstreamTarget, request: Omit<UpstreamRequest, 'body'>, protocol: string): Promise<{ headers: Record<string, string | string[]>; socket: Duplex }> {
    const refusal = this.options.literalRefusal(target.host);
    if (refusal !== null) throw refusal;
    await loadUndici();
    const { pool } = this.poolFor(target, originOf(target));
    const result = await pool.upgrade({
      path: request.path,
      method: request.method,
      headers: request.headers,
      protocol,
      // The pools' own head timeout is off (this.deadlines times forwarded responses); an upgrade
      // is rare, so it uses undici's, which reads this per request.
      headersTimeout: this.options.headersTimeoutMs,
    } as Dispatcher.UpgradeOptions);
    return { headers: result.headers as Record<string, string | string[]>, socket: result.socket };
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    this.deadlines.close();
    await Promise.all([...pools.map(({ pool }) => pool.destroy().catch(() => undefined)), this.http2Value?.close()]);
  }

  private get http2(): Http2Upstream {
    this.http2Value ??= new Http2Upstream({
      trustContext: () => this.trustContext,
      lookup: this.options.lookup,
      connectTimeoutMs: this.options.connectTimeoutMs,
      headersTimeoutMs: this.options.headersTimeoutMs,
      bodyTimeoutMs: this.options.bodyTimeoutMs,
      idleTimeoutMs: this.options.keepAliveTimeoutMs,
      maxSessions: this.options.maxOrigins,
      viaProxy: (target) => this.viaProxy(target),
      connectThroughProxy: (target) => this.connectThroughProxy(target, ['h2']),
    });
    return this.http2Value;
  }

  private poolFor(target: UpstreamTarget, origin: string): PoolEntry {
    const known = this.pools.get(origin);
    if (known) return known;
    const servername = upstreamServername(target);
    // Through the proxy, each of the pool's connections is a tunnel: pooled per (proxy, host, port)
    // as direct ones are per (host, port), the proxy being one for the whole client.
    const tunnelConnector: import('undici').buildConnector.connector | null = this.viaProxy(target)
      ? (_options, callback) => {
          this.connectThroughProxy(target, ['http/1.1']).then(
            (socket) => callback(null, socket as import('node:net').Socket),
            (error: Error) => callback(error, null),
          );
        }
      : null;
    const pool = new undici!.Pool(origin, {
      connections: this.options.connectionsPerOrigin,
      connectTimeout: this.options.connectTimeoutMs,
      // Off: undici swaps a timer per request for these, and the ones it clears linger until its
      // next tick; this.deadlines applies the same limits with one sweep (response-deadlines.ts).
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: this.options.keepAliveTimeoutMs,
      connect: tunnelConnector ?? {
        secureContext: this.trustContext,
        rejectUnauthorized: true,
        ...(servername !== undefined ? { servername } : {}),
        lookup: this.options.lookup,
        noDelay: true,
        highWaterMark: UPSTREAM_SOCKET_HIGH_WATER_MARK,
      } as object,
    });
    const entry: PoolEntry = { pool, servername };
    this.pools.set(origin, entry);
    return entry;
  }

  /**
   * An opaque TCP connection (a `protocol: tcp` rule) through the upstream proxy: a CONNECT tunnel,
   * once the destination is resolved and checked. Null when the host is reached directly.
   */
  tcpThroughProxy(host: string, port: number): Promise<Duplex> | null {
    const target: UpstreamTarget = { scheme: 'http', host, port };
    return this.viaProxy(target) ? this.connectThroughProxy(target, []) : null;
  }

  private viaProxy(target: UpstreamTarget): boolean {
    return this.proxy !== null && this.proxy.applies(target.host);
  }

  /**
   * A connection to the target through the upstream proxy: a CONNECT tunnel, then (https) TLS
   * inside it with the same verification, server name and ALPN as a direct connection.
   */
  private connectThroughProxy(target: UpstreamTarget, alpn: string[]): Promise<Duplex> {
    const proxy = this.proxy!;
    const timeoutMs = this.options.connectTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      // SECURITY: the gateway resolves and checks the destination itself before it asks the proxy:
      // an allowed name that resolves to a private address is refused here as it is when direct,
      // and a name that does not resolve fails as upstream-dns — test/e2e/upstream-proxy.test.ts
      this.options.lookup(target.host, { all: true }, (error: Error | null) => (error ? reject(error) : resolve()));
    })
      .then(() => proxy.openTunnel(target.host, target.port, timeoutMs))
      .then((tunnel) => {
        tunnel.socket.setKeepAlive(true, 60_000);
        if (target.scheme === 'http') return plainTunnel(tunnel);
        const servername = upstreamServername(target);
        const socket = tlsThroughTunnel(tunnel, {
          host: target.host,
          ...(servername !== undefined ? { servername } : {}),
          secureContext: this.trustContext,
          rejectUnauthorized: true,
          ALPNProtocols: alpn,
          highWaterMark: UPSTREAM_SOCKET_HIGH_WATER_MARK,
        } as tls.ConnectionOptions);
        return new Promise<Duplex>((resolve, reject) => {
          const timer = setTimeout(() => socket.destroy(Object.assign(new Error('TLS handshake through the upstream proxy timed out'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), timeoutMs);
          socket.once('secureConnect', () => {
            clearTimeout(timer);
            socket.off('error', onError);
            resolve(socket);
          });
          const onError = (error: Error) => {
            clearTimeout(timer);
            reject(error);
          };
          socket.once('error', onError);
        });
      });
  }
}

/**
 * Write buffer of an upstream socket before it asks for a pause (and of the stream that feeds it an
 * upload, request-pipeline.ts). undici's default (16 KiB, one TLS record) made every chunk of an
 * upload a pause and a resume of the client's socket: two epoll changes and a wake-up per 16 KiB.
 */
export const UPSTREAM_SOCKET_HIGH_WATER_MARK = 64 * 1024;

interface PoolEntry {
  readonly pool: Pool;
  /** The origin's TLS server name (upstreamServername), given to undici with every request. */
  readonly servername: string | undefined;
}

function originOf(target: UpstreamTarget): string {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  return `${target.scheme}://${host}:${target.port}`;
}
