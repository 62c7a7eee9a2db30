// Sends allowed traffic out through a corporate proxy (--upstream-proxy): an HTTP CONNECT tunnel
// per upstream connection, to `host:port`, over plain TCP or TLS to the proxy.
// The gateway has already decided before it asks the proxy: the policy allowed the host, the
// gateway's own resolver resolved it, and the private-destination check passed (UpstreamClient
// runs the lookup first). The CONNECT still names the host, not that address, because corporate
// proxies filter by name; the address the proxy then connects to is the proxy's choice.
import type { Duplex } from 'node:stream';
import type net from 'node:net';
import type tls from 'node:tls';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { UpstreamProxyFailureKind } from '../../reason-codes.js';
import { formatAuthority } from '../connection-context.js';

/** Environment variable with `user:password` for the proxy (kept out of the URL, which `ps` shows). */
export const UPSTREAM_PROXY_AUTH_ENV = 'SRT_GW_UPSTREAM_PROXY_AUTH';

/** Bound on the proxy's answer to CONNECT (status line and headers); a longer one is refused. */
export const MAX_CONNECT_RESPONSE_HEAD_BYTES = 16 * 1024;

export interface UpstreamProxyOptions {
  /** `http://host:port` or `https://host:port` (TLS to the proxy); userinfo is taken as credentials. */
  url: string;
  /** `user:password` for `Proxy-Authorization: Basic`; overrides the URL's userinfo. */
  auth?: string;
  /** Hosts reached directly: `example.com` (and its subdomains), `.example.com` (subdomains only), `*` (all). */
  bypass?: readonly string[];
}

export interface UpstreamProxyConfig {
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** The `Proxy-Authorization` value, or null. */
  readonly authorization: string | null;
  /** Normalised --no-upstream-proxy-for entries. */
  readonly bypass: readonly string[];
  /** Whether the credentials came from the URL (which other local users may read in `ps`). */
  readonly credentialsInUrl: boolean;
}

/** Why a tunnel could not be opened; `kind` becomes the reason code `upstream-proxy-<kind>`. */
export class UpstreamProxyError extends SrtGwError {
  constructor(
    readonly kind: UpstreamProxyFailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ErrorCodes.UPSTREAM_PROXY, message, options);
  }
}

function configError(message: string): SrtGwError {
  return new SrtGwError(ErrorCodes.CONFIG_INVALID, `--upstream-proxy: ${message}`);
}

