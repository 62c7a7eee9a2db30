#!/usr/bin/env node
// The bench's load generator: HTTPS/1.1 requests through an explicit proxy (CONNECT, then TLS
// inside the tunnel) or straight to the upstream (--direct), so every system sees the same load.
//
// Why not wrk, h2load or autocannon: none of them can send its requests through an HTTP proxy
// (no CONNECT support), so they could measure `direct` but not the proxies. A small,
// callback-driven client in one Node process is enough here: it drove ~46k req/s direct on a
// 2-vCPU machine, and it is the same client for every system.
//
// The client does NOT verify the certificate it is shown (rejectUnauthorized: false): that keeps
// the proxies' CAs out of the client and costs the same everywhere. The proxies themselves verify
// the upstream against its test CA.
//
// Modes (--mode):
//   keepalive  c workers, each: one connection (CONNECT once, TLS once), then sequential GETs
//   upload     same, each request a POST of --body-bytes to /upload
//   newconn    c workers, each request: new TCP + CONNECT + TLS + one GET + close
//   names      sequential new connections: --cached-name N times, then each of --names once;
//              reports the latency of a first request to a never-seen name vs a known one
//   slowread   one GET of --path (e.g. /big?mb=1024), read --read-mib MiB, then stop reading for
//              --pause seconds while sampling the server's RSS (--server-pid)
//   slowupload one POST of 1 GiB to /stall, where the upstream reads nothing for the pause while
//              the client writes as fast as backpressure allows; the server's RSS is sampled
//   (both memory modes first make --warm-requests 1 MiB exchanges, then take the baseline RSS)
// Prints one JSON line {"event":"result",...} on stdout.
import net from 'node:net';
import { createHistogram } from 'node:perf_hooks';
import tls from 'node:tls';
import { memoryMb, perCpuDelta, perCpuSeconds, treeCpuSeconds } from './proc-stats.mjs';
import { median } from './statistics.mjs';

const CRLFCRLF = Buffer.from('\r\n\r\n');
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 15_000;
const RETRY_DELAY_MS = 20;
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const args = {
    mode: 'keepalive', proxy: null, direct: null, connect: null, sni: null, host: null, path: '/small',
    concurrency: 1, warmup: 2, duration: 8, bodyBytes: MIB, serverPid: null, clientPids: [],
    names: [], cachedName: null, readMib: 8, pause: 5, warmRequests: 20,
  };
  const numeric = new Set(['concurrency', 'warmup', 'duration', 'bodyBytes', 'serverPid', 'readMib', 'pause', 'warmRequests']);
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!flag.startsWith('--') || value === undefined) throw new Error(`loadgen: bad argument ${flag}`);
    const key = flag.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in args)) throw new Error(`loadgen: unknown flag ${flag}`);
    if (key === 'names' || key === 'clientPids') args[key] = value.split(',').filter(Boolean);
    else args[key] = numeric.has(key) ? Number(value) : value;
  }
  if (!args.proxy === !args.direct) throw new Error('loadgen: give exactly one of --proxy HOST:PORT or --direct HOST:PORT');
  if (!args.host) throw new Error('loadgen: --host HOST:PORT (the Host header) is required');
  args.connect ??= args.host;
  args.sni ??= hostOf(args.host);
  return args;
}

function splitHostPort(value) {
  const at = value.lastIndexOf(':');
  return { host: value.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(value.slice(at + 1)) };
}

function hostOf(hostPort) {
  return splitHostPort(hostPort).host;
}

// ---------------------------------------------------------------------------------------------
// Opening a connection: TCP → CONNECT → TLS (or TLS straight to the upstream with --direct)

