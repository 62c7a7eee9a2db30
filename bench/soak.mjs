#!/usr/bin/env node
// `npm run soak -- --minutes N`: a long mixed load through `srt-gw serve` (explicit proxy) and
// through a jail (`srt-gw run` with a load generator inside), against a local upstream on
// loopback. Every minute it prints req/s, errors by kind, RSS, heap, open descriptors, open
// connections and event-loop delay p99 of each gateway; at the end it fails (exit 1) when RSS or
// descriptors trend upward after the warm-up, when an answered request has no audit line, or
// when the load mostly failed. Method and results: bench/README.md ("Soak").
//
// One file, three roles: the orchestrator (default), `--role upstream` (the HTTPS upstream, its
// own process) and `--role jail-client` (the load generator run inside the jail).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import dns from 'node:dns';
import { once } from 'node:events';
import { createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import readline from 'node:readline';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { commandExists, freePort } from './processes.mjs';
import { ensureUpstreamCertificates, UPSTREAM_NAME } from './upstream.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(BENCH_DIR, '..');
const CLI = join(REPO_ROOT, 'dist', 'bin', 'srt-gw.js');
const SELF = fileURLToPath(import.meta.url);
const MIB = 1024 * 1024;
const DENIED_NAME = 'denied.soak.test';

/** Every request, connect and handshake gives up after this: a hang is an error, never a stuck loop. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Samples of RSS and descriptors for the trend: every 10 s (a minute line shows the last one). */
const SAMPLE_INTERVAL_MS = 10_000;
const REPORT_INTERVAL_MS = 60_000;
const RELOAD_INTERVAL_MS = 30_000;
/** After the load stops: time for requests in flight, then for the jail's run to exit. */
const DRAIN_MS = 40_000;

// Trend limits, applied to a least-squares line through the samples after the first third
// (the warm-up: V8 sizes its heap, TLS session and leaf caches fill, undici opens its pools).
// A trend fails only when it is both large and real:
// - large: the fitted rise across the window is over RSS_RISE_MIN_BYTES and over
//   RSS_RISE_MIN_SHARE of the mean RSS (a settling heap moves a few MiB; a leak of ~100 bytes a
//   request at this load's ~300 req/s rises ~1.7 MiB a minute, past 8 MiB within 5 minutes);
//   descriptors: more than FD_RISE_MIN across the window (the load holds ~20 connections, which
//   come and go by a handful; one leaked descriptor per 100 new connections rises ~30 a minute);
// - real: the slope is more than TREND_SIGMAS standard errors from zero, so GC sawtooth and
//   connection churn on a loaded machine do not fail a run by chance.
const RSS_RISE_MIN_BYTES = 8 * MIB;
const RSS_RISE_MIN_SHARE = 0.05;
const FD_RISE_MIN = 8;
const TREND_SIGMAS = 3;
/** More unexpected failures than this share of attempts fails the run (a soak of 502s proves nothing). */
const UNEXPECTED_ERROR_SHARE = 0.01;
// Any timeout fails it: against a loopback upstream nothing should wait 30 s for a byte, and a
// stalled path makes few attempts, so its timeouts are a tiny share of the run's requests.

// ---------------------------------------------------------------------------------------------
// Shared: counting outcomes

/** Per-load tallies: attempted = request heads sent; answered = a response head came back. */
function newTally() {
  return { attempted: 0, answered: 0, completed: 0, outcomes: {}, dns: {}, attemptedByPath: {} };
}

/** A request head is going out: counted in total and by path (compared with the audit log's). */
function attempt(tally, path) {
  tally.attempted += 1;
  tally.attemptedByPath[path] = (tally.attemptedByPath[path] ?? 0) + 1;
}

function count(tally, outcome) {
  tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
}

/** Outcomes a case provokes on purpose; everything else not "ok" is unexpected. */
const EXPECTED_OUTCOMES = new Set(['ok', 'denied-403 (expected)', 'client-reset (intended)', 'upstream-reset (expected)', 'dns-denied (expected)']);

function errorKind(error) {
  if (error?.soakKind) return error.soakKind;
  const code = error?.code ?? '';
  if (code === 'ETIMEDOUT' || /timed? ?out/i.test(String(error?.message))) return 'timeout';
  if (code === 'ECONNRESET' || code === 'EPIPE' || /socket hang up|aborted/i.test(String(error?.message))) return 'reset';
  if (code === 'ECONNREFUSED') return 'refused';
  return `error:${code || String(error?.message ?? error).slice(0, 40)}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { soakKind: 'timeout' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Shared: WebSocket frames (RFC 6455), just enough for an echo

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function wsFrame(opcode, payload, masked) {
  const length = payload.length;
  const header = [0x80 | opcode];
  const maskBit = masked ? 0x80 : 0;
  if (length < 126) header.push(maskBit | length);
  else if (length < 65536) header.push(maskBit | 126, length >> 8, length & 0xff);
  else throw new Error('wsFrame: payloads over 64 KiB are not needed here');
  if (!masked) return Buffer.concat([Buffer.from(header), payload]);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(payload);
  for (let i = 0; i < body.length; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([Buffer.from(header), mask, body]);
}

/** Splits whole frames off `buffer`; returns them (unmasked) and the rest. */
function wsParse(buffer) {
  const frames = [];
  let offset = 0;
  for (;;) {
    if (buffer.length - offset < 2) break;
    const opcode = buffer[offset] & 0x0f;
    const masked = (buffer[offset + 1] & 0x80) !== 0;
    let length = buffer[offset + 1] & 0x7f;
    let at = offset + 2;
    if (length === 126) {
      if (buffer.length < at + 2) break;
      length = buffer.readUInt16BE(at);
      at += 2;
    } else if (length === 127) {
      if (buffer.length < at + 8) break;
      length = Number(buffer.readBigUInt64BE(at));
      at += 8;
    }
    const maskAt = at;
    if (masked) at += 4;
    if (buffer.length < at + length) break;
    const payload = Buffer.from(buffer.subarray(at, at + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= buffer[maskAt + (i & 3)];
    frames.push({ opcode, payload });
    offset = at + length;
  }
  return { frames, rest: buffer.subarray(offset) };
}

// ---------------------------------------------------------------------------------------------
// Role: upstream

const SMALL_BODY = Buffer.alloc(1024, 'a');
const CHUNK = Buffer.alloc(64 * 1024, 'b');

function streamBytes(res, total, { chunkDelayMs = 0, destroyAfter = Infinity } = {}) {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  let sent = 0;
  let stopped = false;
  res.on('close', () => (stopped = true));
  const pump = () => {
    while (!stopped && sent < total) {
      if (sent >= destroyAfter) {
        // An upstream that dies mid-body: no more bytes, the connection is torn down.
        res.socket?.destroy();
        return;
      }
      const n = Math.min(CHUNK.length, total - sent);
      sent += n;
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (chunkDelayMs > 0 && sent < total) {
        setTimeout(pump, chunkDelayMs);
        return;
      }
      if (!more) {
        res.once('drain', pump);
        return;
      }
    }
    if (!stopped) res.end();
  };
  pump();
}

function handleUpstream(req, res) {
  const [path, query = ''] = (req.url ?? '/').split('?', 2);
  const params = new URLSearchParams(query);
  if (req.method === 'GET' && path === '/small') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1024' });
    res.end(SMALL_BODY);
  } else if (req.method === 'GET' && path === '/big') {
    streamBytes(res, Math.round(Math.min(16, Number(params.get('mb') ?? '1')) * MIB));
  } else if (req.method === 'GET' && path === '/slow') {
    // A slow upstream: 8 chunks of 64 KiB, 250 ms apart.
    streamBytes(res, 8 * CHUNK.length, { chunkDelayMs: 250 });
  } else if (req.method === 'GET' && path === '/reset-mid') {
    streamBytes(res, MIB, { destroyAfter: 256 * 1024 });
  } else if (req.method === 'POST' && path === '/upload') {
    let bytes = 0;
    req.on('data', (chunk) => (bytes += chunk.length));
    req.on('end', () => {
      const body = String(bytes);
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
      res.end(body);
    });
    req.on('error', () => undefined);
  } else {
    res.writeHead(404, { 'content-length': '0' });
    res.end();
  }
}

function handleUpgrade(req, socket) {
  socket.on('error', () => undefined);
  const key = req.headers['sec-websocket-key'];
  if (req.url !== '/ws' || typeof key !== 'string') {
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
    return;
  }
  const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
  let buffer = Buffer.alloc(0);
  socket.on('data', (data) => {
    const { frames, rest } = wsParse(Buffer.concat([buffer, data]));
    buffer = rest;
    for (const frame of frames) {
      if (frame.opcode === 8) {
        socket.end(wsFrame(8, frame.payload.subarray(0, 2), false));
        return;
      }
      if (frame.opcode === 1 || frame.opcode === 2) socket.write(wsFrame(frame.opcode, frame.payload, false));
    }
  });
}

async function runUpstream(args) {
  const files = ensureUpstreamCertificates(args.dir);
  const server = https.createServer({ key: readFileSync(files.key), cert: readFileSync(files.cert), ALPNProtocols: ['http/1.1'], keepAliveTimeout: 120_000, requestTimeout: 0 }, handleUpstream);
  server.on('upgrade', handleUpgrade);
  server.on('clientError', (_error, socket) => socket.destroy());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  process.stdout.write(JSON.stringify({ event: 'listening', port: server.address().port, ca: files.ca }) + '\n');
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------------
// Clients: how a TLS connection to the upstream is opened (through the proxy, or from inside
// the jail where every connect is redirected to the gateway), and the request kinds on top

/** Through an explicit proxy: CONNECT, then TLS inside the tunnel. Resolves the TLS socket. */
function tunnelConnector(proxyPort, authority) {
  const servername = authority.slice(0, authority.lastIndexOf(':'));
  return (alpn) => withTimeout(new Promise((resolvePromise, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    socket.once('error', reject);
    socket.write(`CONNECT ${authority} HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
    let head = Buffer.alloc(0);
    const onData = (data) => {
      head = Buffer.concat([head, data]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      const status = Number(head.subarray(0, end).toString('latin1').split(' ')[1]);
      if (status !== 200) {
        socket.destroy();
        reject(Object.assign(new Error(`CONNECT answered ${status}`), { soakKind: `connect-${status}` }));
        return;
      }
      if (head.length > end + 4) socket.unshift(head.subarray(end + 4));
      const secure = tls.connect({ socket, servername, ALPNProtocols: [alpn], rejectUnauthorized: false });
      secure.once('error', reject);
      secure.once('secureConnect', () => {
        secure.off('error', reject);
        socket.off('error', reject);
        resolvePromise(secure);
      });
    };
    socket.on('data', onData);
  }), REQUEST_TIMEOUT_MS, 'CONNECT + TLS');
}

