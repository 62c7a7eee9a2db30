// A real upstream for the e2e tests: HTTPS (HTTP/2 with HTTP/1.1 fallback) or plain HTTP on
// 127.0.0.1, recording every request it receives so a test can assert what did NOT get through.
import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { decodeFrame, encodeFrame, OPCODE, websocketAccept } from './websocket-frames.js';

export interface ReceivedRequest {
  method: string;
  /** Request target as received (path and query). */
  path: string;
  headers: IncomingHttpHeaders;
  /** "1.1" or "2.0". */
  httpVersion: string;
  /** Host header (HTTP/1.1) or :authority (HTTP/2). */
  authority: string | null;
  /** The SNI the upstream saw; null for plain HTTP or no SNI. */
  servername: string | null;
  /** Filled in when the body has been read completely; null until then. */
  bodyBytes: number | null;
  bodySha256: string | null;
  websocket: boolean;
}

/** What every ordinary route answers with. */
export interface EchoResponse {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  httpVersion: string;
  bodyBytes: number;
  bodySha256: string;
  servername: string | null;
}

export interface UpstreamOptions {
  /** PEM certificate and key; omit both together with `plain: true` for a plain HTTP upstream. */
  cert?: string;
  key?: string;
  /** Names the certificate is for; the first is the default host of `url()`. */
  names?: string[];
  plain?: boolean;
  /** HTTPS that offers only HTTP/1.1 in ALPN (an older server), not HTTP/2 as well. */
  http1Only?: boolean;
}

export interface Upstream {
  port: number;
  protocol: 'https' | 'http';
  /** Every request (and WebSocket upgrade) in arrival order, recorded as soon as its head arrives. */
  received: ReceivedRequest[];
  /** TCP connections accepted so far. */
  readonly connections: number;
  /** TLS handshakes that completed / failed so far (HTTPS only). */
  readonly tlsHandshakes: number;
  readonly tlsFailures: number;
  /** WebSocket frames received from clients. */
  readonly websocketFrames: number;
  /** Bytes of gRPC messages written so far by streaming calls (/grpc.*?mb=N), with backpressure. */
  readonly grpcBytesWritten: number;
  url(path: string, host?: string): string;
  /** Forget what was recorded so far. */
  reset(): void;
  close(): Promise<void>;
}

export const SHA256_OF_EMPTY = createHash('sha256').update('').digest('hex');

/** The bytes `/bytes?n=N` serves, from `offset`: a pattern that catches reordering and truncation. */
export function patternBytes(offset: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) chunk[i] = (offset + i) % 251;
  return chunk;
}

export function expectedBytesSha256(n: number): string {
  const hash = createHash('sha256');
  const step = 1 << 16;
  for (let offset = 0; offset < n; offset += step) hash.update(patternBytes(offset, Math.min(step, n - offset)));
  return hash.digest('hex');
}

type AnyRequest = IncomingMessage | Http2ServerRequest;
type AnyResponse = ServerResponse | Http2ServerResponse;

function servernameOf(socket: unknown): string | null {
  const name = (socket as Partial<TLSSocket> | undefined)?.servername;
  return typeof name === 'string' && name !== '' ? name : null;
}

function authorityOf(headers: IncomingHttpHeaders): string | null {
  const authority = headers[':authority'] ?? headers.host;
  return typeof authority === 'string' ? authority : null;
}