/** Calls back (error, tlsSocket) once TLS is up. `target` = { connect, sni }. */
function openTls(args, target, callback) {
  let done = false;
  const finish = (error, socket) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    callback(error, socket);
  };
  const timer = setTimeout(() => {
    raw?.destroy();
    secure?.destroy();
    finish(new Error('connect timeout'));
  }, CONNECT_TIMEOUT_MS);
  let raw = null;
  let secure = null;
  const startTls = (options) => {
    secure = tls.connect({ ...options, servername: target.sni, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false });
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error');
      finish(null, secure);
    });
    secure.once('error', (error) => finish(error));
  };

  if (args.direct) {
    const { host, port } = splitHostPort(args.direct);
    startTls({ host, port });
    secure.setNoDelay(true);
    return;
  }
  const proxy = splitHostPort(args.proxy);
  raw = net.connect({ host: proxy.host, port: proxy.port, noDelay: true });
  raw.once('error', (error) => finish(error));
  raw.once('connect', () => raw.write(`CONNECT ${target.connect} HTTP/1.1\r\nHost: ${target.connect}\r\n\r\n`));
  let head = Buffer.alloc(0);
  const onData = (chunk) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const end = head.indexOf(CRLFCRLF);
    if (end === -1) {
      if (head.length > 16 * 1024) {
        raw.destroy();
        finish(new Error('CONNECT response head too large'));
      }
      return;
    }
    raw.removeListener('data', onData);
    raw.removeAllListeners('error');
    const statusLine = head.latin1Slice(0, head.indexOf('\r\n'));
    if (!/^HTTP\/1\.[01] 200/.test(statusLine)) {
      raw.destroy();
      finish(new Error(`CONNECT refused: ${statusLine}`));
      return;
    }
    raw.pause();
    if (end + 4 < head.length) raw.unshift(head.subarray(end + 4));
    startTls({ socket: raw });
  };
  raw.on('data', onData);
}

// ---------------------------------------------------------------------------------------------
// One HTTP/1.1 connection: one request at a time, responses framed by Content-Length or
// chunked encoding. Body bytes are counted, never concatenated.

const HEAD = 0;
const BODY = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_CRLF = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;