/** Straight to the name (inside the jail the gateway answers). */
function directConnector(authority) {
  const at = authority.lastIndexOf(':');
  const host = authority.slice(0, at);
  const port = Number(authority.slice(at + 1));
  return (alpn) => withTimeout(new Promise((resolvePromise, reject) => {
    const secure = tls.connect({ host, port, servername: host, ALPNProtocols: [alpn], rejectUnauthorized: false });
    secure.once('error', reject);
    secure.once('secureConnect', () => {
      secure.off('error', reject);
      resolvePromise(secure);
    });
  }), REQUEST_TIMEOUT_MS, 'TLS connect');
}

/** An http.Agent whose connections come from `connect` (a tunnel, or TLS from inside the jail). */
class ConnectorAgent extends http.Agent {
  constructor(connect, options) {
    super(options);
    this.connectTls = connect;
  }

  createConnection(_options, callback) {
    this.connectTls('http/1.1').then((socket) => callback(null, socket), callback);
    return undefined;
  }
}

/**
 * One HTTP/1.1 request. `onBody(res, req)` may read the body its own way (slowly, or abort);
 * by default the body is drained. Counts into `tally`.
 */
function h1Request(tally, agent, authority, { method = 'GET', path, body, expectStatus = 200, onBody, statusOutcomes = {} }) {
  return withTimeout(new Promise((resolvePromise) => {
    let settled = false;
    const finish = (outcome) => {
      if (settled) return;
      settled = true;
      // Unexpected outcomes name the request, so a run that fails says where to look.
      count(tally, EXPECTED_OUTCOMES.has(outcome) ? outcome : `${outcome} ${method} ${path.split('?')[0]}`);
      if (outcome === 'ok') tally.completed += 1;
      resolvePromise(outcome);
    };
    const headers = { host: authority };
    if (body) headers['content-length'] = String(body.length);
    const req = http.request({ agent, method, path, headers, host: 'soak.invalid' });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(Object.assign(new Error('no byte for 30 s'), { soakKind: 'timeout' })));
    req.once('socket', () => attempt(tally, path.split('?')[0]));
    req.on('error', (error) => finish(errorKind(error)));
    req.on('response', (res) => {
      tally.answered += 1;
      if (res.statusCode !== expectStatus || !onBody) {
        res.on('error', (error) => finish(errorKind(error)));
        res.on('aborted', () => finish('reset'));
      }
      if (res.statusCode !== expectStatus) {
        res.resume();
        res.on('end', () => finish(statusOutcomes[res.statusCode] ?? `status-${res.statusCode}`));
        return;
      }
      if (onBody) {
        onBody(res, req).then(finish, (error) => finish(errorKind(error)));
        return;
      }
      res.resume();
      res.on('end', () => finish(expectStatus === 403 ? 'denied-403 (expected)' : 'ok'));
    });
    req.end(body);
  }), REQUEST_TIMEOUT_MS + 5000, `${method} ${path}`).catch((error) => {
    count(tally, `${errorKind(error)} ${method} ${path.split('?')[0]}`);
    return errorKind(error);
  });
}

