// Responses the gateway itself writes into the sandbox. Bodies name the rule and the reason,
// never host paths, secrets or internal error text (DESIGN: messages sent into the sandbox).
import type { Duplex } from 'node:stream';
import type { ReasonCode } from '../../reason-codes.js';

export const REASON_HEADER = 'x-srt-gw-reason';

export interface GatewayResponse {
  status: number;
  body: string;
  headers: Record<string, string>;
}

/** Header values must be a single line of visible ASCII; reasons are ours, but hosts come from clients. */
export function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 512);
}

/** The body of every answer the gateway writes itself: `code` is the reason's stable code (reason-codes.ts). */
interface ResponseBody {
  error: string;
  code: ReasonCode;
  rule: string | null;
  reason: string;
}

export function denialResponse(status: number, rule: string | null, reason: string, code: ReasonCode): GatewayResponse {
  const error = status === 421 ? 'misdirected' : status === 400 || status === 431 ? 'bad-request' : status === 429 ? 'budget-exceeded' : 'denied';
  return jsonResponse(status, { error, code, rule, reason });
}

export function upstreamFailureResponse(reason: string, code: ReasonCode, status = 502): GatewayResponse {
  return jsonResponse(status, { error: 'upstream', code, rule: null, reason });
}

function jsonResponse(status: number, payload: ResponseBody): GatewayResponse {
  const body = JSON.stringify(payload) + '\n';
  return {
    status,
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      [REASON_HEADER]: headerSafe(payload.reason),
    },
  };
}

/**
 * 407 for a request or CONNECT that did not authenticate as a policy client. The body carries the
 * code alone: the reason may name a key file or a JWKS URL, which the audit line keeps.
 */
export function proxyAuthenticationResponse(code: ReasonCode, challenge: string): GatewayResponse {
  const body = JSON.stringify({ error: 'proxy-authentication-required', code }) + '\n';
  return {
    status: 407,
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
      'proxy-authenticate': challenge,
      [REASON_HEADER]: code,
    },
  };
}

const STATUS_TEXT: Record<number, string> = {
  200: 'Connection Established',
  400: 'Bad Request',
  403: 'Forbidden',
  407: 'Proxy Authentication Required',
  421: 'Misdirected Request',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Writes a complete HTTP/1.1 response on a raw socket (CONNECT replies, parser errors) and closes it. */
export function writeRawResponse(socket: Duplex, response: GatewayResponse): void {
  if (socket.destroyed || !socket.writable) return;
  let head = `HTTP/1.1 ${response.status} ${STATUS_TEXT[response.status] ?? 'Error'}\r\n`;
  for (const [name, value] of Object.entries(response.headers)) head += `${name}: ${value}\r\n`;
  head += 'connection: close\r\n\r\n';
  socket.end(head + response.body);
}