class HttpConnection {
  constructor(socket, onBodyBytes) {
    this.socket = socket;
    this.onBodyBytes = onBodyBytes;
    this.callback = null;
    this.state = HEAD;
    this.pendingHead = null;
    this.line = '';
    this.remaining = 0;
    this.status = 0;
    this.keepAlive = true;
    this.closed = false;
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error('idle timeout')));
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => {
      this.closed = true;
      if (this.state === UNTIL_CLOSE) this.complete();
      else this.fail(new Error('connection closed before the response ended'));
    });
  }

  /** Sends head (+ body) and calls back (error, status, keepAlive) when the response has ended. */
  request(head, body, callback) {
    this.callback = callback;
    this.state = HEAD;
    if (body) {
      this.socket.cork();
      this.socket.write(head);
      this.socket.write(body);
      this.socket.uncork();
    } else {
      this.socket.write(head);
    }
  }

  destroy() {
    this.callback = null;
    this.socket.destroy();
  }

  fail(error) {
    const callback = this.callback;
    this.callback = null;
    callback?.(error);
  }

  complete() {
    const callback = this.callback;
    this.callback = null;
    this.state = HEAD;
    callback?.(null, this.status, this.keepAlive);
  }

  parseHead(text) {
    this.status = Number(text.slice(9, 12));
    const lower = text.toLowerCase();
    const length = /\r\ncontent-length:[ \t]*(\d+)/.exec(lower);
    const chunked = /\r\ntransfer-encoding:[^\r]*chunked/.test(lower);
    const connection = /\r\nconnection:([^\r]*)/.exec(lower)?.[1] ?? '';
    this.keepAlive = lower.startsWith('http/1.0') ? connection.includes('keep-alive') : !connection.includes('close');
    if (chunked) {
      this.state = CHUNK_SIZE;
      this.line = '';
    } else if (length) {
      this.remaining = Number(length[1]);
      this.state = BODY;
    } else if (this.status === 204 || this.status === 304) {
      this.remaining = 0;
      this.state = BODY;
    } else {
      this.state = UNTIL_CLOSE;
      this.keepAlive = false;
    }
  }

  onData(chunk) {
    if (this.callback === null) {
      // Bytes nobody asked for: the server broke framing. Count it as an error and drop the connection.
      this.socket.destroy(new Error('unexpected bytes between responses'));
      return;
    }
    let offset = 0;
    const length = chunk.length;
    while (offset < length || (this.state === BODY && this.remaining === 0)) {
      switch (this.state) {
        case HEAD: {
          let buffer = chunk;
          let start = offset;
          if (this.pendingHead) {
            buffer = Buffer.concat([this.pendingHead, chunk.subarray(offset)]);
            start = 0;
          }
          const end = buffer.indexOf(CRLFCRLF, start);
          if (end === -1) {
            this.pendingHead = Buffer.from(buffer.subarray(start));
            if (this.pendingHead.length > 64 * 1024) this.socket.destroy(new Error('response head too large'));
            return;
          }
          const consumedFromChunk = this.pendingHead ? end + 4 - this.pendingHead.length : end + 4 - offset;
          this.pendingHead = null;
          this.parseHead(buffer.latin1Slice(start, end));
          offset += consumedFromChunk;
          if (this.status >= 100 && this.status < 200) this.state = HEAD; // 100 Continue: wait for the real one
          break;
        }
        case BODY: {
          if (this.remaining === 0) {
            this.complete();
            if (offset < length) {
              this.socket.destroy(new Error('unexpected bytes after a response'));
            }
            return;
          }
          const n = Math.min(this.remaining, length - offset);
          this.remaining -= n;
          offset += n;
          this.onBodyBytes(n);
          break;
        }
        case CHUNK_SIZE:
        case TRAILERS: {
          const newline = chunk.indexOf(10, offset);
          const end = newline === -1 ? length : newline;
          this.line += chunk.latin1Slice(offset, end);
          offset = newline === -1 ? length : newline + 1;
          if (newline === -1) break;
          const line = this.line.replace(/\r$/, '');
          this.line = '';
          if (this.state === TRAILERS) {
            if (line === '') {
              this.state = BODY;
              this.remaining = 0;
            }
          } else {
            const size = parseInt(line, 16);
            if (Number.isNaN(size)) {
              this.socket.destroy(new Error('bad chunk size'));
              return;
            }
            if (size === 0) this.state = TRAILERS;
            else {
              this.remaining = size;
              this.state = CHUNK_DATA;
            }
          }
          break;
        }
        case CHUNK_DATA: {
          const n = Math.min(this.remaining, length - offset);
          this.remaining -= n;
          offset += n;
          this.onBodyBytes(n);
          if (this.remaining === 0) {
            this.state = CHUNK_CRLF;
            this.remaining = 2;
          }
          break;
        }
        case CHUNK_CRLF: {
          const n = Math.min(this.remaining, length - offset);
          this.remaining -= n;
          offset += n;
          if (this.remaining === 0) this.state = CHUNK_SIZE;
          break;
        }
        case UNTIL_CLOSE: {
          this.onBodyBytes(length - offset);
          offset = length;
          break;
        }
        default:
          throw new Error(`unknown parser state ${this.state}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics of the measured window

const stats = {
  measuring: false,
  responses: 0,
  bodyBytesIn: 0,
  bodyBytesOut: 0,
  errors: { transport: 0, status: 0 },
  connections: 0,
  latency: createHistogram({ lowest: 1, highest: 120e9, figures: 3 }),
};

function countBody(n) {
  if (stats.measuring) stats.bodyBytesIn += n;
}

function recordResponse(startNs, status, sentBytes) {
  if (!stats.measuring) return;
  stats.responses++;
  stats.bodyBytesOut += sentBytes;
  const elapsed = process.hrtime.bigint() - startNs;
  stats.latency.record(elapsed > 0n ? elapsed : 1n);
  if (status < 200 || status > 299) stats.errors.status++;
}

function recordError() {
  if (stats.measuring) stats.errors.transport++;
}

function histogramMs(histogram, percentile) {
  return histogram.count === 0 ? null : histogram.percentile(percentile) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// Load modes

const open = new Set();
let running = true;

function requestHead(args, method, path, extra = '') {
  return Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${args.host}\r\n${extra}\r\n`, 'latin1');
}

function keepAliveWorker(args, target, head, body) {
  if (!running) return;
  openTls(args, target, (error, socket) => {
    if (error) {
      recordError();
      setTimeout(() => keepAliveWorker(args, target, head, body), RETRY_DELAY_MS);
      return;
    }
    if (!running) return void socket.destroy();
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    if (stats.measuring) stats.connections++;
    const connection = new HttpConnection(socket, countBody);
    const sentBytes = body ? body.length : 0;
    const next = () => {
      if (!running) return connection.destroy();
      const start = process.hrtime.bigint();
      connection.request(head, body, (failure, status, keepAlive) => {
        if (failure) {
          recordError();
          connection.destroy();
          setTimeout(() => keepAliveWorker(args, target, head, body), RETRY_DELAY_MS);
          return;
        }
        recordResponse(start, status, sentBytes);
        if (keepAlive && !connection.closed) return next();
        connection.destroy();
        keepAliveWorker(args, target, head, body);
      });
    };
    next();
  });
}

function newConnectionWorker(args, target, head) {
  if (!running) return;
  const start = process.hrtime.bigint();
  openTls(args, target, (error, socket) => {
    if (error) {
      recordError();
      setTimeout(() => newConnectionWorker(args, target, head), RETRY_DELAY_MS);
      return;
    }
    if (!running) return void socket.destroy();
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    if (stats.measuring) stats.connections++;
    const connection = new HttpConnection(socket, countBody);
    connection.request(head, null, (failure, status) => {
      connection.destroy();
      if (failure) recordError();
      else recordResponse(start, status, 0);
      setImmediate(() => newConnectionWorker(args, target, head));
    });
  });
}

function cpuSample(args) {
  return {
    server: args.serverPid ? treeCpuSeconds(args.serverPid) : null,
    clients: args.clientPids.map((pid) => treeCpuSeconds(pid)),
    self: process.cpuUsage(),
    cpus: perCpuSeconds(),
    at: process.hrtime.bigint(),
  };
}

function cpuDelta(before, after) {
  const seconds = Number(after.at - before.at) / 1e9;
  const selfSeconds = (after.self.user + after.self.system - before.self.user - before.self.system) / 1e6;
  const clientSeconds = after.clients.reduce((sum, value, i) => sum + (value ?? 0) - (before.clients[i] ?? 0), 0);
  return {
    seconds,
    serverCpuSeconds: before.server !== null && after.server !== null ? after.server - before.server : null,
    loadgenCpuSeconds: selfSeconds,
    // loadgen + the processes sharing its core (the upstream when a proxy is under test)
    clientCoreCpuSeconds: selfSeconds + clientSeconds,
    perCpu: perCpuDelta(before.cpus, after.cpus),
  };
}

function runTimedLoad(args) {
  const target = { connect: args.connect, sni: args.sni };
  let start;
  if (args.mode === 'keepalive') {
    const head = requestHead(args, 'GET', args.path);
    start = () => keepAliveWorker(args, target, head, null);
  } else if (args.mode === 'upload') {
    const head = requestHead(args, 'POST', args.path, `Content-Type: application/octet-stream\r\nContent-Length: ${args.bodyBytes}\r\n`);
    const body = Buffer.alloc(args.bodyBytes, 'u');
    start = () => keepAliveWorker(args, target, head, body);
  } else {
    const head = requestHead(args, 'GET', args.path, 'Connection: close\r\n');
    start = () => newConnectionWorker(args, target, head);
  }
  for (let i = 0; i < args.concurrency; i++) start();

  let before;
  setTimeout(() => {
    stats.latency.reset();
    before = cpuSample(args);
    stats.measuring = true;
    setTimeout(() => {
      stats.measuring = false;
      const delta = cpuDelta(before, cpuSample(args));
      running = false;
      for (const socket of open) socket.destroy();
      const seconds = delta.seconds;
      emit({
        event: 'result',
        mode: args.mode,
        path: args.path,
        concurrency: args.concurrency,
        seconds,
        responses: stats.responses,
        reqPerSec: stats.responses / seconds,
        bytesIn: stats.bodyBytesIn,
        bytesOut: stats.bodyBytesOut,
        mibPerSec: (stats.bodyBytesIn + stats.bodyBytesOut) / MIB / seconds,
        errors: stats.errors.transport + stats.errors.status,
        transportErrors: stats.errors.transport,
        statusErrors: stats.errors.status,
        connections: stats.connections,
        p50Ms: histogramMs(stats.latency, 50),
        p99Ms: histogramMs(stats.latency, 99),
        maxMs: stats.latency.count ? stats.latency.max / 1e6 : null,
        serverCpuSeconds: delta.serverCpuSeconds,
        loadgenCpuSeconds: delta.loadgenCpuSeconds,
        clientCoreCpuSeconds: delta.clientCoreCpuSeconds,
        perCpu: delta.perCpu,
      });
    }, args.duration * 1000);
  }, args.warmup * 1000);
}

/** One new connection + GET + close; calls back (error, latencyNs, status). */
function singleRequest(args, name, callback) {
  const port = splitHostPort(args.host).port;
  const perName = { ...args, host: `${name}:${port}` };
  const target = { connect: `${name}:${port}`, sni: name };
  const head = requestHead(perName, 'GET', args.path, 'Connection: close\r\n');
  const start = process.hrtime.bigint();
  openTls(args, target, (error, socket) => {
    if (error) return callback(error);
    const connection = new HttpConnection(socket, () => {});
    connection.request(head, null, (failure, status) => {
      connection.destroy();
      if (failure) return callback(failure);
      callback(null, process.hrtime.bigint() - start, status);
    });
  });
}

function sequence(args, names) {
  return new Promise((resolve) => {
    const latencies = [];
    let errors = 0;
    let i = 0;
    const before = cpuSample(args);
    const next = () => {
      if (i === names.length) {
        const delta = cpuDelta(before, cpuSample(args));
        resolve({ latencies, errors, serverCpuSeconds: delta.serverCpuSeconds });
        return;
      }
      singleRequest(args, names[i++], (error, ns, status) => {
        if (error || status < 200 || status > 299) errors++;
        else latencies.push(Number(ns) / 1e6);
        setImmediate(next);
      });
    };
    next();
  });
}

async function runNames(args) {
  const cachedName = args.cachedName ?? hostOf(args.host);
  await sequence(args, Array(5).fill(cachedName)); // the known name's leaf is surely issued
  const cached = await sequence(args, Array(args.names.length).fill(cachedName));
  const fresh = await sequence(args, args.names);
  const perConnUs = (phase, n) => (phase.serverCpuSeconds === null || n === 0 ? null : (phase.serverCpuSeconds / n) * 1e6);
  const cachedMedian = median(cached.latencies);
  const freshMedian = median(fresh.latencies);
  emit({
    event: 'result',
    mode: 'names',
    names: args.names.length,
    cachedMedianMs: cachedMedian,
    newMedianMs: freshMedian,
    extraMs: cachedMedian !== null && freshMedian !== null ? freshMedian - cachedMedian : null,
    cachedServerCpuUsPerConn: perConnUs(cached, args.names.length),
    newServerCpuUsPerConn: perConnUs(fresh, args.names.length),
    errors: cached.errors + fresh.errors,
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Samples the server's RSS every 100 ms for `seconds`; returns the samples in MB. */
async function sampleRss(args, seconds) {
  const samples = [];
  const end = Date.now() + seconds * 1000;
  while (Date.now() < end) {
    samples.push(memoryMb(args.serverPid)?.rssMb ?? null);
    await sleep(100);
  }
  return samples.filter((value) => value !== null);
}

/**
 * Before a memory case: `count` sequential 1 MiB exchanges on one keep-alive connection, so the
 * server's TLS, leaf, upstream-connection and body-streaming paths exist before the baseline RSS
 * is taken; then a pause for the server to settle.
 */
async function warmUp(args, head, body, count) {
  const socket = await new Promise((resolve, reject) =>
    openTls(args, { connect: args.connect, sni: args.sni }, (error, s) => (error ? reject(error) : resolve(s))));
  const connection = new HttpConnection(socket, () => {});
  for (let i = 0; i < count; i++) {
    await new Promise((resolve, reject) => connection.request(head, body, (error) => (error ? reject(error) : resolve())));
  }
  connection.destroy();
  await sleep(1000);
}

async function runSlowRead(args) {
  await warmUp(args, requestHead(args, 'GET', '/big?mb=1'), null, args.warmRequests);
  const baseline = memoryMb(args.serverPid)?.rssMb ?? null;
  const socket = await new Promise((resolve, reject) =>
    openTls(args, { connect: args.connect, sni: args.sni }, (error, s) => (error ? reject(error) : resolve(s))));
  let received = 0;
  let status = 0;
  let reachedTarget;
  const flowing = new Promise((resolve) => (reachedTarget = resolve));
  const connection = new HttpConnection(socket, (n) => {
    received += n;
    if (received >= args.readMib * MIB) {
      socket.pause();
      reachedTarget();
    }
  });
  connection.request(requestHead(args, 'GET', args.path), null, (error, s) => {
    status = s ?? 0;
    reachedTarget(error ?? new Error('response ended before the client stopped reading'));
  });
  const outcome = await Promise.race([flowing, sleep(CONNECT_TIMEOUT_MS).then(() => new Error('no data'))]);
  const receivedAtPause = received;
  const samples = outcome instanceof Error ? [] : await sampleRss(args, args.pause);
  connection.destroy();
  const peak = samples.length ? Math.max(...samples) : null;
  emit({
    event: 'result',
    mode: 'slowread',
    error: outcome instanceof Error ? outcome.message : null,
    status,
    receivedMibAtPause: receivedAtPause / MIB,
    receivedMibAfterPause: received / MIB,
    baselineRssMb: baseline,
    peakRssMb: peak,
    rssIncreaseMb: peak !== null && baseline !== null ? peak - baseline : null,
    rssSamplesMb: samples,
  });
}

async function runSlowUpload(args) {
  await warmUp(args, requestHead(args, 'POST', '/upload', `Content-Type: application/octet-stream\r\nContent-Length: ${MIB}\r\n`),
    Buffer.alloc(MIB, 'u'), args.warmRequests);
  const baseline = memoryMb(args.serverPid)?.rssMb ?? null;
  const socket = await new Promise((resolve, reject) =>
    openTls(args, { connect: args.connect, sni: args.sni }, (error, s) => (error ? reject(error) : resolve(s))));
  const totalBytes = 1024 * MIB;
  const connection = new HttpConnection(socket, () => {});
  connection.request(requestHead(args, 'POST', `/stall?s=${args.pause + 5}`,
    `Content-Type: application/octet-stream\r\nContent-Length: ${totalBytes}\r\n`), null, () => {});
  const chunk = Buffer.alloc(64 * 1024, 'w');
  let written = 0;
  let stop = false;
  let writeError = null;
  socket.on('error', (error) => (writeError = error));
  const writer = (async () => {
    while (!stop && written < totalBytes && !socket.destroyed) {
      written += chunk.length;
      if (!socket.write(chunk)) await new Promise((resolve) => { socket.once('drain', resolve); socket.once('close', resolve); });
    }
  })();
  const samples = await sampleRss(args, args.pause);
  stop = true;
  connection.destroy();
  await Promise.race([writer, sleep(1000)]);
  const peak = samples.length ? Math.max(...samples) : null;
  emit({
    event: 'result',
    mode: 'slowupload',
    error: writeError?.message ?? null,
    writtenMib: written / MIB,
    baselineRssMb: baseline,
    peakRssMb: peak,
    rssIncreaseMb: peak !== null && baseline !== null ? peak - baseline : null,
    rssSamplesMb: samples,
  });
}

function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n', () => process.exit(0));
}

const args = parseArgs(process.argv.slice(2));
if (args.mode === 'names') await runNames(args);
else if (args.mode === 'slowread') await runSlowRead(args);
else if (args.mode === 'slowupload') await runSlowUpload(args);
else if (['keepalive', 'upload', 'newconn'].includes(args.mode)) runTimedLoad(args);
else throw new Error(`loadgen: unknown --mode ${args.mode}`);