/** A body read slowly: one pause of `pauseMs` per chunk (a client on a slow link). */
function slowRead(pauseMs) {
  return (res) => new Promise((resolvePromise, reject) => {
    res.on('data', () => {
      res.pause();
      setTimeout(() => res.resume(), pauseMs);
    });
    res.on('end', () => resolvePromise('ok'));
    res.on('error', reject);
    res.on('aborted', () => reject(Object.assign(new Error('body cut short'), { soakKind: 'reset' })));
  });
}

/** An upstream that dies mid-body: the client must see the body cut short (or a 502), never hang. */
function expectCutShort(res) {
  return new Promise((resolvePromise) => {
    let bytes = 0;
    const expected = Number(res.headers['content-length'] ?? -1);
    res.on('data', (chunk) => (bytes += chunk.length));
    res.on('end', () => resolvePromise(bytes === expected ? 'upstream-reset-not-seen' : 'upstream-reset (expected)'));
    res.on('aborted', () => resolvePromise('upstream-reset (expected)'));
    res.on('error', () => resolvePromise('upstream-reset (expected)'));
    res.on('close', () => resolvePromise(bytes === expected ? 'upstream-reset-not-seen' : 'upstream-reset (expected)'));
  });
}

/** Reads `bytes` of the body, then tears the connection down (a client that goes away). */
function resetAfter(bytes) {
  return (res, req) => new Promise((resolvePromise) => {
    let seen = 0;
    res.on('data', (chunk) => {
      seen += chunk.length;
      if (seen >= bytes) {
        req.destroy();
        resolvePromise('client-reset (intended)');
      }
    });
    res.on('end', () => resolvePromise('ok'));
    res.on('error', () => resolvePromise('client-reset (intended)'));
  });
}

/**
 * Closes with a TCP reset where the socket beneath the TLS is reachable (the tunnel's), else
 * destroys it: either way the gateway sees the client vanish mid-body.
 */
function abruptClose(secure) {
  const raw = secure._parent;
  if (raw instanceof net.Socket && typeof raw.resetAndDestroy === 'function') raw.resetAndDestroy();
  secure.destroy();
}

/** POST that declares 1 MiB, sends a quarter of it, then resets: no answer is expected. */
function uploadThenReset(tally, connect, authority) {
  return withTimeout((async () => {
    const socket = await connect('http/1.1');
    socket.on('error', () => undefined);
    attempt(tally, '/upload');
    socket.write(`POST /upload HTTP/1.1\r\nhost: ${authority}\r\ncontent-length: ${MIB}\r\n\r\n`);
    for (let i = 0; i < 4; i++) {
      if (!socket.write(CHUNK)) await once(socket, 'drain');
    }
    abruptClose(socket);
    count(tally, 'client-reset (intended)');
  })(), REQUEST_TIMEOUT_MS, 'upload then reset').catch((error) => count(tally, `${errorKind(error)} POST /upload (reset)`));
}

/** One h2 session: `rounds` rounds of `streams` concurrent GET /small, then the session closes. */
async function h2Session(tally, connect, authority, { streams, rounds, until }) {
  let socket;
  try {
    socket = await connect('h2');
  } catch (error) {
    count(tally, `${errorKind(error)} h2 connect`);
    return;
  }
  if (socket.alpnProtocol !== 'h2') {
    socket.destroy();
    count(tally, `alpn-${socket.alpnProtocol}`);
    return;
  }
  const session = http2.connect(`https://${authority}`, { createConnection: () => socket });
  session.on('error', () => undefined);
  const one = () => withTimeout(new Promise((resolvePromise) => {
    const stream = session.request({ ':method': 'GET', ':path': '/small', ':authority': authority });
    attempt(tally, '/small');
    let status = 0;
    stream.on('response', (headers) => {
      tally.answered += 1;
      status = Number(headers[':status']);
    });
    stream.resume();
    stream.on('end', () => resolvePromise(status === 200 ? 'ok' : `status-${status}`));
    stream.on('error', (error) => resolvePromise(errorKind(error)));
  }), REQUEST_TIMEOUT_MS, 'h2 stream').catch((error) => errorKind(error));
  for (let round = 0; round < rounds && Date.now() < until; round++) {
    const outcomes = await Promise.all(Array.from({ length: streams }, one));
    for (const outcome of outcomes) {
      count(tally, outcome === 'ok' ? outcome : `${outcome} h2 /small`);
      if (outcome === 'ok') tally.completed += 1;
    }
    if (outcomes.some((outcome) => outcome !== 'ok')) break;
  }
  await new Promise((r) => session.close(r));
  socket.destroy();
}

