// Turns an upstream failure into a reason a sandboxed user can act on, without leaking
// internal error text (which may contain addresses or paths) into the sandbox.
import { ErrorCodes, isSrtGwError } from '../errors.js';

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

export interface UpstreamFailure {
  kind: 'dns' | 'refused' | 'certificate' | 'timeout' | 'reset' | 'other';
  reason: string;
}

export function classifyUpstreamError(error: unknown, host: string): UpstreamFailure {
  const code = findCode(error);
  if (isSrtGwError(error, ErrorCodes.UPSTREAM_DNS) || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ENODATA') {
    return { kind: 'dns', reason: `could not resolve ${host}` };
  }
  if (code === 'ECONNREFUSED') return { kind: 'refused', reason: `${host} refused the connection` };
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return { kind: 'refused', reason: `${host} is unreachable` };
  if (code !== undefined && (CERTIFICATE_CODES.has(code) || code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS'))) {
    return { kind: 'certificate', reason: `upstream certificate invalid for ${host}: ${code}` };
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') {
    return { kind: 'timeout', reason: `${host} did not answer in time` };
  }
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return { kind: 'reset', reason: `${host} closed the connection` };
  }
  return { kind: 'other', reason: `request to ${host} failed${code ? ` (${code})` : ''}` };
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
