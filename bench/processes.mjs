// Processes for the benches (bench/proxy-comparison.mjs, bench/jail.mjs): CPU pinning, start/stop with
// cleanup on every exit path, waiting for readiness, and the bench upstream.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const START_TIMEOUT_MS = 20_000;
/** Where the server under test and the load go; set by setUpPinning(). */
export let SERVER_CPU = 0;
export let CLIENT_CPU = 1;

export function commandExists(name) {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export const pinning = { enabled: false, note: '' };

/** CPUs this process may use, from /proc/self/status (e.g. "0-1" or "2,4-5"); all CPUs elsewhere. */
function allowedCpus() {
  try {
    const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (list) {
      return list.split(',').flatMap((part) => {
        const [from, to = from] = part.split('-').map(Number);
        return Array.from({ length: to - from + 1 }, (_, i) => from + i);
      });
    }
  } catch {
    // not Linux
  }
  return os.cpus().map((_, i) => i);
}

export function setUpPinning() {
  const cpus = allowedCpus();
  if (cpus.length >= 2) [SERVER_CPU, CLIENT_CPU] = cpus;
  if (cpus.length < 2) {
    pinning.note = `only ${cpus.length} CPU: no pinning, server and load share it (numbers are not comparable to a 2-core run)`;
  } else if (!commandExists('taskset')) {
    pinning.note = 'taskset not installed (Debian: util-linux): no pinning, the scheduler places server and load';
  } else {
    pinning.enabled = true;
    pinning.serverCpu = SERVER_CPU;
    pinning.clientCpu = CLIENT_CPU;
    pinning.note = `server under test on cpu${SERVER_CPU}; load generator, upstream (and this orchestrator) on cpu${CLIENT_CPU}`;
    try {
      execFileSync('taskset', ['-a', '-p', '-c', String(CLIENT_CPU), String(process.pid)], { stdio: 'ignore' });
    } catch {
      // not fatal: the orchestrator is idle while a case runs
    }
  }
}

const children = new Set();

export function spawnPinned(cpu, command, args, options = {}) {
  const [file, argv] = pinning.enabled ? ['taskset', ['-c', String(cpu), command, ...args]] : [command, args];
  const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  child.exitState = null;
  child.once('exit', (code, signal) => {
    child.exitState = { code, signal };
    children.delete(child);
  });
  child.stderrText = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text) => {
    child.stderrText = (child.stderrText + text).slice(-20_000);
  });
  return child;
}

/** SIGTERM (unless signal is null), then SIGKILL if it has not exited within timeoutMs. */
export async function stopProcess(child, timeoutMs = 5000, signal = 'SIGTERM') {
  if (!child || child.exitState) return;
  const exited = once(child, 'exit');
  if (signal) child.kill(signal);
  let timer;
  const timeout = new Promise((r) => (timer = setTimeout(r, timeoutMs, 'timeout')));
  const outcome = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

export function killAllChildren() {
  for (const child of children) child.kill('SIGKILL');
}

/** Resolves with the first stdout line that parses as JSON and satisfies `accept`. */
export function waitForJsonLine(child, accept, timeoutMs, what) {
  return new Promise((resolvePromise, reject) => {
    let buffer = '';
    const onData = (text) => {
      buffer += text;
      let newline;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        let record;
        try {
          record = JSON.parse(line);
        } catch {
          continue;
        }
        if (accept(record)) {
          cleanup();
          resolvePromise(record);
          return;
        }
      }
    };
    const onExit = (code, signal) => {
      cleanup();
      reject(new Error(`${what} exited (code ${code}, signal ${signal}) before it was ready: ${tail(child.stderrText)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what} not ready after ${timeoutMs} ms: ${tail(child.stderrText)}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.removeListener('data', onData);
      child.removeListener('exit', onExit);
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

export function tail(text, lines = 8) {
  return (text ?? '').trim().split('\n').slice(-lines).join('\n');
}

export async function waitForPort(port, child, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitState) throw new Error(`${what} exited (code ${child.exitState.code}) before it listened: ${tail(child.stderrText)}`);
    const ok = await new Promise((r) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        r(true);
      });
      socket.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

export function freePort() {
  return new Promise((resolvePromise, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePromise(port));
    });
  });
}

export function firstLine(command, args) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
  } catch {
    return null;
  }
}

export async function startUpstream(workDir, cpu) {
  const child = spawnPinned(cpu, process.execPath, [join(BENCH_DIR, 'upstream.mjs'), '--dir', join(workDir, 'upstream')]);
  const ready = await waitForJsonLine(child, (r) => r.event === 'listening', START_TIMEOUT_MS, 'upstream').catch(async (error) => {
    await stopProcess(child);
    throw error;
  });
  return { child, pid: child.pid, port: ready.port, stop: () => stopProcess(child) };
}