/** One WebSocket: upgrade, `messages` echoes, close. */
async function websocketSession(tally, connect, authority, messages) {
  await withTimeout((async () => {
    const socket = await connect('http/1.1');
    socket.on('error', () => undefined);
    try {
      let buffer = Buffer.alloc(0);
      let status = 0;
      const frames = [];
      let wake = null;
      let closed = false;
      socket.on('data', (data) => {
        buffer = Buffer.concat([buffer, data]);
        if (status === 0) {
          const end = buffer.indexOf('\r\n\r\n');
          if (end === -1) return;
          status = Number(buffer.subarray(0, end).toString('latin1').split(' ')[1]);
          tally.answered += 1;
          buffer = buffer.subarray(end + 4);
        }
        const parsed = wsParse(buffer);
        buffer = parsed.rest;
        frames.push(...parsed.frames);
        wake?.();
      });
      socket.on('close', () => {
        closed = true;
        wake?.();
      });
      /** Waits until `ready()`; the socket closing first is a reset. */
      const waitUntil = async (ready) => {
        while (!ready()) {
          if (closed) throw Object.assign(new Error('websocket closed early'), { soakKind: 'reset' });
          await new Promise((r) => (wake = r));
          wake = null;
        }
      };
      const key = Buffer.from(Array.from({ length: 16 }, (_, i) => i)).toString('base64');
      attempt(tally, '/ws');
      socket.write(`GET /ws HTTP/1.1\r\nhost: ${authority}\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`);
      await waitUntil(() => status !== 0);
      if (status !== 101) throw Object.assign(new Error(`upgrade answered ${status}`), { soakKind: `status-${status}` });
      for (let i = 0; i < messages; i++) {
        const payload = Buffer.from(`soak message ${i}`);
        socket.write(wsFrame(1, payload, true));
        await waitUntil(() => frames.length > 0);
        if (!frames.shift().payload.equals(payload)) throw Object.assign(new Error('websocket echo differs'), { soakKind: 'ws-echo-mismatch' });
      }
      socket.end(wsFrame(8, Buffer.from([0x03, 0xe8]), true));
      count(tally, 'ok');
      tally.completed += 1;
    } finally {
      socket.destroy();
    }
  })(), REQUEST_TIMEOUT_MS * 2, 'websocket session').catch((error) => count(tally, `${errorKind(error)} /ws`));
}

/** A DNS query over UDP; resolves the RCODE name (NOERROR, NXDOMAIN...) and the answer count. */
function dnsQuery(port, name) {
  return withTimeout(new Promise((resolvePromise, reject) => {
    const socket = dgram.createSocket('udp4');
    const id = Math.floor(Math.random() * 65535);
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.once('message', (message) => {
      socket.close();
      const answer = dnsPacket.decode(message);
      resolvePromise({ rcode: answer.rcode, answers: answer.answers?.length ?? 0 });
    });
    socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), port, '127.0.0.1');
  }), 5000, 'DNS query');
}

/**
 * The mixed load on one gateway until `until` (ms epoch). `connect(alpn)` opens TLS to the
 * upstream through that gateway. `dnsCheck()` queries one allowed and one denied name.
 */
async function mixedLoad(tally, connect, authority, until, { keepAliveWorkers, newConnectionWorkers, h2, websocket, bigBodies, slowCases, resets, dnsCheck }) {
  const keepAlive = () => new ConnectorAgent(connect, { keepAlive: true, maxSockets: 1 });
  const fresh = () => new ConnectorAgent(connect, { keepAlive: false, maxSockets: 1 });
  const loop = async (pauseMs, body) => {
    while (Date.now() < until) {
      try {
        await body();
      } catch (error) {
        count(tally, `internal:${String(error?.message ?? error).slice(0, 40)}`);
      }
      if (pauseMs > 0) await sleep(pauseMs);
    }
  };
  const workers = [];
  for (let i = 0; i < keepAliveWorkers; i++) {
    const agent = keepAlive();
    let n = 0;
    workers.push(loop(5, async () => {
      n += 1;
      // One request in 20 is one the policy denies: the deny path and its audit line soak too.
      if (n % 20 === 0) await h1Request(tally, agent, authority, { path: '/admin/users', expectStatus: 403 });
      else await h1Request(tally, agent, authority, { path: '/small' });
    }).finally(() => agent.destroy()));
  }
  for (let i = 0; i < newConnectionWorkers; i++) {
    const agent = fresh();
    workers.push(loop(20, () => h1Request(tally, agent, authority, { path: '/small' })).finally(() => agent.destroy()));
  }
  if (h2) {
    for (let i = 0; i < 2; i++) workers.push(loop(5, () => h2Session(tally, connect, authority, { streams: 8, rounds: 200, until })));
  }
  if (websocket) workers.push(loop(50, () => websocketSession(tally, connect, authority, 20)));
  if (bigBodies) {
    const agent = keepAlive();
    const upload = Buffer.alloc(MIB, 'u');
    let up = false;
    workers.push(loop(100, () => {
      up = !up;
      return up
        ? h1Request(tally, agent, authority, { method: 'POST', path: '/upload', body: upload, onBody: (res) => readAll(res).then((text) => (text === String(MIB) ? 'ok' : 'upload-length-mismatch')) })
        : h1Request(tally, agent, authority, { path: '/big?mb=1' });
    }).finally(() => agent.destroy()));
  }
  if (slowCases) {
    const slowReader = keepAlive();
    workers.push(loop(200, () => h1Request(tally, slowReader, authority, { path: '/big?mb=2', onBody: slowRead(50) })).finally(() => slowReader.destroy()));
    const slowUpstream = keepAlive();
    workers.push(loop(200, () => h1Request(tally, slowUpstream, authority, { path: '/slow' })).finally(() => slowUpstream.destroy()));
  }
  if (resets) {
    let which = 0;
    workers.push(loop(200, async () => {
      which = (which + 1) % 3;
      if (which === 0) return uploadThenReset(tally, connect, authority);
      const agent = fresh();
      try {
        if (which === 1) await h1Request(tally, agent, authority, { path: '/big?mb=4', onBody: resetAfter(256 * 1024) });
        else await h1Request(tally, agent, authority, { path: '/reset-mid', onBody: expectCutShort, statusOutcomes: { 502: 'upstream-reset (expected)' } });
      } finally {
        agent.destroy();
      }
    }));
  }
  if (dnsCheck) {
    workers.push(loop(500, async () => {
      for (const outcome of await dnsCheck()) tally.dns[outcome] = (tally.dns[outcome] ?? 0) + 1;
    }));
  }
  await Promise.all(workers);
}

