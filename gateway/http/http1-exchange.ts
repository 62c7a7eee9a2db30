// Reads an HTTP/1.1 request into an ExchangeHead, refusing the ambiguous shapes that let a
// request mean one thing to us and another upstream.
import type http from 'node:http';
import { normalizeHost } from '../../policies/host.js';
import { findAmbiguousEncoding } from '../../policies/path.js';
import {
  CONNECT_IN_TUNNEL_REASON,
  connectionNominatedHeaders,
  HOP_BY_HOP_HEADERS,
  refusedPathCode,
  splitAuthority,
  type ExchangeReadResult,
} from './exchange.js';

export function readHttp1Exchange(req: http.IncomingMessage): ExchangeReadResult {
  if (req.method === 'CONNECT') return { ok: false, reason: CONNECT_IN_TUNNEL_REASON, method: 'CONNECT' };
  const raw = req.rawHeaders;
  let hostHeader: string | null = null;
  let hostCount = 0;
  const connectionValues: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'host') {
      hostCount++;
      hostHeader = raw[i + 1]!;
    } else if (name === 'connection' || name === 'proxy-connection') {
      connectionValues.push(raw[i + 1]!);
    }
  }
  // SECURITY: two Host headers let the gateway and the upstream disagree on the target
  // (request smuggling / fronting) — test/e2e/smuggling.test.ts
  if (hostCount > 1) return { ok: false, reason: 'the request has more than one Host header' };
  if (hostHeader === null) return { ok: false, reason: 'the request has no Host header' };

  const hostParts = splitAuthority(hostHeader.trim());
  const host = hostParts && normalizeHost(hostParts.host);
  if (!hostParts || !host) return { ok: false, reason: 'the Host header is not a valid host[:port]' };

  let target = req.url ?? '';
  let authorityPort = hostParts.port;
  let scheme: 'http' | 'https' | null = null;
  if (!target.startsWith('/')) {
    // Absolute-form (a proxy request, or legal but rare inside a tunnel).
    // SECURITY: the URL parser below resolves "%2e%2e" and reads "\" as "/", so the path as sent
    // is checked before it: an upstream that decodes it could read another path —
    // test/e2e/path-traversal.test.ts
    const path = absoluteFormPath(target);
    const ambiguous = findAmbiguousEncoding(path);
    if (ambiguous !== null) return { ok: false, reason: `request path ${ambiguous}`, code: refusedPathCode(path) };
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      return { ok: false, reason: 'the request target is neither a path nor an absolute URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:' && url.protocol !== 'ws:' && url.protocol !== 'wss:') {
      return { ok: false, reason: `unsupported scheme ${url.protocol.slice(0, -1)}` };
    }
    if (url.username || url.password) return { ok: false, reason: 'credentials in the request URL are not allowed' };
    const urlHost = normalizeHost(url.hostname.replace(/^\[|\]$/g, ''));
    const defaultPort = url.protocol === 'https:' || url.protocol === 'wss:' ? 443 : 80;
    const urlPort = url.port === '' ? defaultPort : Number(url.port);
    // SECURITY: absolute-form host must equal Host, else the upstream may route by the other
    // one — test/e2e/smuggling.test.ts
    if (urlHost !== host || (hostParts.port ?? defaultPort) !== urlPort) {
      return { ok: false, reason: 'the absolute-form URL names a different host than the Host header' };
    }
    authorityPort = urlPort;
    scheme = defaultPort === 443 ? 'https' : 'http';
    target = url.pathname + url.search;
  }

  const nominated = connectionNominatedHeaders(connectionValues);
  const forwardHeaders: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP_HEADERS.has(name) || nominated.has(name)) continue;
    forwardHeaders.push(name, raw[i + 1]!);
  }

  const upgradeHeader = req.headers.upgrade;
  const contentLength = req.headers['content-length'];
  return {
    ok: true,
    head: {
      protocol: 'http/1.1',
      method: req.method ?? 'GET',
      authorityHost: host,
      authorityPort,
      scheme,
      target,
      forwardHeaders,
      hasBody: req.headers['transfer-encoding'] !== undefined || (contentLength !== undefined && contentLength !== '0'),
      // gRPC needs HTTP/2 (trailers), which the gateway relays only to an HTTP/2 client.
      grpc: false,
      upgrade: upgradeHeader && nominated.has('upgrade') ? upgradeHeader.toLowerCase() : null,
    },
  };
}

/** The path of an absolute-form target as sent ("http://h/a%2e?q" → "/a%2e"), without its query. */
function absoluteFormPath(target: string): string {
  const authorityStart = target.indexOf('//');
  if (authorityStart < 0) return '';
  const rest = target.slice(authorityStart + 2);
  // URL parsers end the authority at "\" too.
  const pathStart = rest.search(/[/\\?#]/);
  if (pathStart < 0) return '';
  const path = rest.slice(pathStart);
  const pathEnd = path.search(/[?#]/);
  return pathEnd < 0 ? path : path.slice(0, pathEnd);
}
