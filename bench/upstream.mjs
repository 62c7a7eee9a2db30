#!/usr/bin/env node
// The bench's HTTPS/1.1 upstream: one node:https server on 127.0.0.1 with an ECDSA P-256
// certificate for upstream.test, *.upstream.test and 127.0.0.1, issued by a throw-away test CA
// that the openssl CLI makes in --dir. Runs as its own process so it can be pinned to a CPU.
//
//   node bench/upstream.mjs --dir DIR [--port 0]
//   → prints {"event":"listening","port":N,"ca":"DIR/upstream-ca.pem"} on stdout when ready.
//
// Routes: GET /small → 1 KiB body (GET /small?close: the same, then the connection is closed,
// so the next request through a proxy needs a new upstream connection); GET /big?mb=N → N MiB streamed with backpressure;
// POST /upload → reads and counts the body, answers its length; POST /stall?s=S → reads
// nothing for S seconds, then drains and answers the length (for the slow-upstream case).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export const UPSTREAM_NAME = 'upstream.test';
const SMALL_BODY = Buffer.alloc(1024, 'a');
const BIG_CHUNK = Buffer.alloc(64 * 1024, 'b');
const MIB = 1024 * 1024;

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Creates (once) DIR/upstream-ca.pem and the upstream's P-256 leaf. Returns the file paths.
 * Idempotent, so the orchestrator and every upstream restart share one CA.
 */
export function ensureUpstreamCertificates(dir) {
  mkdirSync(dir, { recursive: true });
  const files = {
    ca: join(dir, 'upstream-ca.pem'),
    caKey: join(dir, 'upstream-ca-key.pem'),
    cert: join(dir, 'upstream-cert.pem'),
    key: join(dir, 'upstream-key.pem'),
  };
  if (existsSync(files.cert) && existsSync(files.key) && existsSync(files.ca)) return files;
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', files.caKey], dir);
  openssl(['req', '-x509', '-new', '-key', files.caKey, '-sha256', '-days', '2', '-subj', '/CN=srt-gw bench upstream CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', files.ca], dir);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', files.key], dir);
  const csr = join(dir, 'upstream.csr');
  openssl(['req', '-new', '-key', files.key, '-subj', `/CN=${UPSTREAM_NAME}`, '-out', csr], dir);
  const ext = join(dir, 'upstream.ext');
  writeFileSync(ext, [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=DNS:${UPSTREAM_NAME},DNS:*.${UPSTREAM_NAME},IP:127.0.0.1`,
    '',
  ].join('\n'));
  openssl(['x509', '-req', '-in', csr, '-CA', files.ca, '-CAkey', files.caKey, '-CAcreateserial', '-sha256', '-days', '2',
    '-extfile', ext, '-out', files.cert], dir);
  return files;
}

function streamBig(res, totalBytes) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(totalBytes) });
  let left = totalBytes;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, BIG_CHUNK.length);
      left -= n;
      const more = res.write(n === BIG_CHUNK.length ? BIG_CHUNK : BIG_CHUNK.subarray(0, n));
      if (!more && left > 0) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  res.on('close', () => { left = 0; });
  pump();
}

function countBody(req, res, delayMs) {
  let bytes = 0;
  const drain = () => {
    req.on('data', (chunk) => { bytes += chunk.length; });
    req.on('end', () => {
      const body = String(bytes);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
      res.end(body);
    });
  };
  if (delayMs > 0) {
    req.pause();
    setTimeout(drain, delayMs);
  } else {
    drain();
  }
}

function handle(req, res) {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url === '/small') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1024' });
    res.end(SMALL_BODY);
    return;
  }
  const [path, query = ''] = url.split('?', 2);
  const params = new URLSearchParams(query);
  if (req.method === 'GET' && path === '/small' && params.has('close')) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1024', connection: 'close' });
    res.end(SMALL_BODY);
    return;
  }
  if (req.method === 'GET' && path === '/big') {
    const mb = Number(params.get('mb') ?? '1');
    if (!Number.isFinite(mb) || mb <= 0 || mb > 4096) return answer(res, 400, 'mb must be in (0, 4096]\n');
    streamBig(res, Math.round(mb * MIB));
    return;
  }
  if (req.method === 'POST' && path === '/upload') return countBody(req, res, 0);
  if (req.method === 'POST' && path === '/stall') return countBody(req, res, Math.max(0, Number(params.get('s') ?? '5')) * 1000);
  answer(res, 404, 'not found\n');
}

function answer(res, status, text) {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

export function startUpstream({ dir, port = 0, host = '127.0.0.1' }) {
  const files = ensureUpstreamCertificates(dir);
  const server = https.createServer({
    key: readFileSync(files.key),
    cert: readFileSync(files.cert),
    ALPNProtocols: ['http/1.1'],
    // Long-lived keep-alive connections: the load generator and the proxies reuse them.
    keepAliveTimeout: 120_000,
    headersTimeout: 60_000,
    requestTimeout: 0,
  }, handle);
  server.keepAliveTimeout = 120_000;
  server.maxRequestsPerSocket = 0;
  server.on('connection', (socket) => socket.setNoDelay(true));
  server.on('clientError', (_error, socket) => socket.destroy());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve({ server, port: server.address().port, files }));
  });
}

function parseArgs(argv) {
  const args = { dir: null, port: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === '--dir') { args.dir = value; i++; }
    else if (flag === '--port') { args.port = Number(value); i++; }
    else throw new Error(`upstream.mjs: unknown argument ${flag} (expected --dir DIR [--port N])`);
  }
  if (!args.dir) throw new Error('upstream.mjs: --dir DIR is required (certificates are made there)');
  return args;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = parseArgs(process.argv.slice(2));
  const { server, port, files } = await startUpstream(args);
  process.stdout.write(JSON.stringify({ event: 'listening', port, ca: files.ca, pid: process.pid }) + '\n');
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
