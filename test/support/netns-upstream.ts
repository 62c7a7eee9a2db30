// A test upstream in a private network namespace: a veth pair with a /30 of TEST-NET-2
// (198.51.100.0/24, never routed) and a documentation IPv6 /64 (2001:db8::/32), and an HTTPS echo
// server (netns-echo-server.mjs) inside the namespace that records every connection, TLS
// handshake, request and UDP datagram. The host side of the veth is the only way in, so anything
// the server records came through the host's network stack — that is, through the gateway.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { processExists } from '../../jail/run-directory.js';

const SERVER_SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'netns-echo-server.mjs');
const START_TIMEOUT_MS = 10_000;

export type UpstreamEvent =
  | { event: 'listening'; at: number }
  | { event: 'connection'; remote: string; local: string; at: number }
  | { event: 'tls'; servername: string | null; remote: string; at: number }
  | { event: 'tls-error'; reason: string; remote: string | null; at: number }
  | { event: 'request'; method: string; path: string; host: string | null; servername: string | null; remote: string; local: string; bodyBytes: number; at: number }
  | { event: 'udp'; port: number; remote: string; bytes: number; at: number };

export type UpstreamRequest = Extract<UpstreamEvent, { event: 'request' }>;

export interface NetnsUpstreamOptions {
  /** Name prefix of the namespace (the creating pid is appended, so a sweep can find leftovers). */
  prefix: string;
  /** Issues the server's certificate once the addresses are known (they are chosen at start). */
  certificate(addresses: string[]): { certPath: string; keyPath: string };
  /** UDP ports the server only listens on and records (e.g. 53, to prove no DNS arrives). */
  udpPorts?: number[];
}

export interface NetnsUpstream {
  namespace: string;
  /** The upstream's addresses, inside the namespace. */
  ipv4: string;
  /** Null when the host has IPv6 disabled. */
  ipv6: string | null;
  /** The host end of the veth pair. */
  hostIpv4: string;
  port: number;
  /** Everything recorded so far, in arrival order. */
  events(): UpstreamEvent[];
  /** A position in the event list; `since(mark)` returns what arrived after it. */
  mark(): number;
  since(mark: number): UpstreamEvent[];
  requests(mark?: number): UpstreamRequest[];
  /** Polls until an event after `mark` satisfies `predicate`; throws with the events seen when it times out. */
  waitFor(predicate: (event: UpstreamEvent) => boolean, mark?: number, timeoutMs?: number): Promise<UpstreamEvent>;
  /** Stops the server and removes the namespace and the veth pair. Safe to call twice. */
  close(): Promise<void>;
}

