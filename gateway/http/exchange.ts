// The one interface HTTP/1.1 and HTTP/2 requests are reduced to before any security check.
// Each protocol has its own reader (http1-exchange.ts, http2-exchange.ts), so the authority
// check and the policy see the same facts whichever protocol carried the request.
import { normalizePath } from '../../policies/path.js';
import type { ReasonCode } from '../../reason-codes.js';
import type { HttpProtocol } from '../audit/events.js';

export interface ExchangeHead {
  protocol: HttpProtocol;
  /** Upper case. */
  method: string;
  /** Host named by the request (Host / :authority / absolute-form), normalised; null if absent. */
  authorityHost: string | null;
  /** Port named by the request, or null when it named none. */
  authorityPort: number | null;
  /** Scheme of an absolute-form request target; null for origin-form. */
  scheme: 'http' | 'https' | null;
  /** Origin-form target: path plus query, exactly as sent. */
  target: string;
  /** Headers to send upstream as a flat [name, value, ...] list: hop-by-hop, proxy and pseudo headers and Host removed. */
  forwardHeaders: string[];
  /** The request may carry a body (Content-Length > 0, Transfer-Encoding, or an open h2 stream). */
  hasBody: boolean;
  /** Set for HTTP/1.1 Upgrade requests (lower case, e.g. "websocket"). */
  upgrade: string | null;
  /** A gRPC call: HTTP/2, content-type application/grpc[+…|;…], and `te: trailers` (its status comes in trailers). */
  grpc: boolean;
}

/** application/grpc, application/grpc+proto, application/grpc;charset=… — not application/grpc-web. */
export function isGrpcContentType(value: string | undefined): boolean {
  return value !== undefined && /^application\/grpc(?:[+;]|$)/i.test(value.trim());
}

/** `method`: on a refused request, its method when it is known (for the audit line). */
export type ExchangeReadResult =
  | { ok: true; head: ExchangeHead }
  /** `code`: the refusal's code when it is not malformed-request. */
  | { ok: false; reason: string; code?: ReasonCode; method?: string };

/**
 * A tunnel is bound to the one host it was opened (and policy-checked) for: a CONNECT inside it
 * would name another — test/e2e/smuggling.test.ts.
 */
export const CONNECT_IN_TUNNEL_REASON = 'CONNECT inside a tunnel is not supported';

export { HOP_BY_HOP_HEADERS } from '../../policies/hop-by-hop-headers.js';

/** Splits "host", "host:port", "[v6]" or "[v6]:port"; returns null when malformed. */
export function splitAuthority(authority: string): { host: string; port: number | null } | null {
  let host: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    if (end < 0) return null;
    host = authority.slice(1, end);
    const rest = authority.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon >= 0) {
      if (authority.indexOf(':') !== colon) return null; // bare IPv6 without brackets is not an authority
      host = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
    } else {
      host = authority;
    }
  }
  if (host === '') return null;
  if (portText === undefined) return { host, port: null };
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  return { host, port };
}

/** Names listed in a Connection header are hop-by-hop too. */
export function connectionNominatedHeaders(connectionValues: string[]): Set<string> {
  const names = new Set<string>();
  for (const value of connectionValues) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name) names.add(name);
    }
  }
  return names;
}

/**
 * The code of a path findAmbiguousEncoding refused: invalid-path when it does not even normalise
 * (an invalid escape, an ambiguous segment; the policy says the same of it), else ambiguous-path.
 */
export function refusedPathCode(rawPath: string): ReasonCode {
  return 'error' in normalizePath(rawPath) ? 'invalid-path' : 'ambiguous-path';
}
