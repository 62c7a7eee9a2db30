// Hand-made client traffic for the attack tests: a CONNECT tunnel through the gateway, TLS with a
// chosen SNI on top of it, and a byte-level HTTP/1.1 reader that can tell a closed connection apart.
import net from 'node:net';
import tls from 'node:tls';
import { decodeFrame, type WebsocketFrame } from './websocket-frames.js';

const DEFAULT_WAIT_MS = 10_000;

export interface RawResponse {
  status: number;
  statusLine: string;
  /** Names lower-cased; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  text: string;
}

/**
 * Buffers everything a socket receives and lets a test read HTTP/1.1 responses and WebSocket frames
 * from it in order, and ask whether the peer closed the connection.
 */
export class RawConnection {
  private buffer: Buffer = Buffer.alloc(0);
  private ended = false;
  private error: Error | null = null;
  private waiters: (() => void)[] = [];

  constructor(readonly socket: net.Socket | tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (error) => {
      this.error = error;
      this.ended = true;
      this.wake();
    });
  }

  /** Bytes received and not yet consumed. */
  get pending(): Buffer {
    return this.buffer;
  }

  get closed(): boolean {
    return this.ended;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Waits until `parse` returns non-null (re-run on every change), or the timeout / close. */
  private async waitFor<T>(what: string, parse: () => T | null, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = parse();
      if (result !== null) return result;
      if (this.ended) {
        throw new Error(
          `connection closed while waiting for ${what}${this.error ? ` (${this.error.message})` : ''}; received: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 500))}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 500))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Reads one response. The body follows Content-Length or chunked encoding; without either (and
   * not 1xx/204/304) it runs to the close of the connection.
   */
  async readResponse(timeoutMs = DEFAULT_WAIT_MS): Promise<RawResponse> {
    return this.waitFor('an HTTP response', () => this.tryParseResponse(), timeoutMs);
  }

  private tryParseResponse(): RawResponse | null {
    const headEnd = this.buffer.indexOf('\r\n\r\n');
    if (headEnd < 0) return null;
    const head = this.buffer.subarray(0, headEnd).toString('latin1');
    const [statusLine = '', ...headerLines] = head.split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!match) throw new Error(`not an HTTP/1.x response: ${JSON.stringify(head.slice(0, 200))}`);
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const bodyStart = headEnd + 4;
    let body: Buffer;
    let consumed: number;
    if ((status >= 100 && status < 200) || status === 204 || status === 304) {
      body = Buffer.alloc(0);
      consumed = bodyStart;
    } else if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) {
      const decoded = decodeChunked(this.buffer.subarray(bodyStart));
      if (!decoded) return null;
      body = decoded.body;
      consumed = bodyStart + decoded.length;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (this.buffer.length < bodyStart + length) return null;
      body = Buffer.from(this.buffer.subarray(bodyStart, bodyStart + length));
      consumed = bodyStart + length;
    } else {
      if (!this.ended) return null;
      body = Buffer.from(this.buffer.subarray(bodyStart));
      consumed = this.buffer.length;
    }
    this.buffer = this.buffer.subarray(consumed);
    return { status, statusLine, headers, body, text: body.toString('utf8') };
  }

  /** Reads one WebSocket frame. */
  async readFrame(timeoutMs = DEFAULT_WAIT_MS): Promise<WebsocketFrame> {
    return this.waitFor(
      'a WebSocket frame',
      () => {
        const decoded = decodeFrame(this.buffer);
        if (!decoded) return null;
        this.buffer = decoded.rest;
        return decoded.frame;
      },
      timeoutMs,
    );
  }

  /** True when the peer ends or closes the connection within `timeoutMs`. */
  async waitForClose(timeoutMs = 5_000): Promise<boolean> {
    try {
      await this.waitFor('the close', () => (this.ended ? true : null), timeoutMs);
      return true;
    } catch {
      return this.ended;
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function decodeChunked(data: Buffer): { body: Buffer; length: number } | null {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', offset);
    if (lineEnd < 0) return null;
    const size = parseInt(data.subarray(offset, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
    if (Number.isNaN(size)) throw new Error('bad chunk size in response');
    offset = lineEnd + 2;
    if (size === 0) {
      // trailers, then the final CRLF
      const end = data.indexOf('\r\n\r\n', offset - 2);
      if (end < 0) return null;
      return { body: Buffer.concat(parts), length: end + 4 };
    }
    if (data.length < offset + size + 2) return null;
    parts.push(data.subarray(offset, offset + size));
    offset += size + 2;
  }
}

/** A plain TCP connection to 127.0.0.1:port, wrapped for raw HTTP. */
export async function connectRaw(port: number): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return new RawConnection(socket);
}

export interface TunnelResult {
  /** Status of the proxy's answer to CONNECT. */
  status: number;
  statusLine: string;
  headers: Record<string, string>;
  /** The body of a refusal (empty for 200). */
  body: string;
  /** The tunnel's socket when status is 200 (already destroyed otherwise). */
  socket: net.Socket;
}

/** Sends `CONNECT authority` to the gateway and reads its answer. */
export async function connectTunnel(proxyPort: number, authority: string, timeoutMs = DEFAULT_WAIT_MS): Promise<TunnelResult> {
  const socket = net.connect(proxyPort, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  // Read only the head with a temporary listener, so TLS can take over the socket afterwards.
  const head = await new Promise<{ head: string; rest: Buffer }>((resolve, reject) => {
    let buffer: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new Error(`no answer to CONNECT ${authority} within ${timeoutMs} ms`)), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end >= 0) finish(null, { head: buffer.subarray(0, end).toString('latin1'), rest: buffer.subarray(end + 4) });
    };
    const onEnd = (): void => finish(new Error(`connection closed before the answer to CONNECT ${authority}: ${JSON.stringify(buffer.toString('latin1'))}`));
    const finish = (error: Error | null, value?: { head: string; rest: Buffer }): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.pause();
      if (error) reject(error);
      else if (value) resolve(value);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onEnd);
  });
  const [statusLine = '', ...headerLines] = head.head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? '0');
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  if (status === 200) {
    if (head.rest.length > 0) socket.unshift(head.rest);
    return { status, statusLine, headers, body: '', socket };
  }
  const body = await readToEnd(socket, head.rest, headers['content-length'], timeoutMs);
  socket.destroy();
  return { status, statusLine, headers, body, socket };
}

async function readToEnd(socket: net.Socket, start: Buffer, contentLength: string | undefined, timeoutMs: number): Promise<string> {
  const wanted = contentLength === undefined ? Infinity : Number(contentLength);
  let buffer = start;
  if (buffer.length >= wanted) return buffer.subarray(0, wanted).toString('utf8');
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      resolve(buffer.subarray(0, Math.min(buffer.length, wanted)).toString('utf8'));
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (buffer.length >= wanted) done();
    });
    socket.once('end', done);
    socket.once('close', done);
    socket.once('error', done);
    socket.resume();
  });
}

export interface TunnelTlsOptions {
  /** SNI to send; "" sends none. */
  servername: string;
  /** The name the certificate is checked against (default: servername). */
  verifyHost?: string;
  /** The gateway CA (PEM). */
  ca: string | Buffer;
  alpn?: string[];
  timeoutMs?: number;
}

/** TLS over an open tunnel; rejects when the handshake fails. */
export async function tlsOverTunnel(socket: net.Socket, options: TunnelTlsOptions): Promise<tls.TLSSocket> {
  const tlsSocket = tls.connect({
    socket,
    servername: options.servername,
    host: options.verifyHost ?? options.servername,
    ca: options.ca,
    ALPNProtocols: options.alpn ?? ['http/1.1'],
  });
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAIT_MS;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      tlsSocket.destroy();
      reject(new Error(`TLS handshake did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    tlsSocket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve();
    });
    tlsSocket.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    tlsSocket.once('close', () => {
      clearTimeout(timer);
      reject(new Error('connection closed during the TLS handshake'));
    });
  });
  // Later errors show up as a close to whoever reads the socket (RawConnection, an HTTP/2 session).
  tlsSocket.on('error', () => undefined);
  return tlsSocket;
}

/** CONNECT + TLS + a RawConnection, for HTTP/1.1 tests inside the tunnel. */
export async function openTlsTunnel(
  proxyPort: number,
  authority: string,
  options: Omit<TunnelTlsOptions, 'servername'> & { servername?: string },
): Promise<RawConnection> {
  const tunnel = await connectTunnel(proxyPort, authority);
  if (tunnel.status !== 200) throw new Error(`CONNECT ${authority} was refused: ${tunnel.statusLine} ${tunnel.body}`);
  const host = authority.replace(/:\d+$/, '');
  const tlsSocket = await tlsOverTunnel(tunnel.socket, { ...options, servername: options.servername ?? host, verifyHost: options.verifyHost ?? host });
  return new RawConnection(tlsSocket);
}