function readAll(res) {
  return new Promise((resolvePromise, reject) => {
    const chunks = [];
    res.on('data', (chunk) => chunks.push(chunk));
    res.on('end', () => resolvePromise(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
    res.on('aborted', () => reject(Object.assign(new Error('body cut short'), { soakKind: 'reset' })));
  });
}

// ---------------------------------------------------------------------------------------------
// Role: jail-client (runs inside `srt-gw run`; its only way out is the gateway)

async function runJailClient(args) {
  const until = Date.now() + args.seconds * 1000;
  const tally = newTally();
  const authority = `${UPSTREAM_NAME}:${args.port}`;
  const report = () => process.stdout.write(JSON.stringify({ event: 'tally', time: Date.now(), ...tally }) + '\n');
  const timer = setInterval(report, SAMPLE_INTERVAL_MS);
  // Inside the jail, a name lookup goes to the gateway's resolver: allowed names get a synthetic
  // address, the rest NXDOMAIN.
  const dnsCheck = async () => {
    const outcomes = [];
    try {
      await dns.promises.lookup(UPSTREAM_NAME, { family: 4 });
      outcomes.push('allowed-ok');
    } catch (error) {
      outcomes.push(`allowed-${error.code}`);
    }
    try {
      await dns.promises.lookup(DENIED_NAME, { family: 4 });
      outcomes.push('denied-answered');
    } catch (error) {
      outcomes.push(error.code === 'ENOTFOUND' ? 'denied-ok' : `denied-${error.code}`);
    }
    return outcomes;
  };
  await mixedLoad(tally, directConnector(authority), authority, until, {
    keepAliveWorkers: 2, newConnectionWorkers: 1, h2: true, websocket: true, bigBodies: true, slowCases: false, resets: true, dnsCheck,
  });
  clearInterval(timer);
  report();
}

// ---------------------------------------------------------------------------------------------
// Orchestrator

function usage() {
  return `usage: npm run soak -- [--minutes N] [--no-jail] [--keep]
  --minutes N   how long the load runs (default 5; under 3 the trend has too few samples after the warm-up and fails)
  --no-jail     only the explicit proxy (srt-gw serve), no \`srt-gw run\`
  --keep        keep the work directory (audit logs, policy, CA) and print where it is
Needs: dist/ built (npm run soak builds it); for the jail part bwrap, nft and the native helpers.`;
}

function parseArgs(argv) {
  const args = { role: 'orchestrator', minutes: 5, jail: true, dir: null, port: 0, seconds: 0 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(usage() + '\n');
      process.exit(0);
    } else if (flag === '--no-jail') args.jail = false;
    else if (flag === '--keep') args.keep = true;
    else if (flag === '--minutes') args.minutes = Number(argv[++i]);
    else if (flag === '--role') args.role = argv[++i];
    else if (flag === '--dir') args.dir = argv[++i];
    else if (flag === '--port') args.port = Number(argv[++i]);
    else if (flag === '--seconds') args.seconds = Number(argv[++i]);
    else throw new Error(`soak: unknown flag ${flag}\n${usage()}`);
  }
  if (args.role === 'orchestrator' && !(args.minutes >= 1 && args.minutes <= 24 * 60)) throw new Error('soak: --minutes must be between 1 and 1440 (3 or more for a trend verdict)');
  return args;
}

const children = new Set();

function startChild(command, argv, options = {}) {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.stderrText = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text) => (child.stderrText = (child.stderrText + text).slice(-20_000)));
  child.exited = new Promise((r) => child.once('exit', (code, signal) => {
    children.delete(child);
    r({ code, signal });
  }));
  return child;
}

/** Each JSON line the child prints on stdout, to `onLine`. */
function jsonLines(child, onLine) {
  const lines = readline.createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    try {
      onLine(JSON.parse(line));
    } catch {
      // not ours
    }
  });
}

function firstJsonLine(child, accept, what) {
  return withTimeout(new Promise((resolvePromise, reject) => {
    jsonLines(child, (record) => accept(record) && resolvePromise(record));
    child.exited.then(({ code }) => reject(new Error(`${what} exited (${code}) before it was ready: ${child.stderrText.slice(-2000)}`)));
  }), 30_000, `${what} start`);
}

async function stopChild(child, signal = 'SIGTERM', waitMs = 15_000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), waitMs);
  const result = await child.exited;
  clearTimeout(timer);
  return result;
}

function processSample(pid) {
  try {
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    return { rss, fds };
  } catch {
    return null;
  }
}

async function scrape(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    const value = (name, labels = '') => {
      const match = new RegExp(`^${name}${labels.replace(/[{}"]/g, '\\$&')} ([0-9.eE+-]+)$`, 'm').exec(text);
      return match ? Number(match[1]) : null;
    };
    return {
      heapUsed: value('nodejs_heap_size_used_bytes'),
      openConnections: value('srtgw_open_connections'),
      loopP99: value('nodejs_eventloop_lag_p99_seconds'),
      reloadsOk: value('srtgw_policy_reloads_total', '{outcome="ok"}'),
      reloadsFailed: value('srtgw_policy_reloads_total', '{outcome="failed"}'),
      auditLost: value('srtgw_audit_lines_lost_total'),
    };
  } catch {
    return null;
  }
}

