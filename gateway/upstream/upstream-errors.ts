// Turns an upstream failure into a reason a sandboxed user can act on, without leaking
// internal error text (which may contain addresses or paths) into the sandbox.
import { ErrorCodes, isSrtGwError } from '../../errors.js';
import type { UpstreamFailureKind } from '../../reason-codes.js';
import { UpstreamProxyError } from './upstream-proxy.js';

const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/** The code of the error an upstream that will not speak HTTP/2 (ALPN) fails a gRPC call with. */
export const NOT_HTTP2_CODE = 'ERR_SRTGW_UPSTREAM_NOT_HTTP2';

export type UpstreamFailure =
  /** The resolved address is private and the policy does not open it: a denial, not a failure. */
  | { kind: 'destination'; reason: string }
  | { kind: UpstreamFailureKind; reason: string };

export function classifyUpstreamError(error: unknown, host: string): UpstreamFailure {
  // Our own message ("destination 127.0.0.1 is a private address"), written for the client.
  const privateDestination = findError(error, ErrorCodes.UPSTREAM_PRIVATE_DESTINATION);
  if (privateDestination !== undefined) return { kind: 'destination', reason: privateDestination.message };
  // Before the error's own code: a proxy that cannot be reached says ECONNREFUSED too, and the
  // fix (the proxy, not the upstream) is another one.
  const proxyFailure = findError(error, ErrorCodes.UPSTREAM_PROXY);
  if (proxyFailure instanceof UpstreamProxyError) return { kind: `proxy-${proxyFailure.kind}`, reason: proxyFailure.message };
  const code = findCode(error);
  if (isSrtGwError(error, ErrorCodes.UPSTREAM_DNS) || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA') {
    return { kind: 'dns', reason: `could not resolve ${host}` };
  }
  if (code === 'ECONNREFUSED') return { kind: 'refused', reason: `${host} refused the connection` };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { kind: 'refused', reason: `${host} is unreachable` };
  // Either the server picked no protocol it shares (alert 120) or it went on with HTTP/1.1.
  if (code === NOT_HTTP2_CODE || code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') {
    return { kind: 'other', reason: `${host} does not speak HTTP/2, which gRPC needs` };
  }
  if (code !== undefined && (CERTIFICATE_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS'))) {
    return { kind: 'certificate', reason: `upstream certificate invalid for ${host}: ${code}` };
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') {
    return { kind: 'timeout', reason: `${host} did not answer in time` };
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE' || code === 'ERR_HTTP2_STREAM_ERROR' || code === 'ERR_HTTP2_SESSION_ERROR' || code === 'ERR_HTTP2_GOAWAY_SESSION') {
    return { kind: 'reset', reason: `${host} closed the connection` };
  }
  return { kind: 'other', reason: `request to ${host} failed${code ? ` (${code})` : ''}` };
}

/** The error with `code` in the chain of causes (undici may wrap what the lookup failed with). */
function findError(error: unknown, code: string): Error | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    if ((current as { code?: unknown }).code === code && current instanceof Error) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function findCode(error: unknown): string | undefined {
  // undici wraps socket errors; the useful code is often on the cause.
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR_SOCKET') return code;
    if (typeof code === 'string' && !(current as { cause?: unknown }).cause) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
