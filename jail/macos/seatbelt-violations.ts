// What Seatbelt refused during one macOS run, read from the system log and grouped like the
// gateway's denials (jail/denial-summary.ts). Every deny rule of the run's profile carries a random
// tag (`with message`), and the kernel appends it to the violation's log message:
//   Sandbox: curl(4242) deny(1) network-outbound 203.0.113.9:443\n<tag>
//   3 duplicate reports for Sandbox: cat(77) deny(1) file-read-data /Users/u/.ssh/id_ed25519\n<tag>
// UNVERIFIED on a real Mac (docs/macos.md): the format above is the documented and widely quoted
// one; the tests parse lines built from it, not lines recorded from a run of this code.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Denial } from '../denial-summary.js';

/** One line of the kernel's report, as logged. */
export interface SeatbeltViolation {
  /** The process name the kernel reports (may hold spaces). */
  readonly process: string;
  readonly pid: number;
  /** The Seatbelt operation: file-read-data, network-outbound, mach-lookup, ... */
  readonly operation: string;
  /** The path, address or service name; empty for operations without one (signal). */
  readonly target: string;
  /** How many identical reports the kernel merged into this line. */
  readonly repeats: number;
}

/** Seatbelt's refusals in the shape of the gateway's; `host` carries the path for file denials. */
export interface SeatbeltDenial extends Omit<Denial, 'kind' | 'monitored'> {
  /** connection: a connect, bind or accept refused; file: a read or write refused; other: anything else. */
  readonly kind: 'connection' | 'file' | 'other';
  readonly operation: string;
  readonly monitored: false;
}

/** Explains a refused path with the filesystem rule that decides it (the jail supplies it). */
export type ExplainPath = (path: string) => string | undefined;

const REPORT = /^(?:(\d+) duplicate reports? for )?Sandbox: (.+)\((\d+)\) deny\(\d+\) ([a-z][a-z0-9*-]*)(?: (.*))?$/;

/**
 * Parses one line of `log stream --style ndjson` (or `log show --style ndjson`) output. Only a
 * message of exactly two lines, a violation report and then `tag`, counts: another run's tag, a
 * line that is not JSON, and a target that smuggles a line break (a file named "x\n<tag>") do not.
 */
export function parseSeatbeltLogLine(line: string, tag: string): SeatbeltViolation | null {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return null;
  }
  const message = typeof entry === 'object' && entry !== null ? (entry as { eventMessage?: unknown }).eventMessage : undefined;
  if (typeof message !== 'string') return null;
  const parts = message.split('\n');
  if (parts.length !== 2 || parts[1] !== tag) return null;
  const match = REPORT.exec(parts[0]!);
  if (!match) return null;
  return {
    process: match[2]!,
    pid: Number(match[3]),
    operation: match[4]!,
    target: match[5] ?? '',
    repeats: match[1] === undefined ? 1 : Number(match[1]),
  };
}

/** Reports every program causes on macOS and that say nothing about the policy. */
export function isSeatbeltNoise(violation: SeatbeltViolation): boolean {
  if (violation.target === '/dev/dtracehelper') return true; // dyld registering DTrace probes
  return violation.operation === 'mach-lookup' && /^com\.apple\.(analyticsd|diagnosticd)$/.test(violation.target);
}

/** The denial a violation becomes in the run's summary. */
export function seatbeltDenial(violation: SeatbeltViolation, explainPath?: ExplainPath): Omit<SeatbeltDenial, 'count'> {
  const { operation, target } = violation;
  const example = `${operation} by ${violation.process}`;
  if (operation.startsWith('network-')) {
    if (target === '/private/var/run/mDNSResponder' || target === '/var/run/mDNSResponder') {
      return { kind: 'connection', host: target, example, operation, rule: null, monitored: false, reason: 'names do not resolve inside the jail: a client must send its requests through the proxy variables (the gateway resolves names)' };
    }
    if (operation !== 'network-outbound') {
      return { kind: 'connection', host: target, example, operation, rule: null, monitored: false, reason: 'listening is refused in the macOS jail: allow it on loopback with jail.allowLocalBinding in the policy or srt-gw run --allow-local-binding (other addresses are always refused)' };
    }
    const address = /^(.*):(\d+)$/.exec(target);
    const host = address ? address[1]!.replace(/^\[(.*)\]$/, '$1') : target;
    return {
      kind: 'connection',
      host,
      ...(address ? { port: Number(address[2]) } : {}),
      example,
      operation,
      rule: null,
      monitored: false,
      reason: 'only the srt-gw gateway is reachable from the macOS jail: this program connected directly, ignoring HTTP_PROXY/HTTPS_PROXY, and was cut off',
    };
  }
  if (operation.startsWith('file-')) {
    const writing = operation.startsWith('file-write') || operation === 'file-link' || operation === 'file-clone';
    const fallback = writing ? 'not writable in the jail' : 'hidden in the jail';
    return { kind: 'file', host: target, example, operation, rule: null, monitored: false, reason: (target.startsWith('/') ? explainPath?.(target) : undefined) ?? fallback };
  }
  return { kind: 'other', host: target === '' ? operation : target, example, operation, rule: null, monitored: false, reason: `${operation} is not allowed by the macOS jail's profile` };
}