export async function startUpstream(options: UpstreamOptions): Promise<Upstream> {
  const plain = options.plain === true;
  if (!plain && (options.cert === undefined || options.key === undefined)) {
    throw new Error('startUpstream: an HTTPS upstream needs cert and key (or pass plain: true)');
  }
  const received: ReceivedRequest[] = [];
  const sockets = new Set<Socket | Duplex>();
  const stalled = new Set<AnyResponse>();
  let connections = 0;
  let tlsHandshakes = 0;
  let tlsFailures = 0;
  let websocketFrames = 0;
  let grpcBytesWritten = 0;

  const onRequest = (req: AnyRequest, res: AnyResponse): void => {
    const path = req.url ?? '';
    const servername = plain
      ? null
      : req.httpVersionMajor === 2
        ? servernameOf((req as Http2ServerRequest).stream.session?.socket)
        : servernameOf(req.socket);
    const record: ReceivedRequest = {
      method: req.method ?? '',
      path,
      headers: req.headers,
      httpVersion: req.httpVersion,
      authority: authorityOf(req.headers),
      servername,
      bodyBytes: null,
      bodySha256: null,
      websocket: false,
    };
    received.push(record);

    const hash = createHash('sha256');
    let bodyBytes = 0;
    // A gRPC method (/package.Service/Method) gets its messages back, as an echo service would.
    const grpcCall = path.startsWith('/grpc.');
    const grpcBody: Buffer[] = [];
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
      hash.update(chunk);
      if (grpcCall) grpcBody.push(chunk);
    });
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    req.on('end', () => {
      record.bodyBytes = bodyBytes;
      record.bodySha256 = hash.digest('hex');
      const url = new URL(path, 'http://upstream.invalid');
      if (url.pathname === '/slow') {
        stalled.add(res); // never answered: the gateway's upstream timeout must fire
        return;
      }
      if (url.pathname === '/bytes') {
        sendPattern(res, Number(url.searchParams.get('n') ?? '0'));
        return;
      }
      if (url.pathname === '/stall-body') {
        // a head and the first 100 of 1000 body bytes, then nothing: a body timeout must fire
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000' });
        (res as ServerResponse).write(patternBytes(0, 100));
        stalled.add(res);
        return;
      }
      if (url.pathname === '/drip') {
        // n chunks of 10 bytes, ms milliseconds apart: slow in total, never silent for long
        const chunks = Number(url.searchParams.get('n') ?? '5');
        const gapMs = Number(url.searchParams.get('ms') ?? '100');
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(chunks * 10) });
        let sent = 0;
        const timer = setInterval(() => {
          (res as ServerResponse).write(patternBytes(sent * 10, 10));
          if (++sent === chunks) {
            clearInterval(timer);
            res.end();
          }
        }, gapMs);
        res.once('close', () => clearInterval(timer));
        return;
      }
      if (grpcCall) {
        answerGrpc(req, res, Buffer.concat(grpcBody));
        return;
      }
      const echo: EchoResponse = {
        method: record.method,
        path,
        headers: req.headers as Record<string, string | string[]>,
        httpVersion: req.httpVersion,
        bodyBytes,
        bodySha256: record.bodySha256,
        servername,
      };
      const body = JSON.stringify(echo);
      const sendEcho = () => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
        res.end(body);
      };
      if (url.pathname === '/delay') {
        // the echo, ms milliseconds late: a response that takes longer than a keep-alive limit
        const timer = setTimeout(sendEcho, Number(url.searchParams.get('ms') ?? '0'));
        res.once('close', () => clearTimeout(timer));
        return;
      }
      sendEcho();
    });
  };

  /**
   * Like a gRPC server: HTTP/2 only, `te: trailers` required, the status in trailers. The reply
   * echoes the request's messages; grpc-message quotes its x-api-key, as an error message might.
   */
  const answerGrpc = (req: AnyRequest, res: AnyResponse, messages: Buffer): void => {
    if (req.httpVersionMajor !== 2) {
      res.writeHead(505, { 'content-type': 'text/plain' });
      res.end('gRPC needs HTTP/2');
      return;
    }
    if (req.headers.te !== 'trailers') {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('te: trailers missing');
      return;
    }
    const h2 = res as Http2ServerResponse;
    h2.writeHead(200, { 'content-type': 'application/grpc' });
    // x-reply-grpc-status: the status to answer with (a server refusing the call, say).
    const replyStatus = String(req.headers['x-reply-grpc-status'] ?? '0');
    h2.addTrailers({ 'grpc-status': replyStatus, 'grpc-message': `echoed; x-api-key=${String(req.headers['x-api-key'] ?? '')}` });
    // ?mb=N: a server-streaming call: N MiB of 64 KiB messages after the echo, written as fast
    // as the stream takes them.
    const total = Number(new URL(req.url ?? '/', 'http://upstream.invalid').searchParams.get('mb') ?? 0) * 1024 * 1024;
    h2.write(messages);
    const message = Buffer.concat([Buffer.from([0, 0, 1, 0, 0]), Buffer.alloc(65536, 'm')]);
    let sent = 0;
    const writeMore = (): void => {
      while (sent < total) {
        sent += 65536;
        grpcBytesWritten += message.length;
        if (!h2.write(message)) {
          h2.once('drain', writeMore);
          return;
        }
      }
      h2.end();
    };
    writeMore();
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    received.push({
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
      httpVersion: req.httpVersion,
      authority: authorityOf(req.headers),
      servername: plain ? null : servernameOf(socket),
      bodyBytes: 0,
      bodySha256: SHA256_OF_EMPTY,
      websocket: true,
    });
    socket.on('error', () => undefined);
    const key = req.headers['sec-websocket-key'];
    const isWebsocket = (req.headers.upgrade ?? '').toLowerCase() === 'websocket' && typeof key === 'string';
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    if (isWebsocket && url.pathname === '/ws-silent') return; // never answered: the gateway's head timeout must fire
    if (!isWebsocket || url.pathname !== '/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${websocketAccept(key)}\r\n\r\n`,
    );
    // ?compressed-frame: a frame with RSV1 set, as permessage-deflate would send (never negotiated here).
    if (url.searchParams.has('compressed-frame')) socket.write(Buffer.from([0xc1, 0x02, 0x68, 0x69]));
    // ?echo-headers=N: first send the request headers as one text message, in fragments of N bytes
    // with a ping after the first one (as servers that write large messages in pieces do).
    const fragmentSize = Number(url.searchParams.get('echo-headers') ?? 0);
    if (fragmentSize > 0) {
      const message = Buffer.from(JSON.stringify(req.headers));
      for (let at = 0; at < message.length; at += fragmentSize) {
        const fin = at + fragmentSize >= message.length;
        socket.write(encodeFrame(at === 0 ? OPCODE.text : OPCODE.continuation, message.subarray(at, at + fragmentSize), false, fin));
        if (at === 0) socket.write(encodeFrame(OPCODE.ping, Buffer.from('between fragments'), false));
      }
    }
    let pending: Buffer = Buffer.from(head);
    const drainFrames = (): void => {
      for (let decoded = decodeFrame(pending); decoded; decoded = decodeFrame(pending)) {
        pending = decoded.rest;
        const { frame } = decoded;
        websocketFrames += 1;
        if (!frame.masked) {
          // RFC 6455 §5.1: a server must close on an unmasked client frame (1002 protocol error).
          socket.end(encodeFrame(OPCODE.close, Buffer.from([0x03, 0xea]), false));
          return;
        }
        if (frame.opcode === OPCODE.close) {
          socket.end(encodeFrame(OPCODE.close, frame.payload, false));
          return;
        }
        const opcode = frame.opcode === OPCODE.ping ? OPCODE.pong : frame.opcode;
        socket.write(encodeFrame(opcode, frame.payload, false));
      }
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      drainFrames();
    });
    drainFrames();
  };

  const server = plain
    ? http.createServer(onRequest)
    : options.http1Only === true
      ? https.createServer({ cert: options.cert, key: options.key }, onRequest)
      : http2.createSecureServer({ cert: options.cert, key: options.key, allowHTTP1: true }, onRequest);
  (server as unknown as EventEmitter).on('upgrade', onUpgrade);
  server.on('connection', (socket: Socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  if (!plain) {
    server.on('secureConnection', () => (tlsHandshakes += 1));
    server.on('tlsClientError', () => (tlsFailures += 1));
  }
  // Without a listener an HTTP/2 session error would be thrown; the tests watch outcomes instead.
  server.on('sessionError', () => undefined);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const protocol = plain ? 'http' : 'https';
  const defaultHost = options.names?.[0] ?? '127.0.0.1';

  return {
    port,
    protocol,
    received,
    get connections() {
      return connections;
    },
    get tlsHandshakes() {
      return tlsHandshakes;
    },
    get tlsFailures() {
      return tlsFailures;
    },
    get websocketFrames() {
      return websocketFrames;
    },
    get grpcBytesWritten() {
      return grpcBytesWritten;
    },
    url: (path, host = defaultHost) => `${protocol}://${host}:${port}${path}`,
    reset: () => {
      received.length = 0;
      connections = 0;
      tlsHandshakes = 0;
      tlsFailures = 0;
      websocketFrames = 0;
    },
    close: async () => {
      for (const res of stalled) {
        if ('stream' in res) res.stream.destroy();
        else res.destroy();
      }
      stalled.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

function sendPattern(res: AnyResponse, n: number): void {
  const total = Number.isFinite(n) && n >= 0 ? Math.floor(n) : 0;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  const step = 1 << 16;
  let offset = 0;
  const writeMore = (): void => {
    while (offset < total) {
      const length = Math.min(step, total - offset);
      const ok = (res as ServerResponse).write(patternBytes(offset, length));
      offset += length;
      if (!ok) {
        res.once('drain', writeMore);
        return;
      }
    }
    res.end();
  };
  writeMore();
}
