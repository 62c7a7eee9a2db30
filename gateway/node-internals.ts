// Every use srt-gw makes of node's private internals, in one place. Each is checked when the part
// that needs it starts (the gateway's HTTP side at start-up, its TLS side when it is built, the
// leaf cache and the heap tuning on first use), against the node that runs: one that lacks it gets
// the public path where node has one, else a NodeInternalsError that names what is missing and
// which node versions srt-gw was built for, never a gateway that silently checks less.
import { ErrorCodes, SrtGwError } from '../errors.js';

/** The node versions these internals were checked against (package.json engines and CI). */
const CHECKED_ON = 'node 20';

export class NodeInternalsError extends SrtGwError {
  constructor(what: string, consequence: string) {
    super(ErrorCodes.NODE_UNSUPPORTED, `node ${process.version} lacks ${what}, which srt-gw relies on (checked on ${CHECKED_ON}): ${consequence}; run srt-gw on ${CHECKED_ON}`);
    this.name = 'NodeInternalsError';
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP servers that never listen

const CONNECTIONS_CHECK_TIMER = 'http.server.connectionsCheckingInterval';

/**
 * node enforces headersTimeout (slowloris) from a timer it starts on 'listening'. The tunnel
 * terminator's servers never listen (connections are handed to them), so the timer is started by
 * emitting 'listening'; server.close() stops it. Throws NodeInternalsError when no timer started:
 * a server that would not time out slow request heads must not serve.
 */
export function startHeaderTimeoutChecks(server: object & { emit(event: 'listening'): boolean }, intervalMs: number): void {
  Object.assign(server, { connectionsCheckingInterval: intervalMs });
  server.emit('listening');
  if (!hasConnectionsCheckTimer(server)) {
    throw new NodeInternalsError("an HTTP server's connection check timer started on 'listening'", 'request heads would not be timed (slowloris) on tunnelled connections');
  }
}

function hasConnectionsCheckTimer(server: object): boolean {
  const key = Object.getOwnPropertySymbols(server).find((symbol) => symbol.description === CONNECTIONS_CHECK_TIMER);
  const timer = key === undefined ? undefined : (server as Record<symbol, unknown>)[key];
  return typeof timer === 'object' && timer !== null && typeof (timer as { hasRef?: unknown }).hasRef === 'function';
}

// ---------------------------------------------------------------------------------------------
// The TLS server's default credentials (`_sharedCreds`)

/** A TLS server (tls.Server, http2.Http2SecureServer) as node builds it: its default credentials. */
interface ServerWithSharedCreds {
  _sharedCreds?: unknown;
}

/**
 * Whether `server` holds its default credentials in `_sharedCreds`, a SecureContext: then a
 * client that sends no SNI can be given a tunnel's leaf (setDefaultSecureContext). Without it the
 * public path remains: the SNICallback hands out the leaf, and clients without SNI fail their handshake.
 */
export function canSetDefaultSecureContext(server: object): boolean {
  const creds = (server as ServerWithSharedCreds)._sharedCreds;
  return isSecureContext(creds);
}

/** A tls.SecureContext: node's SecureContext object holding its native context. */
function isSecureContext(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  return value.constructor?.name === 'SecureContext' && typeof (value as { context?: unknown }).context === 'object';
}

/**
 * Gives the next connection `server` accepts `context` as its default credentials (for a client
 * that sends no SNI). node builds the TLSSocket synchronously inside emit('connection') from
 * `server._sharedCreds`, so setting it just before that emit gives that connection this context.
 * Only after canSetDefaultSecureContext(server) said yes.
 */
export function setDefaultSecureContext(server: object, context: unknown): void {
  (server as ServerWithSharedCreds)._sharedCreds = context;
}

// ---------------------------------------------------------------------------------------------
// The socket a TLSSocket wraps (`_parent`)

/** The socket a server-side TLSSocket wraps (node's `_parent`), or undefined. */
export function wrappedSocketOf(tlsSocket: object): object | undefined {
  const parent = (tlsSocket as { _parent?: unknown })._parent;
  return typeof parent === 'object' && parent !== null ? parent : undefined;
}

/**
 * Checks that a TLSSocket built around `raw` names it as `_parent` (the tunnel terminator finds a
 * connection's tunnel host through it; nothing public leads from the TLS socket to the tunnel).
 * Throws NodeInternalsError otherwise: every TLS connection would be refused as for no tunnel.
 */
export function checkWrappedSocket(tlsSocket: object, raw: object): void {
  if (wrappedSocketOf(tlsSocket) !== raw) {
    throw new NodeInternalsError('TLSSocket._parent, the socket a TLS connection wraps', 'TLS connections cannot be matched to the tunnel they came through');
  }
}

/** The outcome of checkTlsSocketWrapping, once per process: it is a fact about the node that runs. */
let tlsSocketWrapping: NodeInternalsError | null | undefined;

/**
 * Builds one server-side TLSSocket around a fresh socket with `secureContext` and checks it with
 * checkWrappedSocket (~0.25 ms, once per process, when the first TLS connection arrives).
 */
export function checkTlsSocketWrapping(secureContext: object): void {
  if (tlsSocketWrapping === undefined) {
    const { Socket } = process.getBuiltinModule('node:net');
    const raw = new Socket();
    const probe = new (process.getBuiltinModule('node:tls').TLSSocket)(raw, { isServer: true, secureContext: secureContext as import('node:tls').SecureContext });
    try {
      checkWrappedSocket(probe, raw);
      tlsSocketWrapping = null;
    } catch (error) {
      tlsSocketWrapping = error as NodeInternalsError;
    } finally {
      probe.destroy();
      raw.destroy();
    }
  }
  if (tlsSocketWrapping !== null) throw tlsSocketWrapping;
}

// ---------------------------------------------------------------------------------------------
// Replacing a SecureContext's certificate (native `setCert`)

/** The native half of a tls.SecureContext (node's `context.context`), whose certificate can be set. */
export interface ReplaceableCertificate {
  setCert(certPem: string): void;
}

/**
 * The native context of `context` when node exposes its `setCert`, else null: the caller then
 * takes the public path (tls.createSecureContext with the certificate and key).
 */
export function replaceableCertificateOf(context: object): ReplaceableCertificate | null {
  const native = (context as { context?: Partial<ReplaceableCertificate> }).context;
  return typeof native?.setCert === 'function' ? (native as ReplaceableCertificate) : null;
}

// ---------------------------------------------------------------------------------------------
// V8 flags at run time

/** What srt-gw uses of node:v8 to set flags (documented, but "behaviour undefined" once V8 runs). */
export interface V8FlagSetter {
  setFlagsFromString?: unknown;
}

/** Whether node lets V8 flags be set at run time (setV8Flag). */
export function canSetV8Flags(v8: V8FlagSetter): boolean {
  return typeof v8.setFlagsFromString === 'function';
}

/**
 * Sets V8 `flag` (e.g. "--heap-growing-percent=100") at run time. Returns false, having set
 * nothing, when node offers no setFlagsFromString: the tuning that asked is then skipped, and V8
 * keeps its own defaults.
 */
export function setV8Flag(v8: V8FlagSetter, flag: string): boolean {
  if (typeof v8.setFlagsFromString !== 'function') return false;
  (v8.setFlagsFromString as (flags: string) => void)(flag);
  return true;
}
