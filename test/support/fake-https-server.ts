// A fake of a server outside the machine (a registry, a git host) for the jailed-client tests:
// HTTPS/1.1 on 127.0.0.1 with a test-PKI certificate (or plain HTTP/1.1, `plain: true`), logging
// every request as soon as its head arrives so a test can assert what never got through. Routes
// are static files or a handler.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface LoggedRequest {
  method: string;
  /** Request target as received: path and query. */
  path: string;
  /** The Host header. */
  authority: string | null;
  /** The SNI the server saw. */
  servername: string | null;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface StaticFile {
  contentType: string;
  body: Buffer | string;
}

export interface FakeHttpsServer {
  port: number;
  requests: LoggedRequest[];
  /** https://HOST:PORT/PATH (http:// when plain) */
  url(host: string, path: string): string;
  /** Serve `file` for GET/HEAD of exactly `path` (query ignored). */
  serveFile(path: string, file: StaticFile): void;
  close(): Promise<void>;
}

export type FakeHttpsServerOptions = {
  /** Called for requests no static file matches; default 404. */
  handler?: RequestHandler;
} & ({ cert: string; key: string; plain?: false } | { plain: true });

/** The same fake over plain HTTP: what an `http://` index, repository or mirror looks like. */
export async function startFakeHttpServer(options: { handler?: RequestHandler } = {}): Promise<FakeHttpsServer> {
  return startFakeHttpsServer({ ...options, plain: true });
}

export async function startFakeHttpsServer(options: FakeHttpsServerOptions): Promise<FakeHttpsServer> {
  const requests: LoggedRequest[] = [];
  const files = new Map<string, StaticFile>();
  const sockets = new Set<Socket>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const servername = (req.socket as Partial<TLSSocket>).servername;
    requests.push({
      method: req.method ?? '',
      path: req.url ?? '',
      authority: req.headers.host ?? null,
      servername: typeof servername === 'string' && servername !== '' ? servername : null,
    });
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const pathname = new URL(req.url ?? '/', 'https://fake.invalid').pathname;
    const file = files.get(pathname);
    if (file && (req.method === 'GET' || req.method === 'HEAD')) {
      req.resume();
      const body = Buffer.from(file.body);
      res.writeHead(200, { 'content-type': file.contentType, 'content-length': String(body.length) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (options.handler) {
      options.handler(req, res);
      return;
    }
    req.resume();
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  };
  const server = options.plain === true ? createHttpServer(onRequest) : createServer({ cert: options.cert, key: options.key }, onRequest);
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    url: (host, path) => `${options.plain === true ? 'http' : 'https'}://${host}:${port}${path}`,
    serveFile: (path, file) => files.set(path, file),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
