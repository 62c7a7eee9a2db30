// Reads an HTTP/2 stream's request into an ExchangeHead. :authority and Host must agree when
// both are present; connection-specific headers are already refused by node's h2 layer.
import type http2 from 'node:http2';
import { normalizeHost } from '../../policies/host.js';
import { CONNECT_IN_TUNNEL_REASON, HOP_BY_HOP_HEADERS, isGrpcContentType, splitAuthority, type ExchangeReadResult } from './exchange.js';

export function readHttp2Exchange(req: http2.Http2ServerRequest): ExchangeReadResult {
  const headers = req.headers;
  if (headers[':method'] === 'CONNECT') return { ok: false, reason: CONNECT_IN_TUNNEL_REASON, method: 'CONNECT' };
  const authorityHeader = headers[':authority'];
  const hostHeader = headers.host;
  // SECURITY: an h2 request could name one host in :authority and another in Host; the
  // upstream may honour either — test/e2e/fronting.test.ts
  if (authorityHeader !== undefined && hostHeader !== undefined && authorityHeader !== hostHeader) {
    return { ok: false, reason: ':authority and Host name different hosts' };
  }
  const authority = authorityHeader ?? hostHeader;
  if (authority === undefined) return { ok: false, reason: 'the request has no :authority' };
  const parts = splitAuthority(authority);
  const host = parts && normalizeHost(parts.host);
  if (!parts || !host) return { ok: false, reason: ':authority is not a valid host[:port]' };

  const method = headers[':method'] ?? 'GET';
  const target = headers[':path'] ?? '';
  if (!target.startsWith('/')) return { ok: false, reason: ':path must start with "/"' };

  const raw = req.rawHeaders;
  const forwardHeaders: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP_HEADERS.has(name)) continue;
    forwardHeaders.push(name, raw[i + 1]!);
  }

  const contentLength = headers['content-length'];
  return {
    ok: true,
    head: {
      protocol: 'h2',
      method,
      authorityHost: host,
      authorityPort: parts.port,
      scheme: null,
      target,
      forwardHeaders,
      // An h2 request has a body unless the client ended the stream with its headers.
      hasBody: contentLength !== undefined ? contentLength !== '0' : !req.stream.readableEnded && !req.stream.endAfterHeaders,
      upgrade: null,
      // TE is hop-by-hop and not forwarded as sent; a gRPC call gets `te: trailers` from the gateway.
      // te first: absent from almost every request, so the content type is rarely looked at.
      grpc: typeof headers.te === 'string' && headers.te.trim().toLowerCase() === 'trailers' && isGrpcContentType(headers['content-type']),
    },
  };
}
