// Raw bytes on a client connection, parsed by node's HTTP/1 server with the gateway's options
// (strict parser, the gateway's header size limit) and handed to the gateway's readers:
// readHttp1Exchange for requests, splitAuthority for CONNECT targets, answerParseError for what
// node refuses. Chunked and Content-Length bodies are read to the end, as the pipeline does.
// Contract: no reader throws; an accepted exchange names a normalised host, a port in range and a
// target that normalizePath accepts or refuses with a phrase; every connection is answered and
// closed once the client has sent everything (no hang).
import http from 'node:http';
import { Duplex } from 'node:stream';
import { readHttp1Exchange } from '../../dist/gateway/http/http1-exchange.js';
import { splitAuthority } from '../../dist/gateway/http/exchange.js';
import { answerParseError } from '../../dist/gateway/http/parse-errors.js';
import { DEFAULT_LIMITS } from '../../dist/gateway/limits.js';
import { normalizeHost } from '../../dist/policies/host.js';
import { normalizePath } from '../../dist/policies/path.js';
import { expect, expectEqual, violation, withinDeadline } from '../target-contract.mjs';

const DEADLINE_MS = 3000;
const events = { emit: () => true };

// The same parser options as createExplicitProxyServer (gateway/listeners/explicit-proxy.ts); the
// insecure parser stays off, as there.
const server = http.createServer({
  maxHeaderSize: DEFAULT_LIMITS.maxHeaderBytes,
  headersTimeout: DEFAULT_LIMITS.headersTimeoutMs,
  keepAliveTimeout: DEFAULT_LIMITS.keepAliveTimeoutMs,
  requestTimeout: 0,
});
expect(server.maxHeaderSize === DEFAULT_LIMITS.maxHeaderBytes, 'server takes the gateway header limit');

let failure = null;
function record(error) {
  failure ??= error;
}

server.on('request', (req, res) => {
  try {
    checkExchange(readHttp1Exchange(req));
  } catch (error) {
    record(error instanceof Error && error.name === 'FuzzContractViolation' ? error : violation(`readHttp1Exchange threw: ${error}`, error));
  }
  req.on('data', () => undefined);
  req.on('error', () => undefined);
  req.on('end', () => res.end('ok'));
  req.on('aborted', () => res.destroy());
});
server.on('connect', (req, socket) => {
  const target = splitAuthority(req.url ?? '');
  if (target !== null) expect(target.host.length > 0, 'CONNECT target host is not empty');
  socket.on('error', () => undefined);
  socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
  // node hands the socket over paused; read what the client sent after the head, as the gateway does.
  socket.resume();
});
server.on('upgrade', (req, socket) => {
  checkExchange(readHttp1Exchange(req));
  socket.on('error', () => undefined);
  socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
  // node hands the socket over paused; read what the client sent after the head, as the gateway does.
  socket.resume();
});
server.on('clientError', (error, socket) => answerParseError(error, socket, undefined, events));

function checkExchange(result) {
  if (!result.ok) {
    expect(typeof result.reason === 'string' && result.reason.length > 0, 'a refused exchange has a reason');
    return;
  }
  const { head } = result;
  expect(head.authorityHost !== null && normalizeHost(head.authorityHost) === head.authorityHost, `authority host is normalised: ${head.authorityHost}`);
  expect(head.authorityPort === null || (head.authorityPort >= 1 && head.authorityPort <= 65535), `authority port in range: ${head.authorityPort}`);
  expectEqual(head.method, head.method.toUpperCase(), 'method is upper case');
  expect(!head.forwardHeaders.some((name, i) => i % 2 === 0 && name === 'host'), 'Host is not forwarded as a header');
  if (head.target.startsWith('/')) {
    const normalized = normalizePath(head.target);
    expect('path' in normalized || typeof normalized.error === 'string', 'target normalises or is refused with a phrase');
  }
}

/** A client connection in memory: what the client sends, then end-of-input; answers are discarded. */
class ClientConnection extends Duplex {
  remoteAddress = '127.0.0.1';
  remotePort = 40000;
  localAddress = '127.0.0.1';
  localPort = 8080;
  _read() {}
  _write(_chunk, _encoding, callback) {
    callback();
  }
  setTimeout() {
    return this;
  }
  setNoDelay() {
    return this;
  }
  setKeepAlive() {
    return this;
  }
}

export async function fuzz(data) {
  failure = null;
  const socket = new ClientConnection();
  const closed = new Promise((resolve) => socket.once('close', resolve));
  server.emit('connection', socket);
  // The first byte splits the rest in two reads: the parser sees a request head across reads.
  const bytes = data.subarray(1);
  const split = Math.min(bytes.length, (data[0] ?? 0) * 16);
  if (split > 0) socket.push(bytes.subarray(0, split));
  setImmediate(() => {
    if (split < bytes.length) socket.push(bytes.subarray(split));
    socket.push(null);
  });
  try {
    await withinDeadline(closed, DEADLINE_MS, 'the connection after the client sent everything');
  } finally {
    socket.destroy();
  }
  if (failure) throw failure;
}