/** Groups violations the way DenialCollector groups the gateway's; bounded. */
export class SeatbeltDenialGroups {
  private readonly groups = new Map<string, { -readonly [K in keyof SeatbeltDenial]: SeatbeltDenial[K] }>();
  private dropped = 0;

  constructor(
    private readonly explainPath?: ExplainPath,
    private readonly maxGroups = 200,
  ) {}

  add(violation: SeatbeltViolation): void {
    if (isSeatbeltNoise(violation)) return;
    const denial = seatbeltDenial(violation, this.explainPath);
    const key = [denial.kind, denial.operation, denial.host, denial.port, denial.reason].join('\u0000');
    const group = this.groups.get(key);
    if (group) {
      group.count += violation.repeats;
      return;
    }
    if (this.groups.size >= this.maxGroups) {
      this.dropped += violation.repeats;
      return;
    }
    this.groups.set(key, { ...denial, count: violation.repeats });
  }

  denials(): { denials: SeatbeltDenial[]; omitted: number } {
    return { denials: [...this.groups.values()], omitted: this.dropped };
  }
}

/** `log stream` arguments that select one run's violations (its tag ends every message). */
export function seatbeltLogStreamArgs(tag: string): string[] {
  if (!/^[A-Za-z0-9_-]+$/.test(tag)) throw new TypeError(`a log tag is letters, digits, "-" and "_" (got ${JSON.stringify(tag)})`);
  return ['stream', '--style', 'ndjson', '--predicate', `eventMessage ENDSWITH "${tag}"`];
}

export interface SeatbeltViolationMonitorOptions {
  tag: string;
  /** Default: /usr/bin/log. */
  logCommand?: string;
  explainPath?: ExplainPath;
  /** How long to keep reading after stop() is asked for: the log arrives late. Default 300 ms. */
  drainMs?: number;
}

/**
 * Reads the run's violations from `log stream` while the command runs. Best effort: when `log`
 * is missing or fails, the run goes on and reports only the gateway's denials.
 */
export class SeatbeltViolationMonitor {
  private readonly groups: SeatbeltDenialGroups;
  private readonly child: ChildProcess | null;
  private buffered = '';
  private failed = false;
  private stopped: Promise<void> | null = null;

  constructor(private readonly options: SeatbeltViolationMonitorOptions) {
    this.groups = new SeatbeltDenialGroups(options.explainPath);
    let child: ChildProcess | null = null;
    try {
      child = spawn(options.logCommand ?? '/usr/bin/log', seatbeltLogStreamArgs(options.tag), { stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      child = null;
    }
    this.child = child;
    if (child === null) return;
    child.on('error', () => {
      this.failed = true;
    });
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.read(chunk));
    // Never what keeps srt-gw alive: the command (while it runs) and stop()'s drain timer do that.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
  }

  private read(chunk: string): void {
    this.buffered += chunk;
    const lines = this.buffered.split('\n');
    this.buffered = lines.pop() ?? '';
    if (this.buffered.length > 1 << 20) this.buffered = '';
    for (const line of lines) {
      const violation = parseSeatbeltLogLine(line, this.options.tag);
      if (violation) this.groups.add(violation);
    }
  }

  /** Stops `log` after the drain delay and returns what it reported. Safe to call twice. */
  async stop(): Promise<{ denials: SeatbeltDenial[]; omitted: number }> {
    this.stopped ??= this.finish();
    await this.stopped;
    return this.groups.denials();
  }

  private async finish(): Promise<void> {
    const child = this.child;
    const running = () => child !== null && !this.failed && child.exitCode === null && child.signalCode === null;
    if (running()) await new Promise((resolve) => setTimeout(resolve, this.options.drainMs ?? 300));
    if (running()) {
      const closed = new Promise<void>((resolve) => child!.once('close', () => resolve()));
      child!.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 2_000)))]);
      clearTimeout(timer);
    }
    if (this.buffered !== '') this.read('\n');
  }
}
