// The macOS jail: `sandbox-exec -p PROFILE -- command args`, with a generated Seatbelt profile
// (seatbelt-profile.ts) whose only network way out is the gateway's loopback proxy port, and the
// proxy variables (proxy-environment.ts) that send clients there. No namespaces and no mounts:
// the command sees the host's filesystem through the shared rules, and the trust bundle at its
// host path. Constructible and testable anywhere; only spawn() needs a Mac.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { JAIL_SETUP_FAILED, type Jail, type JailedProcess, type JailPrepareOptions, type JailSpawnOptions, type PreparedJail } from '../jail.js';
import type { Realpath } from './macos-path.js';
import { macosCanonicalPath } from './macos-path.js';
import { proxyEnvironment } from './proxy-environment.js';
import { macosFilesystemPoints, macosPointFor, seatbeltProfile } from './seatbelt-profile.js';
import { SeatbeltViolationMonitor, type SeatbeltDenial } from './seatbelt-violations.js';

/** Ships with every macOS (deprecated in its man page since 10.x, still what Apple's own tools use). */
export const SANDBOX_EXEC = '/usr/bin/sandbox-exec';
export { MACOS_SYSTEM_CA_BUNDLE } from '../../ca/trust-bundle.js';
/** Loopback spellings Seatbelt's "localhost" covers; the gateway's proxy must listen on one of them. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

export interface MacosJailOptions {
  /** Default: process.platform (tests on Linux pass 'darwin' to check the rest). */
  platform?: NodeJS.Platform;
  /** Default: /usr/bin/sandbox-exec. */
  sandboxExec?: string;
  /** Read the run's violations from the system log (`log stream`). Default true. */
  reportViolations?: boolean;
  /** Default: /usr/bin/log. */
  logCommand?: string;
  /** Compile the profile once with /usr/bin/true before the command runs, to fail with a message. Default true. */
  validateProfile?: boolean;
  realpath?: Realpath;
}

/** One sandbox-exec command line: what spawn() runs. */
export interface SandboxExecCommand {
  file: string;
  args: string[];
  env: Record<string, string>;
  profile: string;
}

export interface SandboxExecInvocation {
  sandboxExec: string;
  /** The run's own TMPDIR: writable, removed with the run directory. */
  tmpDir: string;
  /** This run's tag in the system log. */
  logTag: string;
  realpath?: Realpath;
}

export interface MacosJailedProcess extends JailedProcess {
  /** What Seatbelt refused, from the system log, once the command has exited (empty when not reported). */
  violations(): Promise<{ denials: SeatbeltDenial[]; omitted: number }>;
}

/** The whole command for one run (pure apart from resolving symlinks of rule paths): tested on Linux. */
export function sandboxExecCommand(options: JailSpawnOptions, invocation: SandboxExecInvocation): SandboxExecCommand {
  const proxy = options.gateway.proxyAddress;
  if (!LOOPBACK_HOSTS.has(proxy.host)) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `the macOS jail reaches the gateway only on loopback, and its proxy listens on ${proxy.host}:${proxy.port}; let it listen on 127.0.0.1`);
  }
  const profile = seatbeltProfile(options.filesystem, {
    proxyPort: proxy.port,
    allowLocalBinding: options.allowLocalBinding === true,
    extraWritable: [{ path: invocation.tmpDir, reason: "writable: this run's own TMPDIR, removed after the run" }],
    logTag: invocation.logTag,
    realpath: invocation.realpath,
  });
  const env: Record<string, string> = {
    ...options.env,
    ...proxyEnvironment({ proxy, caBundle: options.caBundle, base: options.env }),
    // macOS spells TMPDIR with a trailing slash, and scripts written there rely on it.
    TMPDIR: `${macosCanonicalPath(invocation.tmpDir, invocation.realpath)}/`,
  };
  return { file: invocation.sandboxExec, args: ['-p', profile, '--', options.command, ...options.args], env, profile };
}

export class MacosJail implements Jail {
  readonly platform = 'darwin' as const;
  private readonly options: Required<Omit<MacosJailOptions, 'realpath'>> & Pick<MacosJailOptions, 'realpath'>;
  private lastBundle = '';

  constructor(options: MacosJailOptions = {}) {
    this.options = {
      platform: process.platform,
      sandboxExec: SANDBOX_EXEC,
      reportViolations: true,
      logCommand: '/usr/bin/log',
      validateProfile: true,
      ...options,
    };
  }

  /**
   * macOS has no mounts: the bundle is read at its host path, which the run directory decides.
   * spawn() names options.caBundle in every CA variable itself; before a spawn this is "".
   */
  get caBundlePathInJail(): string {
    return this.lastBundle;
  }