/** Parses and checks the proxy settings; throws SrtGwError(CONFIG_INVALID) with what to fix. */
export function parseUpstreamProxy(options: UpstreamProxyOptions): UpstreamProxyConfig {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw configError(`"${redactUrl(options.url)}" is not a URL (expected http://host:port or https://host:port)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError(`scheme ${url.protocol} is not supported (use http:// or https://)`);
  if (url.hostname === '') throw configError('the URL names no host');
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') throw configError('the URL must be only scheme://host:port');
  const secure = url.protocol === 'https:';
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const credentialsInUrl = url.username !== '' || url.password !== '';
  let credentials: string | null = null;
  if (options.auth !== undefined && options.auth !== '') credentials = options.auth;
  else if (credentialsInUrl) credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  if (credentials !== null && !credentials.includes(':')) throw configError(`${UPSTREAM_PROXY_AUTH_ENV} must be user:password`);
  if (credentials !== null && /[\r\n]/.test(credentials)) throw configError('the credentials contain a line break');
  const bypass = (options.bypass ?? []).flatMap((entry) => entry.split(',')).map((entry) => entry.trim().toLowerCase()).filter((entry) => entry !== '');
  for (const entry of bypass) {
    if (!/^(\*|\*?\.?[a-z0-9_.:\-[\]]+)$/.test(entry)) throw configError(`--no-upstream-proxy-for entry "${entry}" is not a host or .suffix`);
  }
  return {
    secure,
    host,
    port,
    authorization: credentials === null ? null : `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`,
    bypass: bypass.map((entry) => (entry.startsWith('*.') ? entry.slice(1) : entry)),
    credentialsInUrl,
  };
}

/** The URL without its credentials, for messages and logs. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

/** Whether `host` is reached directly: NO_PROXY-style host and suffix matching. */
export function bypassesProxy(bypass: readonly string[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  for (const entry of bypass) {
    if (entry === '*') return true;
    if (entry.startsWith('.')) {
      if (name.endsWith(entry)) return true;
    } else if (name === entry || name.endsWith(`.${entry}`)) return true;
  }
  return false;
}

export interface ConnectResponseHead {
  status: number;
  statusText: string;
  /** Lower-case header names. */
  headers: Map<string, string>;
  /** Bytes the proxy sent after the head: the first bytes of the tunnel (e.g. the server's TLS hello). */
  rest: Buffer;
}

/**
 * Reads the proxy's answer to CONNECT from chunks as they arrive. The head may come split over
 * any number of packets, and the tunnel's first bytes may come in the same packet as its end.
 */
export class ConnectResponseReader {
  private buffered: Buffer = Buffer.alloc(0);

  /** The head once it is complete, else null (feed more); throws UpstreamProxyError when malformed. */
  push(chunk: Buffer): ConnectResponseHead | null {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const end = this.buffered.indexOf('\r\n\r\n');
    if (end === -1) {
      if (this.buffered.length > MAX_CONNECT_RESPONSE_HEAD_BYTES) throw new UpstreamProxyError('error', 'the upstream proxy answered CONNECT with a head that is too large');
      return null;
    }
    if (end > MAX_CONNECT_RESPONSE_HEAD_BYTES) throw new UpstreamProxyError('error', 'the upstream proxy answered CONNECT with a head that is too large');
    const lines = this.buffered.subarray(0, end).toString('latin1').split('\r\n');
    const statusLine = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]!);
    if (statusLine === null) throw new UpstreamProxyError('error', 'the upstream proxy did not answer CONNECT with HTTP/1.x');
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) throw new UpstreamProxyError('error', 'the upstream proxy answered CONNECT with a malformed header');
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    return { status: Number(statusLine[1]), statusText: statusLine[2] ?? '', headers, rest: this.buffered.subarray(end + 4) };
  }
}

/** The failure a non-2xx answer to CONNECT stands for. */
export function connectStatusFailure(status: number, target: string): UpstreamProxyError {
  // 401: some proxies (tinyproxy) answer a CONNECT without good credentials so, not 407.
  if (status === 407 || status === 401) return new UpstreamProxyError('auth-failed', `the upstream proxy refused its credentials for ${target} (${status}; check ${UPSTREAM_PROXY_AUTH_ENV})`);
  if (status === 403) return new UpstreamProxyError('denied', `the upstream proxy denied the connection to ${target} (403)`);
  if (status === 504 || status === 408) return new UpstreamProxyError('timeout', `the upstream proxy timed out reaching ${target} (${status})`);
  return new UpstreamProxyError('error', `the upstream proxy answered CONNECT to ${target} with ${status}`);
}

const REFUSED_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** Opens CONNECT tunnels through one proxy. */
export class UpstreamProxy {
  constructor(
    readonly config: UpstreamProxyConfig,
    /** The trust for an https:// proxy's certificate (the same as for upstreams: system + --upstream-ca). */
    private readonly trustContext: () => tls.SecureContext,
  ) {}

  /** Whether connections to `host` go through the proxy (--no-upstream-proxy-for). */
  applies(host: string): boolean {
    return !bypassesProxy(this.config.bypass, host);
  }

  /** A key that tells pools and sessions through this proxy apart from direct ones. */
  get key(): string {
    return `${this.config.secure ? 'https' : 'http'}://${formatAuthority(this.config.host, this.config.port)}`;
  }