/** Least-squares slope (per ms), its standard error, and the mean of y. */
function linearFit(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.t, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  for (const p of points) {
    sxx += (p.t - mx) ** 2;
    sxy += (p.t - mx) * (p.y - my);
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  let residual = 0;
  for (const p of points) residual += (p.y - (my + slope * (p.t - mx))) ** 2;
  const standardError = n > 2 && sxx > 0 ? Math.sqrt(residual / (n - 2) / sxx) : Infinity;
  return { slope, standardError, mean: my, span: n > 1 ? points[n - 1].t - points[0].t : 0 };
}

/** The trend verdict for one series after the warm-up (the first third of samples). */
function trendVerdict(samples, key, minRise, share) {
  const after = samples.slice(Math.floor(samples.length / 3)).filter((s) => Number.isFinite(s[key]));
  if (after.length < 5) return { ok: false, text: `too few samples after the warm-up (${after.length})` };
  const fit = linearFit(after.map((s) => ({ t: s.t, y: s[key] })));
  const rise = fit.slope * fit.span;
  const limit = Math.max(minRise, share * fit.mean);
  const significant = fit.slope > TREND_SIGMAS * fit.standardError;
  const ok = !(rise > limit && significant);
  return { ok, rise, limit, significant, perMinute: fit.slope * 60_000, samples: after.length };
}

/** Request lines in an audit log: the total and by path. */
async function countRequestLines(path) {
  const byPath = {};
  let total = 0;
  if (!existsSync(path)) return { total, byPath };
  const reader = readline.createInterface({ input: createReadStream(path) });
  for await (const line of reader) {
    if (!line.includes('"kind":"request"')) continue;
    total += 1;
    const requestPath = /"path":"([^"]*)"/.exec(line)?.[1] ?? '?';
    byPath[requestPath] = (byPath[requestPath] ?? 0) + 1;
  }
  return { total, byPath };
}

const mb = (bytes) => (bytes === null || bytes === undefined || !Number.isFinite(bytes) ? '-' : (bytes / MIB).toFixed(1));

function formatOutcomes(outcomes, previous = {}) {
  return Object.entries(outcomes)
    .map(([kind, n]) => [kind, n - (previous[kind] ?? 0)])
    .filter(([kind, n]) => n > 0 && kind !== 'ok')
    .map(([kind, n]) => `${kind}=${n}`)
    .join(' ') || '-';
}

function policyYaml(generation) {
  // Each reload changes the file (rule order and a comment), so a file-change reload really reloads.
  const rules = [
    `  - id: soak-admin-deny\n    host: ${UPSTREAM_NAME}\n    paths: ["/admin/**"]\n    action: deny`,
    `  - id: soak-upstream\n    host: ${UPSTREAM_NAME}\n    methods: [GET, POST]\n    paths: ["/**"]`,
  ];
  return `# soak policy, generation ${generation}\nversion: 1\nrules:\n${rules.join('\n')}\n`;
}

function jailUnavailable() {
  if (os.platform() !== 'linux') return 'not Linux';
  for (const command of ['bwrap', 'nft']) if (!commandExists(command)) return `${command} is not installed`;
  return null;
}

