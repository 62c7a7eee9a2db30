// HTTP/1 requests node's parser refused (CL+TE, duplicate Content-Length, an oversized head,
// garbage), on the explicit proxy and inside tunnels alike: answered and logged as framing denials.
import type { Duplex } from 'node:stream';
import type { GatewayEvents } from '../audit/events.js';
import { denialResponse, writeRawResponse } from './responses.js';

/**
 * node's HTTP/1 parser rejected the request (CL+TE, duplicate Content-Length, oversized head,
 * garbage): answer 400/431, close, and report it as a framing denial so it is in the audit log.
 * A client that reset, or closed its side in the middle of a request, gets no answer and no line
 * here: the socket is closed at once, and a request in flight is logged by the pipeline.
 */
export function answerParseError(error: Error & { code?: string }, socket: Duplex, context: { id: string; host: string; port: number } | undefined, events: GatewayEvents): void {
  // HPE_INVALID_EOF_STATE: the client closed its side in the middle of a request (an upload cut
  // short, mostly), so nobody reads an answer. The request in flight ends only when the socket
  // closes, and until then its upstream request holds one of the origin's pooled connections.
  // Answering first could keep the socket open until the idle timeout: node 20 loses the error
  // of its TLS 1.3 session-ticket write to a client that has reset, and such a socket never
  // flushes or closes. Clients resetting uploads every second or two held all of an origin's
  // pooled connections and stalled `srt-gw serve`.
  if (error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const reason = tooLarge ? 'request headers are too large' : `malformed HTTP request (${error.code ?? 'parse error'})`;
  const code = tooLarge ? 'headers-too-large' : 'malformed-request';
  writeRawResponse(socket, denialResponse(status, null, reason, code));
  events.emit('request', {
    kind: 'request',
    conn: context?.id ?? '-',
    protocol: 'http/1.1',
    method: '-',
    host: context?.host ?? '-',
    port: context?.port ?? 0,
    path: '-',
    decision: 'deny',
    rule: null,
    reason,
    code,
    step: 'framing',
    status,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: 0,
  });
}
