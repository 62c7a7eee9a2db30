// `srt-gw run [flags] -- COMMAND [ARGS...]`: the command in the jail, the gateway embedded here.
// Exit status: the command's (128+N when signal N killed it); 125 when srt-gw itself could not
// start the run (bad flag or policy, jail unavailable), with a message saying what to do.
import { constants as osConstants } from 'node:os';
import { isAbsolute, relative } from 'node:path';
import { isSrtGwError } from '../errors.js';
import { formatDenialSummary } from '../jail/denial-summary.js';
import { JAIL_SETUP_FAILED } from '../jail/jail.js';
import { runInJail } from '../jail/run-in-jail.js';
import { auditLogDestination, parseDnsServer, parseListenAddress, parseResolveOverride, parseSeconds, upstreamProxyFromFlags } from './flags.js';
import { tuneHeapForProxying } from './heap-tuning.js';
import { runPolicyFromFlags } from './policy-source.js';

export interface RunFlags {
  policy?: string;
  srtSettings?: string;
  allow: string[];
  allowLocalBinding: boolean;
  caDir?: string;
  upstreamCa: string[];
  upstreamProxy?: string;
  /** --no-upstream-proxy-for (commander names a "--no-" flag's value after the rest of its name). */
  upstreamProxyFor: string[];
  resolve: string[];
  dnsUpstream: string[];
  upstreamTimeout?: string;
  log?: string;
  metrics?: string;
  monitor: boolean;
  writePolicy?: string;
  writeMode?: 'direct' | 'overlay';
  quiet: boolean;
  /** --gateway: a remote srt-gw serve decides (jail/remote-gateway.ts). */
  gateway?: string;
  gatewayCa: string[];
  token?: string;
}

/** How long after start `run` tunes V8's heap (cli/heap-tuning.ts): start-up is over by then. */
const HEAP_TUNING_DELAY_MS = 250;

/** Signals a user sends to `srt-gw run` that the command should get instead. */
const FORWARDED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'];

export async function run(command: string, args: string[], flags: RunFlags): Promise<number> {
  return (await runToEnd(command, args, flags)).exitCode;
}

/**
 * `srt-gw run` as the command line runs it: the process ends with the run's status. A run that
 * ended normally has closed and awaited everything it started (the gateway and its audit log, the
 * sweeps, the check for planted files), so the process exits at once rather than after node has
 * torn its heap down (~15 ms of every run, wall and CPU). After a failure in srt-gw, or with output
 * still queued (stderr on a pipe is asynchronous on macOS), it ends by itself once all is done.
 */