async function orchestrate(args) {
  if (!existsSync(CLI)) throw new Error(`${CLI} does not exist: run \`npm run build\` (npm run soak does)`);
  const startedAt = new Date();
  const workDir = mkdtempSync(join(os.tmpdir(), 'srt-gw-soak-'));
  const hardStop = setTimeout(() => {
    process.stderr.write('soak: over its time budget; stopping everything\n');
    for (const child of children) child.kill('SIGKILL');
    process.exit(2);
  }, (args.minutes * 60 + 300) * 1000);
  hardStop.unref();
  const cleanUp = () => {
    for (const child of children) child.kill('SIGKILL');
    if (args.keep) process.stdout.write(`  kept: ${workDir}\n`);
    else rmSync(workDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });

  try {
    const upstream = startChild(process.execPath, [SELF, '--role', 'upstream', '--dir', join(workDir, 'upstream')]);
    const upstreamReady = await firstJsonLine(upstream, (r) => r.event === 'listening', 'upstream');
    const authority = `${UPSTREAM_NAME}:${upstreamReady.port}`;
    const policyPath = join(workDir, 'policy.yaml');
    let generation = 0;
    writeFileSync(policyPath, policyYaml(generation));
    const gatewayFlags = ['--ca-dir', join(workDir, 'ca'), '--upstream-ca', upstreamReady.ca, '--resolve', `${UPSTREAM_NAME}=127.0.0.1`];

    // The explicit proxy.
    const serveLog = join(workDir, 'serve-audit.jsonl');
    const serve = startChild(process.execPath, [CLI, 'serve', '--policy', policyPath, '--listen', '127.0.0.1:0', '--log', serveLog, '--metrics', '127.0.0.1:0', '--dns', '127.0.0.1:0', ...gatewayFlags]);
    const listening = await firstJsonLine(serve, (r) => r.event === 'listening', 'srt-gw serve');
    const proxyPort = Number(listening.proxy.split(':').pop());
    const dnsPort = Number(listening.dns.split(':').pop());
    const serveMetrics = `http://${listening.metrics}/metrics`;

    // The jail: `srt-gw run` with this file's jail-client role inside.
    const jailSkip = args.jail ? jailUnavailable() : 'not asked for (--no-jail)';
    let jail = null;
    const jailTally = { latest: newTally() };
    const jailLog = join(workDir, 'jail-audit.jsonl');
    let jailMetrics = null;
    if (jailSkip === null) {
      const metricsPort = await freePort();
      jailMetrics = `http://127.0.0.1:${metricsPort}/metrics`;
      const seconds = args.minutes * 60;
      jail = startChild(process.execPath, [CLI, 'run', '-q', '--policy', policyPath, '--log', jailLog, '--metrics', `127.0.0.1:${metricsPort}`, ...gatewayFlags,
        '--', process.execPath, SELF, '--role', 'jail-client', '--port', String(upstreamReady.port), '--seconds', String(seconds)], { cwd: workDir });
      jsonLines(jail, (record) => {
        if (record.event === 'tally') jailTally.latest = record;
      });
    }

    const until = Date.now() + args.minutes * 60_000;
    const serveTally = newTally();
    const dnsCheck = async () => {
      const outcomes = [];
      try {
        const allowed = await dnsQuery(dnsPort, UPSTREAM_NAME);
        outcomes.push(allowed.rcode === 'NOERROR' && allowed.answers > 0 ? 'allowed-ok' : `allowed-${allowed.rcode}`);
        const denied = await dnsQuery(dnsPort, DENIED_NAME);
        outcomes.push(denied.rcode === 'NXDOMAIN' ? 'denied-ok' : `denied-${denied.rcode}`);
      } catch (error) {
        outcomes.push(errorKind(error));
      }
      return outcomes;
    };
    const load = mixedLoad(serveTally, tunnelConnector(proxyPort, authority), authority, until, {
      keepAliveWorkers: 4, newConnectionWorkers: 2, h2: true, websocket: true, bigBodies: true, slowCases: true, resets: true, dnsCheck,
    });

    // Policy reloads every 30 s, alternating a file rewrite (picked up by the watcher) and SIGHUP
    // (which the jail's `srt-gw run` does not take: its policy file is rewritten too, and it
    // reloads only what serve reloads).
    let reloads = 0;
    const reloadTimer = setInterval(() => {
      if (Date.now() >= until) return;
      reloads += 1;
      if (reloads % 2 === 1) writeFileSync(policyPath, policyYaml(++generation));
      else serve.kill('SIGHUP');
    }, RELOAD_INTERVAL_MS);

    const rows = [];
    const samples = { serve: [], jail: [] };
    const jailPid = jail?.pid;
    const sampleTimer = setInterval(() => {
      const t = Date.now();
      const s = processSample(serve.pid);
      if (s) samples.serve.push({ t, ...s });
      if (jailPid && jail.exitCode === null) {
        const j = processSample(jailPid);
        if (j) samples.jail.push({ t, ...j });
      }
    }, SAMPLE_INTERVAL_MS);

    process.stdout.write(`soak: ${args.minutes} min on ${os.hostname()} (${os.cpus().length} CPU, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}), upstream ${authority}\n`);
    process.stdout.write(`jail: ${jailSkip === null ? 'srt-gw run with a load generator inside' : `skipped: ${jailSkip}`}\n`);
    process.stdout.write('min  gateway  req/s  errors (unexpected and expected, by kind)                     RSS MiB  heap MiB  fds  open conns  loop p99 ms\n');
    let previous = { serve: { completed: 0, outcomes: {} }, jail: { completed: 0, outcomes: {} } };
    const reportMinute = async (minute) => {
      for (const [name, tally, metricsUrl, pid] of [['serve', serveTally, serveMetrics, serve.pid], ['jail', jailTally.latest, jailMetrics, jailPid]]) {
        if (name === 'jail' && jail === null) continue;
        const metrics = metricsUrl ? await scrape(metricsUrl) : null;
        const proc = pid ? processSample(pid) : null;
        const rate = (tally.completed - previous[name].completed) / (REPORT_INTERVAL_MS / 1000);
        const row = {
          minute, gateway: name, reqPerSecond: Math.round(rate), errors: formatOutcomes(tally.outcomes, previous[name].outcomes),
          rssMiB: proc ? Number(mb(proc.rss)) : null, heapMiB: metrics?.heapUsed ? Number(mb(metrics.heapUsed)) : null, fds: proc?.fds ?? null,
          openConnections: metrics?.openConnections ?? null, loopP99Ms: metrics?.loopP99 === null || metrics?.loopP99 === undefined ? null : Number((metrics.loopP99 * 1000).toFixed(1)),
        };
        rows.push(row);
        previous[name] = { completed: tally.completed, outcomes: { ...tally.outcomes } };
        process.stdout.write(`${String(minute).padStart(3)}  ${name.padEnd(7)}  ${String(row.reqPerSecond).padStart(5)}  ${row.errors.padEnd(60).slice(0, 200)}  ${String(row.rssMiB ?? '-').padStart(7)}  ${String(row.heapMiB ?? '-').padStart(8)}  ${String(row.fds ?? '-').padStart(4)}  ${String(row.openConnections ?? '-').padStart(10)}  ${String(row.loopP99Ms ?? '-').padStart(11)}\n`);
      }
    };
    let minute = 0;
    const reportTimer = setInterval(() => {
      minute += 1;
      void reportMinute(minute);
    }, REPORT_INTERVAL_MS);

    await withTimeout(load, args.minutes * 60_000 + DRAIN_MS, 'the load').catch((error) => process.stderr.write(`soak: ${error.message}\n`));
    clearInterval(reloadTimer);
    clearInterval(reportTimer);
    clearInterval(sampleTimer);
    const finalServeMetrics = await scrape(serveMetrics);

    // The jail's load stops by itself; then `srt-gw run` exits with its status.
    let jailExit = null;
    if (jail) {
      jailExit = await withTimeout(jail.exited, DRAIN_MS, 'srt-gw run exit').catch(async () => {
        process.stderr.write('soak: srt-gw run did not exit after its load; stopping it\n');
        return stopChild(jail);
      });
    }
    const serveExit = await stopChild(serve);
    await stopChild(upstream);

    // Verdicts.
    const failures = [];
    const verdicts = {};
    for (const [name, tally, log, exit] of [['serve', serveTally, serveLog, serveExit], ['jail', jailTally.latest, jailLog, jailExit]]) {
      if (name === 'jail' && jail === null) continue;
      const audit = await countRequestLines(log);
      // Lines with path "-" are framing denials of a connection, not requests this load sent: a
      // client that vanishes mid-upload gets its request's line and, today, also one of these
      // ("malformed HTTP request (HPE_INVALID_EOF_STATE)"). Counted apart, shown in the summary.
      const framingLines = audit.byPath['-'] ?? 0;
      const lines = audit.total - framingLines;
      const rss = trendVerdict(samples[name], 'rss', RSS_RISE_MIN_BYTES, RSS_RISE_MIN_SHARE);
      const fds = trendVerdict(samples[name], 'fds', FD_RISE_MIN, 0);
      const unexpected = Object.entries(tally.outcomes).filter(([kind]) => !EXPECTED_OUTCOMES.has(kind)).reduce((s, [, n]) => s + n, 0);
      const dnsBad = Object.entries(tally.dns).filter(([kind]) => !kind.endsWith('-ok')).reduce((s, [, n]) => s + n, 0);
      verdicts[name] = { attempted: tally.attempted, answered: tally.answered, completed: tally.completed, auditRequestLines: lines, framingLines, outcomes: tally.outcomes, dns: tally.dns, rss, fds, exit };
      if (!rss.ok) failures.push(`${name}: RSS trends upward after the warm-up: ${rss.text ?? `${mb(rss.rise)} MiB over the fit window (limit ${mb(rss.limit)} MiB), ${mb(rss.perMinute)} MiB/min`}`);
      if (!fds.ok) failures.push(`${name}: descriptors trend upward after the warm-up: ${fds.text ?? `${fds.rise.toFixed(1)} over the fit window (limit ${fds.limit}), ${fds.perMinute.toFixed(2)}/min`}`);
      if (lines < tally.answered) failures.push(`${name}: audit lines lost: ${tally.answered} requests were answered, the audit log has ${lines} request lines`);
      if (lines > tally.attempted) {
        const byPath = Object.keys({ ...audit.byPath, ...tally.attemptedByPath }).map((p) => `${p}: sent ${tally.attemptedByPath[p] ?? 0}, logged ${audit.byPath[p] ?? 0}`);
        failures.push(`${name}: more request lines (${lines}) than requests sent (${tally.attempted}): the count is wrong (${byPath.join('; ')})`);
      }
      const timeouts = Object.entries(tally.outcomes).filter(([kind]) => kind.startsWith('timeout')).reduce((s, [, n]) => s + n, 0);
      if (timeouts > 0) failures.push(`${name}: ${timeouts} requests got no byte for 30 s: ${Object.entries(tally.outcomes).filter(([kind]) => kind.startsWith('timeout')).map(([kind, n]) => `${kind}=${n}`).join(' ')}`);
      if (tally.completed === 0 || unexpected > UNEXPECTED_ERROR_SHARE * tally.attempted) failures.push(`${name}: ${unexpected} unexpected failures in ${tally.attempted} requests (limit ${UNEXPECTED_ERROR_SHARE * 100} %)`);
      if (dnsBad > 0) failures.push(`${name}: ${dnsBad} DNS checks went wrong: ${JSON.stringify(tally.dns)}`);
    }
    if (jail && jailExit?.code !== 0) failures.push(`jail: srt-gw run exited ${jailExit?.code ?? jailExit?.signal}: ${jail.stderrText.slice(-1500)}`);
    if (serveExit.code !== 0) failures.push(`serve: exited ${serveExit.code ?? serveExit.signal} on SIGTERM: ${serve.stderrText.slice(-1500)}`);
    if (finalServeMetrics) {
      if ((finalServeMetrics.reloadsFailed ?? 0) > 0) failures.push(`serve: ${finalServeMetrics.reloadsFailed} policy reloads failed`);
      if ((finalServeMetrics.reloadsOk ?? 0) < Math.floor(reloads / 2)) failures.push(`serve: only ${finalServeMetrics.reloadsOk} of ${reloads} policy reloads took effect`);
      if ((finalServeMetrics.auditLost ?? 0) > 0) failures.push(`serve: srtgw_audit_lines_lost_total is ${finalServeMetrics.auditLost}`);
    }

    process.stdout.write('\nsummary\n');
    for (const [name, v] of Object.entries(verdicts)) {
      process.stdout.write(`  ${name}: ${v.attempted} sent, ${v.answered} answered, ${v.completed} ok, ${v.auditRequestLines} audit request lines (+${v.framingLines} framing lines without a path); outcomes ${JSON.stringify(v.outcomes)}; dns ${JSON.stringify(v.dns)}\n`);
      process.stdout.write(`  ${name}: RSS after warm-up ${v.rss.text ?? `${mb(v.rss.perMinute)} MiB/min, rise ${mb(v.rss.rise)} MiB (limit ${mb(v.rss.limit)}), ${v.rss.significant ? 'significant' : 'noise'}`}; fds ${v.fds.text ?? `${v.fds.perMinute.toFixed(2)}/min, rise ${v.fds.rise.toFixed(1)} (limit ${v.fds.limit}), ${v.fds.significant ? 'significant' : 'noise'}`}\n`);
    }
    process.stdout.write(`  policy reloads: ${reloads} (serve metrics: ok ${finalServeMetrics?.reloadsOk ?? '?'}, failed ${finalServeMetrics?.reloadsFailed ?? '?'})\n`);
    const resultPath = join(BENCH_DIR, 'results', `soak-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    try {
      writeFileSync(resultPath, JSON.stringify({ startedAt, minutes: args.minutes, host: os.hostname(), cpus: os.cpus().length, loadAverageAtStart: os.loadavg(), jail: jailSkip ?? 'ran', rows, verdicts, reloads, failures }, null, 2) + '\n');
      process.stdout.write(`  written: ${resultPath}\n`);
    } catch {
      // results/ missing: the printed table is the result
    }
    if (failures.length > 0) {
      process.stdout.write(`\nFAIL\n${failures.map((f) => `  - ${f}`).join('\n')}\n`);
      process.exitCode = 1;
    } else {
      process.stdout.write('\nPASS: no upward RSS or descriptor trend after the warm-up, no audit line lost\n');
    }
  } finally {
    clearTimeout(hardStop);
    cleanUp();
  }
}

const args = parseArgs(process.argv.slice(2));
if (args.role === 'upstream') await runUpstream(args);
else if (args.role === 'jail-client') await runJailClient(args);
else if (args.role === 'orchestrator') await orchestrate(args);
else throw new Error(`soak: unknown role ${args.role}`);
