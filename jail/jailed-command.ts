// The library's run(): one command in the jail, handled like child_process.spawn (stdio, signals,
// exit status), through a gateway of its own or one the caller started. runInJail does the work;
// this wraps it in a handle that exists at once, before the gateway and the jail are up.
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { ErrorCodes, SrtGwError } from '../errors.js';
import type { Gateway } from '../gateway/gateway.js';
import { allowHostRule } from '../policies/allow-host-rule.js';
import type { Policy } from '../policies/types.js';
import type { JailedProcess } from './jail.js';
import { runInJail, type JailRunSettings, type RunResult } from './run-in-jail.js';

/** One of stdin, stdout, stderr: as for child_process.spawn ('pipe' gives a stream on the handle). */
export type RunStdio = 'inherit' | 'pipe' | 'ignore' | number;

export interface RunOptions extends JailRunSettings {
  /**
   * The policy: an object (parsePolicy, loadPolicy) or a policy file's path (read with the CLI's
   * loader; the file is read-only inside the jail). Default: no rules, so no network, unless
   * `allow` or `gateway` is given. Leave it out with `gateway`, whose policy applies.
   */
  policy?: Policy | string;
  /** Hosts to allow every request to, on top of the policy (like `srt-gw run --allow`); not with `gateway`. */
  allow?: readonly string[];
  /** Default 'inherit' for all three; 'pipe' makes `stdin`/`stdout`/`stderr` streams of the handle. */
  stdio?: RunStdio | readonly [RunStdio?, RunStdio?, RunStdio?];
}

export interface JailedCommand {
  /** With stdio[0] 'pipe': what is written here reaches the command's stdin, byte for byte. */
  readonly stdin: Writable | null;
  /** With stdio[1] 'pipe': the command's stdout. */
  readonly stdout: Readable | null;
  /** With stdio[2] 'pipe': the command's stderr. */
  readonly stderr: Readable | null;
  /** Resolves once the command runs, with the gateway it goes through (its decisions, its address). */
  readonly started: Promise<{ gateway: Gateway }>;
  /**
   * Resolves when the command has exited and the run is cleaned up: its exit status (128+N when
   * signal N ended it; 125 when the jail could not be built, bubblewrap's message then on
   * stderr), what the gateway denied during the run and, with writeMode 'overlay', the changes
   * applied to the host and those held for review (`applied`, `held`). Rejects with an SrtGwError when the run
   * could not start (policy invalid or unreadable, jail unavailable, CA unusable, a secret missing).
   */
  readonly exited: Promise<RunResult>;
  /**
   * Sends `signal` (default SIGTERM) to the command (never to the jail's helpers); a signal sent
   * before the command runs is delivered when it starts. False once the command has exited.
   */
  kill(signal?: NodeJS.Signals): boolean;
}

/** Spawns `command` with `args` in the jail. Returns at once; see JailedCommand. */
export function run(command: string, args: readonly string[] = [], options: RunOptions = {}): JailedCommand {
  const stdio = normalizeStdio(options.stdio);
  const stdin = stdio[0] === 'pipe' ? new PassThrough() : null;
  const stdout = stdio[1] === 'pipe' ? new PassThrough() : null;
  const stderr = stdio[2] === 'pipe' ? new PassThrough() : null;

  let jailed: JailedProcess | null = null;
  let finished = false;
  const pendingSignals: NodeJS.Signals[] = [];
  let markStarted!: (value: { gateway: Gateway }) => void;
  let failStart!: (error: unknown) => void;
  const started = new Promise<{ gateway: Gateway }>((resolve, reject) => {
    markStarted = resolve;
    failStart = reject;
  });
  // Whoever awaits only `exited` must not get an unhandled rejection from `started` as well.
  started.catch(() => undefined);

  const exited = (async (): Promise<RunResult> => {
    try {
      const { policy, policyFiles } = await runPolicy(options);
      return await runInJail({
        command,
        args,
        policy,
        policyFiles,
        gateway: options.gateway,
        cwd: options.cwd,
        env: options.env,
        stdio,
        caDir: options.caDir,
        upstreamCaFiles: options.upstreamCaFiles,
        upstreamProxy: options.upstreamProxy,
        resolve: options.resolve,
        dnsUpstream: options.dnsUpstream,
        auditLog: options.auditLog,
        metrics: options.metrics,
        monitor: options.monitor,
        upstreamTimeoutMs: options.upstreamTimeoutMs,
        onUnknownHost: options.onUnknownHost,
        unknownHostTimeoutMs: options.unknownHostTimeoutMs,
        writeMode: options.writeMode,
        deletes: options.deletes,
        onStart: ({ process: started, gateway }) => {
          jailed = started;
          connectPipes(started, stdin, stdout, stderr);
          for (const signal of pendingSignals.splice(0)) started.signal(signal);
          markStarted({ gateway });
        },
      });
    } catch (error) {
      failStart(error);
      throw error;
    } finally {
      finished = true;
      // Nothing more will come (a run that never started has no pipes to end them).
      if (!jailed) {
        stdout?.end();
        stderr?.end();
        stdin?.destroy();
      }
    }
  })();

  return {
    stdin,
    stdout,
    stderr,
    started,
    exited,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (finished) return false;
      if (jailed) jailed.signal(signal);
      else pendingSignals.push(signal);
      return true;
    },
  };
}

/** The run's policy and the files it came from. */
async function runPolicy(options: RunOptions): Promise<{ policy: Policy | undefined; policyFiles: string[] }> {
  if (options.gateway) {
    if (options.policy !== undefined || (options.allow?.length ?? 0) > 0) {
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, "run: with a started gateway the gateway's policy applies; leave out policy and allow");
    }
    return { policy: undefined, policyFiles: [] };
  }
  const source = options.policy;
  const base: Policy =
    typeof source === 'string' ? await (await import('../policies/loader.js')).loadPolicyFile(source) : (source ?? { version: 1, rules: [] });
  const allow = options.allow ?? [];
  if (allow.length === 0) return { policy: base, policyFiles: typeof source === 'string' ? [source] : [] };
  const ids = new Set(base.rules.map((rule) => rule.id));
  const extra = allow.map((host) => {
    const rule = allowHostRule(host);
    if (ids.has(rule.id)) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `allow ${rule.host}: the policy already has a rule with id ${rule.id}`);
    ids.add(rule.id);
    return rule;
  });
  return { policy: { ...base, rules: [...base.rules, ...extra] }, policyFiles: typeof source === 'string' ? [source] : [] };
}

function normalizeStdio(stdio: RunOptions['stdio']): [RunStdio, RunStdio, RunStdio] {
  if (stdio === undefined) return ['inherit', 'inherit', 'inherit'];
  if (typeof stdio === 'string' || typeof stdio === 'number') return [stdio, stdio, stdio];
  return [stdio[0] ?? 'inherit', stdio[1] ?? 'inherit', stdio[2] ?? 'inherit'];
}

/** Joins the handle's streams to the jail process's pipes, with backpressure both ways. */
function connectPipes(jailed: JailedProcess, stdin: PassThrough | null, stdout: PassThrough | null, stderr: PassThrough | null): void {
  const child = jailed.child;
  if (stdin && child.stdin) {
    // The command may exit without reading everything: writes after that are dropped, not thrown.
    child.stdin.on('error', () => undefined);
    stdin.pipe(child.stdin);
  }
  if (stdout && child.stdout) child.stdout.pipe(stdout);
  if (stderr && child.stderr) child.stderr.pipe(stderr);
}