export async function runAndExit(command: string, args: string[], flags: RunFlags): Promise<void> {
  const { exitCode, settled } = await runToEnd(command, args, flags);
  process.exitCode = exitCode;
  if (settled && process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit();
}

/** The run's exit status, and whether nothing it started can still be pending. */
async function runToEnd(command: string, args: string[], flags: RunFlags): Promise<{ exitCode: number; settled: boolean }> {
  let settings;
  try {
    const cwd = process.cwd();
    const { policy, files, notices } = await runPolicyFromFlags(flags, cwd);
    settings = {
      policy,
      policyFiles: files,
      cwd,
      caDir: flags.caDir,
      upstreamCaFiles: flags.upstreamCa,
      upstreamProxy: upstreamProxyFromFlags(flags.upstreamProxy, flags.upstreamProxyFor, process.env, (message) => process.stderr.write(`${message}\n`)),
      resolve: new Map(flags.resolve.map(parseResolveOverride)),
      dnsUpstream: flags.dnsUpstream.map(parseDnsServer),
      upstreamTimeoutMs: flags.upstreamTimeout === undefined ? undefined : parseSeconds('--upstream-timeout', flags.upstreamTimeout) * 1000,
      auditLog: auditLogDestination(flags.log, false),
      metrics: flags.metrics ? parseListenAddress('--metrics', flags.metrics) : null,
      monitor: flags.monitor,
      writePolicy: flags.writePolicy,
      writeMode: flags.writeMode,
      ...(flags.gateway === undefined ? {} : { remoteGateway: (await import('./remote-gateway-flags.js')).remoteGatewayFromFlags(flags, process.env) }),
    };
    // A draft that could not be written would only be found out after the command ran.
    if (flags.writePolicy !== undefined) (await import('../gateway/audit/observed-traffic.js')).checkDraftPolicyPath(flags.writePolicy);
    if (!flags.quiet) for (const notice of notices) process.stderr.write(`${notice}\n`);
  } catch (error) {
    return { exitCode: reportSetupFailure(error), settled: false };
  }
  // Once the command runs, not before: the setting matters only once bodies stream, and making
  // it is ~2.5 ms that start-up would otherwise wait for.
  setTimeout(tuneHeapForProxying, HEAP_TUNING_DELAY_MS).unref();

  // Installed before the command starts: a signal that arrived with no handler would kill this
  // process and, through --die-with-parent, the command, without the command's own handling.
  const pending: NodeJS.Signals[] = [];
  let forward: (signal: NodeJS.Signals) => void = (signal) => pending.push(signal);
  const handlers = FORWARDED_SIGNALS.map((signal) => {
    const handler = () => forward(signal);
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  try {
    const result = await runInJail({
      command,
      args,
      ...settings,
      onStart: ({ process: jailed }) => {
        forward = (signal) => jailed.signal(signal);
        for (const signal of pending.splice(0)) jailed.signal(signal);
      },
      onRemoteStart: ({ process: jailed }) => {
        forward = (signal) => jailed.signal(signal);
        for (const signal of pending.splice(0)) jailed.signal(signal);
      },
    });
    const hint = flags.gateway === undefined ? undefined : `The gateway ${flags.gateway} decided: a host is allowed by a rule in its policy, for the client of the token.`;
    if (!flags.quiet) process.stderr.write(formatDenialSummary(result.denials, result.omittedDenials, hint));
    // Held changes are said even with --quiet: the command's writes are not all on the host.
    if (result.changesId !== undefined || (!flags.quiet && result.applied.length > 0)) {
      const { formatHeldSummary } = await import('../jail/overlay/reviewed-writes.js');
      process.stderr.write(formatHeldSummary({ id: result.changesId ?? '', applied: result.applied, held: result.held }));
    }
    if (!flags.quiet && flags.writePolicy !== undefined) process.stderr.write(`srt-gw: draft policy written to ${flags.writePolicy} (review it, then: srt-gw policy check ${flags.writePolicy})\n`);
    if (!flags.quiet && result.exitCode !== 0) process.stderr.write(formatPlaceholderHint(result.readOnlyPlaceholders, settings.cwd));
    return { exitCode: result.exitCode, settled: true };
  } catch (error) {
    return { exitCode: reportSetupFailure(error), settled: false };
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}

/**
 * After a failed command: the protected paths that did not exist and so stayed read-only in the
 * jail, in the working directory. A command that got "Read-only file system" there (git init, an
 * editor writing its settings) learns why, and what to do instead. Empty when there are none.
 */
export function formatPlaceholderHint(placeholders: readonly string[], cwd: string): string {
  const names = placeholders
    .map((path) => relative(cwd, path))
    .filter((name) => name !== '' && !name.startsWith('..') && !isAbsolute(name) && !name.includes('/'))
    .sort();
  if (names.length === 0) return '';
  const git = names.includes('.git') ? '; for a repository, run git init before srt-gw run' : '';
  return `srt-gw: read-only in the jail because they did not exist (they configure programs that run on the host later): ${names.join(' ')}${git}, or review such writes with --write-mode overlay\n`;
}

function reportSetupFailure(error: unknown): number {
  if (!isSrtGwError(error)) throw error;
  process.stderr.write(`srt-gw: ${error.message}\n`);
  return JAIL_SETUP_FAILED;
}

/** 128+N for a signal name, as shells report it. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 0);
}