  /**
   * A tunnel to `host:port`; its first bytes, if the proxy sent any after its 200, in `head`
   * (tlsThroughTunnel and plainTunnel hand them on). Fails with UpstreamProxyError.
   */
  openTunnel(host: string, port: number, timeoutMs: number): Promise<Tunnel> {
    const target = formatAuthority(host, port);
    const { config } = this;
    return new Promise<Tunnel>((resolve, reject) => {
      let socket: net.Socket | tls.TLSSocket;
      let done = false;
      const fail = (error: UpstreamProxyError) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(new UpstreamProxyError('timeout', `the upstream proxy did not open a tunnel to ${target} in time`)), timeoutMs);
      const sendConnect = () => {
        // SECURITY: the CONNECT names the policy-checked host (the gateway resolved and checked it
        // already); never an address or a name the client sent — test/e2e/upstream-proxy.test.ts
        const lines = [`CONNECT ${target} HTTP/1.1`, `Host: ${target}`];
        if (config.authorization !== null) lines.push(`Proxy-Authorization: ${config.authorization}`);
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      };
      if (config.secure) {
        socket = process.getBuiltinModule('node:tls').connect({
          host: config.host,
          port: config.port,
          ...(process.getBuiltinModule('node:net').isIP(config.host) === 0 ? { servername: config.host } : {}),
          secureContext: this.trustContext(),
          rejectUnauthorized: true,
          ALPNProtocols: ['http/1.1'],
        });
        socket.once('secureConnect', sendConnect);
      } else {
        socket = process.getBuiltinModule('node:net').connect({ host: config.host, port: config.port });
        socket.once('connect', sendConnect);
      }
      socket.setNoDelay(true);
      const reader = new ConnectResponseReader();
      const onData = (chunk: Buffer) => {
        let head: ConnectResponseHead | null;
        try {
          head = reader.push(chunk);
        } catch (error) {
          fail(error as UpstreamProxyError);
          return;
        }
        if (head === null) return;
        if (head.status < 200 || head.status > 299) {
          fail(connectStatusFailure(head.status, target));
          return;
        }
        done = true;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        socket.off('end', onEnd);
        socket.pause();
        resolve({ socket, head: head.rest });
      };
      const onError = (error: Error & { code?: string }) => {
        const code = error.code ?? '';
        if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SIGNATURE|ISSUER/.test(code)) {
          fail(new UpstreamProxyError('certificate', `the upstream proxy's certificate did not verify (${code})`, { cause: error }));
        } else if (REFUSED_CODES.has(code)) {
          fail(new UpstreamProxyError('refused', `the upstream proxy could not be reached (${code})`, { cause: error }));
        } else {
          fail(new UpstreamProxyError('error', `the upstream proxy connection failed${code ? ` (${code})` : ''}`, { cause: error }));
        }
      };
      const onEnd = () => fail(new UpstreamProxyError('refused', `the upstream proxy closed the connection before answering CONNECT to ${target}`));
      socket.on('data', onData);
      socket.on('error', onError);
      socket.on('end', onEnd);
    });
  }
}

/** An open CONNECT tunnel: the socket to the proxy and the bytes already read past the proxy's head. */
export interface Tunnel {
  readonly socket: net.Socket;
  readonly head: Buffer;
}

/** The tunnel as a plain stream (http:// upstreams): the head goes back in front of what follows. */
export function plainTunnel(tunnel: Tunnel): net.Socket {
  if (tunnel.head.length > 0) tunnel.socket.unshift(tunnel.head);
  tunnel.socket.resume();
  return tunnel.socket;
}

/**
 * TLS to the upstream inside the tunnel, verified as a direct connection is (the caller passes the
 * same trust, server name and ALPN).
 */
export function tlsThroughTunnel(tunnel: Tunnel, options: tls.ConnectionOptions): tls.TLSSocket {
  // node's TLS reads a connected socket's handle directly, past the stream, so bytes unshifted
  // into the stream would be skipped: with a head, TLS reads a stream that yields it first.
  const socket = tunnel.head.length > 0 ? withPrefix(tunnel.socket, tunnel.head) : tunnel.socket;
  const secured = process.getBuiltinModule('node:tls').connect({ ...options, socket });
  // The connection to the proxy goes with the TLS inside it (a pool that closes an idle
  // connection closes this one), else tunnels to an https:// proxy would linger.
  secured.once('close', () => tunnel.socket.destroy());
  return secured;
}

function withPrefix(socket: net.Socket, head: Buffer): Duplex {
  const wrapped: Duplex = new (process.getBuiltinModule('node:stream').Duplex)({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void) {
      socket.write(chunk, encoding, callback);
    },
    final(callback: (error?: Error | null) => void) {
      socket.end();
      callback();
    },
    destroy(error: Error | null, callback: (error?: Error | null) => void) {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  wrapped.push(head);
  socket.on('data', (chunk: Buffer) => {
    if (!wrapped.push(chunk)) socket.pause();
  });
  socket.on('end', () => wrapped.push(null));
  socket.on('error', (error) => wrapped.destroy(error));
  socket.on('close', () => wrapped.destroy());
  return wrapped;
}