function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Kills what runs in the namespace and deletes it (the veth pair goes with it). Safe to call twice. */
export function disposeNetns(name: string): void {
  try {
    for (const pid of sh('ip', ['netns', 'pids', name]).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // no such namespace
  }
  try {
    sh('ip', ['netns', 'del', name]);
  } catch {
    // already gone
  }
}

/** Deletes namespaces `prefix-PID` whose creating process is gone (a crashed test run). */
export function sweepStaleNetns(prefix: string): void {
  let list = '';
  try {
    list = sh('ip', ['netns', 'list']);
  } catch {
    return;
  }
  for (const match of list.matchAll(new RegExp(`^(${prefix}-(\\d+))`, 'gm'))) {
    if (!processExists(Number(match[2]))) disposeNetns(match[1]!);
  }
}

/**
 * A free /30 in 198.51.100.0/24: blocks 60-63 first (test/e2e/dns-tunnel.test.ts uses 0-59 by
 * pid), then any block whose addresses no interface on the host holds.
 */
function freeBlock(): number {
  const used = sh('ip', ['-4', '-o', 'addr', 'show']);
  const order = [60, 61, 62, 63, ...Array.from({ length: 60 }, (_, i) => i)];
  const start = process.pid % 4;
  const candidates = [...order.slice(start, 4), ...order.slice(0, start), ...order.slice(4)];
  for (const block of candidates) {
    const base = block * 4;
    if (!used.includes(`198.51.100.${base + 1}/`) && !used.includes(`198.51.100.${base + 2}/`)) return block;
  }
  throw new Error('no free /30 left in 198.51.100.0/24');
}

export async function startNetnsUpstream(options: NetnsUpstreamOptions): Promise<NetnsUpstream> {
  sweepStaleNetns(options.prefix);
  const namespace = `${options.prefix}-${process.pid}`;
  disposeNetns(namespace);
  const block = freeBlock();
  const hostIpv4 = `198.51.100.${block * 4 + 1}`;
  const ipv4 = `198.51.100.${block * 4 + 2}`;
  const tag = `${process.pid % 100_000}${block}`.slice(-7);
  const vethHost = `sgn${tag}h`;
  const vethNs = `sgn${tag}n`;
  const inNs = (args: string[]) => sh('ip', ['netns', 'exec', namespace, ...args]);

  let child: ChildProcess | null = null;
  const events: UpstreamEvent[] = [];
  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child!.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child?.kill('SIGKILL'), 2000);
        await exited;
        clearTimeout(timer);
      }
      disposeNetns(namespace);
    })();
    return closed;
  };

  try {
    sh('ip', ['netns', 'add', namespace]);
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    sh('ip', ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs]);
    sh('ip', ['link', 'set', vethNs, 'netns', namespace]);
    sh('ip', ['addr', 'add', `${hostIpv4}/30`, 'dev', vethHost]);
    sh('ip', ['link', 'set', vethHost, 'up']);
    inNs(['ip', 'addr', 'add', `${ipv4}/30`, 'dev', vethNs]);
    inNs(['ip', 'link', 'set', vethNs, 'up']);
    let ipv6: string | null = `2001:db8:5367:${block.toString(16)}::2`;
    try {
      sh('ip', ['-6', 'addr', 'add', `2001:db8:5367:${block.toString(16)}::1/64`, 'dev', vethHost, 'nodad']);
      inNs(['ip', '-6', 'addr', 'add', `${ipv6}/64`, 'dev', vethNs, 'nodad']);
    } catch {
      ipv6 = null; // IPv6 disabled on this host: the IPv6 cases use only the jail's own view
    }

    const hosts = ipv6 ? [ipv4, ipv6] : [ipv4];
    const { certPath, keyPath } = options.certificate(hosts);
    const udpPorts = options.udpPorts ?? [];
    child = spawn(
      'ip',
      [
        'netns', 'exec', namespace,
        process.execPath, SERVER_SCRIPT,
        '--cert', certPath,
        '--key', keyPath,
        ...hosts.flatMap((host) => ['--host', host]),
        ...udpPorts.flatMap((port) => ['--udp-port', String(port)]),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let buffered = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => (stderr += chunk));
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') events.push(JSON.parse(line) as UpstreamEvent);
    });
    const started = child;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the netns upstream did not start within ${START_TIMEOUT_MS} ms: ${stderr}`)), START_TIMEOUT_MS);
      const poll = setInterval(() => {
        if (events.some((e) => e.event === 'listening')) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        }
      }, 20);
      started.once('exit', (code) => {
        clearTimeout(timer);
        clearInterval(poll);
        reject(new Error(`the netns upstream exited (${code}) before listening: ${stderr}`));
      });
    });

    const since = (mark: number) => events.slice(mark);
    return {
      namespace,
      ipv4,
      ipv6,
      hostIpv4,
      port: 443,
      events: () => [...events],
      mark: () => events.length,
      since,
      requests: (mark = 0) => since(mark).filter((e): e is UpstreamRequest => e.event === 'request'),
      waitFor: async (predicate, mark = 0, timeoutMs = 5000) => {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const found = since(mark).find(predicate);
          if (found) return found;
          if (Date.now() > deadline) throw new Error(`no upstream event matched within ${timeoutMs} ms; seen: ${JSON.stringify(since(mark))}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