  checkAvailable(): void {
    if (this.options.platform !== 'darwin') {
      throw new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `the macOS jail (Seatbelt, sandbox-exec) runs only on macOS, and this is ${this.options.platform}: use the platform's own jail, or srt-gw serve as an explicit proxy`);
    }
    try {
      accessSync(this.options.sandboxExec, constants.X_OK);
    } catch {
      throw new SrtGwError(
        ErrorCodes.JAIL_UNAVAILABLE,
        `${this.options.sandboxExec} is missing or not executable; it ships with every macOS release: check that this is a standard macOS install (srt-gw doctor)`,
      );
    }
  }

  /**
   * Seatbelt has nothing to build ahead: sandbox-exec starts the command at once, so the
   * prepared jail only checks sandbox-exec now and spawns at start().
   */
  prepare(options: JailPrepareOptions): PreparedJail {
    this.checkAvailable();
    refuseOverlay(options);
    return {
      start: (gateway) => this.spawn({ ...options, gateway }),
      abort: async () => undefined,
    };
  }

  spawn(options: JailSpawnOptions): MacosJailedProcess {
    this.checkAvailable();
    refuseOverlay(options);
    const tmpDir = join(options.runDirectory.path, 'tmp');
    mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
    const logTag = `srt-gw-${randomBytes(8).toString('hex')}`;
    const command = sandboxExecCommand(options, {
      sandboxExec: this.options.sandboxExec,
      tmpDir,
      logTag,
      realpath: this.options.realpath,
    });
    this.lastBundle = options.caBundle;
    if (this.options.validateProfile) this.validate(command.profile, options.cwd);

    const points = macosFilesystemPoints(options.filesystem, { extraWritable: [{ path: tmpDir, reason: "this run's TMPDIR" }], realpath: this.options.realpath });
    const monitor = this.options.reportViolations
      ? new SeatbeltViolationMonitor({ tag: logTag, logCommand: this.options.logCommand, explainPath: (path) => macosPointFor(points, path)?.reason })
      : null;
    const child = spawn(command.file, command.args, {
      env: command.env,
      stdio: options.stdio ?? 'inherit',
      cwd: options.cwd,
      // SECURITY: its own session, without a controlling terminal, so TIOCSTI cannot push
      // keystrokes into the caller's shell (bwrap --new-session on Linux). Signals come through
      // signal(), to the whole process group.
      detached: true,
    });
    let finished: ReturnType<SeatbeltViolationMonitor['stop']> | undefined;
    const exited = new Promise<number>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `cannot start ${command.file}: ${error.code ?? error.message}`, { cause: error })),
      );
      child.once('close', (code, signal) => {
        // The log reader stops by itself once the command is gone: runInJail need not ask for the violations.
        finished = monitor?.stop();
        if (code !== null) resolve(code);
        else if (signal !== null) resolve(128 + (osConstants.signals[signal] ?? 0));
        else resolve(JAIL_SETUP_FAILED);
      });
    });
    const none = { denials: [] as SeatbeltDenial[], omitted: 0 };
    return {
      child,
      exited,
      signal(signal: NodeJS.Signals) {
        if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
        try {
          process.kill(-child.pid, signal);
        } catch {
          child.kill(signal);
        }
      },
      async violations() {
        await exited.catch(() => undefined);
        return monitor === null ? none : (finished ?? monitor.stop());
      },
    };
  }

  /** sandbox-exec reports a profile it cannot compile on stderr and exits non-zero before running anything. */
  private validate(profile: string, cwd: string): void {
    const probe = spawnSync(this.options.sandboxExec, ['-p', profile, '--', '/usr/bin/true'], { cwd, env: {}, stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000, encoding: 'utf8' });
    if (probe.status === 0) return;
    const why = probe.error?.message ?? (probe.stderr.trim().split('\n')[0] || `exit status ${probe.status ?? probe.signal}`);
    throw new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `sandbox-exec refused the generated profile (${why}); this is a bug in srt-gw or an unsupported macOS version: please report it with the output of srt-gw doctor`);
  }
}

/**
 * Seatbelt can allow or deny a write, not redirect it: there is no overlay to keep the command's
 * writes apart for review, so a run that asked for one does not start rather than writing directly.
 */
function refuseOverlay(options: JailPrepareOptions): void {
  if (options.overlay === undefined) return;
  throw new SrtGwError(
    ErrorCodes.JAIL_UNAVAILABLE,
    'filesystem.writeMode overlay (reviewed writes) needs the Linux jail: the macOS Seatbelt jail cannot redirect writes to a private layer; use writeMode direct on macOS',
  );
}
