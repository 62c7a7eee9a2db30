// The private directory one `srt-gw run` keeps on the host: the gateway's unix sockets (mounted
// only where the jail's helpers can reach them) and the files the jail mounts read-only (trust
// bundle, nftables rules, hosts). It lives in a per-user parent (`srt-gw-<uid>`, 0700); removed by
// dispose() on every exit path, and a later run sweeps what a killed one left behind.
//
// Which directories are still in use is decided by a lock that the run holds for its whole life
// and that any process of the user can test, whatever PID namespace either lives in: a unix
// socket the run listens on inside its directory (`alive.sock`). A sweep connects to it:
// accepted = a live run; ECONNREFUSED = nobody listens, the run is dead (the kernel closed its
// socket when it died, SIGKILL included). Chosen over the alternatives because:
// - a PID says nothing across PID namespaces: agent harnesses start runs in namespaces of their
//   own, where a sweep by PID takes a live run for dead and deletes its sockets;
// - flock()/fcntl locks are not in Node 20 and would need a native helper process per run, which
//   must itself be kept alive and reaped; a listening socket is one file descriptor of this
//   process, released by the kernel exactly when the process ends;
// - the kernel completes a unix-socket connect from the listen backlog, so a run whose event loop
//   is busy or stopped still counts as live; any answer but "refused" or "no socket" counts as live.
// The directory is built under a claiming name (`srt-gw-new-*`) and renamed into place only once
// its socket listens, so a run directory without a listener is always a dead one; a claiming
// directory without one is taken for a run between mkdir and listen until it is CLAIM_GRACE_MS old.
import { randomBytes } from 'node:crypto';
import { accessSync, chmodSync, constants, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';

const RUN_PREFIX = 'srt-gw-run-';
const CLAIM_PREFIX = 'srt-gw-new-';
/** The liveness socket, at the top of the run directory: neither gateway/ nor jail/, so never in a jail. */
export const LIVENESS_SOCKET = 'alive.sock';
/** A claiming directory this old without a listener belongs to a run that died while claiming it. */
export const CLAIM_GRACE_MS = 60_000;
/** How long a sweep waits for a connect to answer before it takes the run for live. */
const PROBE_TIMEOUT_MS = 2_000;
/** sun_path holds 108 bytes on Linux, 104 on macOS (with the terminating NUL); longer names are cut. */
const MAX_SOCKET_PATH_BYTES = 103;

export class RunDirectory {
  /** Holds the gateway's sockets; mounted for the jail's helpers, unmounted for the command. */
  readonly gatewayDir: string;
  /** Files the jail mounts read-only. */
  readonly jailDir: string;
  /** Where the gateway listens for the jail's DNS forwarder. */
  readonly dnsSocketPath: string;
  /** The per-user directory the run directories live in (sweepLeftovers' argument). */
  readonly parent: string;
  private disposed = false;

  private constructor(
    readonly path: string,
    private readonly liveness: net.Server,
  ) {
    this.parent = dirname(path);
    this.gatewayDir = join(path, 'gateway');
    this.jailDir = join(path, 'jail');
    this.dnsSocketPath = join(this.gatewayDir, 'dns.sock');
  }

  /**
   * Claims a new directory in `parent` (default: defaultParent(), created 0700 if missing, refused
   * if it is not a directory of this user's with mode 0700). The name carries this process's pid
   * for people reading it; liveness never depends on it. Throws SrtGwError when it cannot.
   */
  static create(parent: string = defaultParent()): RunDirectory {
    ensurePrivateParent(parent);
    const suffix = `${process.pid}-${randomBytes(6).toString('hex')}`;
    const claiming = join(parent, `${CLAIM_PREFIX}${suffix}`);
    const path = join(parent, `${RUN_PREFIX}${suffix}`);
    const socketPath = join(claiming, LIVENESS_SOCKET);
    // Both names are as long, so the socket's path fits before and after the rename.
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new SrtGwError(
        ErrorCodes.JAIL_UNAVAILABLE,
        `srt-gw run keeps unix sockets in ${parent}, whose path is too long for them (sockets allow ${MAX_SOCKET_PATH_BYTES} bytes): set XDG_RUNTIME_DIR or TMPDIR to a shorter directory`,
      );
    }
    // Connections are only probes: closed at once. Errors after listening (EMFILE on accept) lose
    // a probe, never the socket.
    const liveness = net.createServer((socket) => socket.destroy());
    liveness.on('error', () => undefined);
    try {
      mkdirSync(claiming, { mode: 0o700 });
      chmodSync(claiming, 0o700);
      // A pipe's bind and listen happen inside listen() (the 'listening' event only follows), so
      // the socket answers once the call returns; checked, since a failure is reported later.
      liveness.listen(socketPath);
      if (!liveness.listening || lstatSync(socketPath, { throwIfNoEntry: false })?.isSocket() !== true) {
        throw new Error(`could not listen on ${socketPath}`);
      }
      liveness.unref();
      mkdirSync(join(claiming, 'gateway'), { mode: 0o700 });
      mkdirSync(join(claiming, 'jail'), { mode: 0o700 });
      renameSync(claiming, path);
    } catch (error) {
      liveness.close();
      try {
        rmSync(claiming, { recursive: true, force: true });
      } catch {
        // left for the sweep: a claiming directory without a listener
      }
      throw new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `cannot create srt-gw run's private directory in ${parent}: ${describe(error)}; check that you can write there, or set XDG_RUNTIME_DIR or TMPDIR to a directory you own`, {
        cause: error,
      });
    }
    return new RunDirectory(path, liveness);
  }

  /** Writes a file for the jail (read-only inside: it is mounted with --ro-bind). */
  writeJailFile(name: string, content: string, mode = 0o444): string {
    const path = join(this.jailDir, name);
    try {
      writeFileSync(path, content, { mode });
      chmodSync(path, mode);
    } catch (error) {
      throw jailFileError(path, error);
    }
    return path;
  }

  /**
   * Replaces a jail file's content in place (the same inode), so a jail that has already mounted
   * it sees the new content: the trust bundle is written once the gateway has loaded its CA.
   */
  rewriteJailFile(path: string, content: string, mode = 0o444): void {
    try {
      chmodSync(path, 0o600);
      writeFileSync(path, content);
      chmodSync(path, mode);
    } catch (error) {
      throw jailFileError(path, error);
    }
  }

  /** Safe to call twice and from exit handlers (synchronous); never throws. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    try {
      rmSync(this.path, { recursive: true, force: true });
    } catch {
      // Still busy (the kernel tearing down the jail's mounts): dead once the socket closes
      // below, so the next run's sweep removes it.
    }
    this.liveness.close();
  }
}

/**
 * `srt-gw-<uid>` in $XDG_RUNTIME_DIR (per user, a tmpfs); else, on Linux when TMPDIR names no
 * other place, in /dev/shm (a tmpfs everywhere); else in the system temp dir. On ext4, removing the
 * run directory took 36-390 ms in about one run of 40: its gateway/ is mounted in the jail, whose
 * mount namespace the kernel is still tearing down when the run ends. On tmpfs: none in 30.
 */
export function defaultParent(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, uid: number | undefined = process.getuid?.()): string {
  return join(parentBase(env, platform), uid === undefined ? 'srt-gw' : `srt-gw-${uid}`);
}

function parentBase(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && runtime.startsWith('/')) return runtime;
  if (platform === 'linux' && !env.TMPDIR && isWritableDirectory(SHARED_MEMORY_DIR)) return SHARED_MEMORY_DIR;
  const tmp = env.TMPDIR;
  if (tmp && tmp.startsWith('/')) return tmp.length > 1 ? tmp.replace(/\/+$/, '') : tmp;
  return tmpdir();
}

const SHARED_MEMORY_DIR = '/dev/shm';

function isWritableDirectory(path: string): boolean {
  try {
    accessSync(path, constants.W_OK | constants.X_OK);
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Creates `parent` (0700) if missing, then makes sure it is a real directory of this user's that
 * no one else can enter.
 */
// SECURITY: another user who could plant the parent (a symlink to a place they read, or a
// directory of theirs) would see and could replace the gateway's sockets and the jail's trust
// bundle; lstat, so a planted symlink is refused, never followed. The base it lives in is sticky
// (/tmp, /dev/shm) or private ($XDG_RUNTIME_DIR), else refused too, so the checked directory cannot
// be swapped afterwards — jail/run-directory.test.ts, test/e2e/parallel-runs.test.ts.
export function ensurePrivateParent(parent: string): void {
  const refuse = (problem: string, cause?: unknown): never => {
    throw new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `srt-gw run's private directory ${parent} ${problem}`, { cause });
  };
  const base = dirname(parent);
  let baseStat;
  try {
    baseStat = statSync(base);
  } catch (error) {
    return refuse(`cannot be made: ${describe(error)}; set XDG_RUNTIME_DIR or TMPDIR to an existing directory you own`, error);
  }
  const uid = process.getuid?.();
  if (uid !== undefined && baseStat.uid !== uid && baseStat.uid !== 0) {
    refuse(`is in ${base}, which belongs to uid ${baseStat.uid} (who could swap it): set XDG_RUNTIME_DIR or TMPDIR to a directory you own`);
  }
  if ((baseStat.mode & 0o022) !== 0 && (baseStat.mode & 0o1000) === 0) {
    refuse(`is in ${base}, which others can write to and which lacks the sticky bit (others could swap it): chmod +t ${base}, or set XDG_RUNTIME_DIR or TMPDIR to a directory you own`);
  }
  try {
    mkdirSync(parent, { mode: 0o700 });
    chmodSync(parent, 0o700); // whatever the umask
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      refuse(`cannot be made: ${describe(error)}; set XDG_RUNTIME_DIR or TMPDIR to a directory you can write`, error);
    }
  }
  const stat = lstatSync(parent, { throwIfNoEntry: false });
  if (!stat) return refuse('vanished while it was being checked; try again');
  if (stat.isSymbolicLink()) refuse(`is a symbolic link; if you did not make it, someone else may have planted it: remove it (rm ${parent}) or set XDG_RUNTIME_DIR or TMPDIR to a directory you own`);
  if (!stat.isDirectory()) refuse(`is not a directory: remove it (rm ${parent}) or set XDG_RUNTIME_DIR or TMPDIR to a directory you own`);
  if (uid !== undefined && stat.uid !== uid) {
    refuse(`belongs to uid ${stat.uid}, not to you (uid ${uid}); if you did not make it, someone else may have planted it: have it removed, or set XDG_RUNTIME_DIR or TMPDIR to a directory you own`);
  }
  if ((stat.mode & 0o077) !== 0) {
    refuse(`has mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}; it must be private to you: chmod 700 ${parent}`);
  }
}

function jailFileError(path: string, error: unknown): SrtGwError {
  return new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `cannot write ${path} for the jail: ${describe(error)}; check the free space and permissions there, or set XDG_RUNTIME_DIR or TMPDIR to another directory`, { cause: error });
}

function describe(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  return code ? `${code} (${message})` : String(message ?? error);
}

/** What a sweep decided about one entry of the parent; only 'dead' ones are removed. */
export type RunDirectoryLiveness = 'alive' | 'dead' | 'not-a-run-directory';

/**
 * Whether a run still holds `path`, a directory in a run directories' parent. Decided by its
 * liveness socket (see the top of this file), never by a pid; whatever cannot be decided is alive.
 */
export async function runDirectoryLiveness(path: string, now: number = Date.now()): Promise<RunDirectoryLiveness> {
  const name = basename(path);
  const claiming = name.startsWith(CLAIM_PREFIX);
  if (!claiming && !name.startsWith(RUN_PREFIX)) return 'not-a-run-directory';
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat?.isDirectory()) return 'not-a-run-directory';
  const answer = await probe(join(path, LIVENESS_SOCKET));
  if (answer === 'listening' || answer === 'unknown') return 'alive';
  // A run directory got its name only once its socket listened: no listener = its run died.
  if (!claiming) return 'dead';
  // A claiming directory may be a live run between mkdir and listen.
  return now - Math.max(stat.mtimeMs, stat.ctimeMs) < CLAIM_GRACE_MS ? 'alive' : 'dead';
}

function probe(socketPath: string): Promise<'listening' | 'none' | 'unknown'> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const done = (answer: 'listening' | 'none' | 'unknown') => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done('unknown'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done('listening'));
    socket.once('error', (error: NodeJS.ErrnoException) => {
      // EAGAIN: the backlog is full, someone listens. EACCES and the rest: not ours to judge.
      done(error.code === 'ECONNREFUSED' || error.code === 'ENOENT' ? 'none' : 'unknown');
    });
  });
}

/**
 * Removes the run directories in `parent` that no live run holds (runs killed with SIGKILL), and
 * only those. Never rejects; returns what it removed.
 */
export async function sweepLeftovers(parent: string): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return [];
  }
  const now = Date.now();
  const removed = await Promise.all(
    names
      .filter((name) => name.startsWith(RUN_PREFIX) || name.startsWith(CLAIM_PREFIX))
      .map(async (name) => {
        const path = join(parent, name);
        try {
          if ((await runDirectoryLiveness(path, now)) !== 'dead') return null;
          rmSync(path, { recursive: true, force: true });
          return path;
        } catch {
          return null; // another sweep got there first, or it is still busy: the next sweep retries
        }
      }),
  );
  return removed.filter((path): path is string => path !== null);
}

/** Whether a process with this pid exists in this PID namespace (EPERM: it does, and belongs to someone else). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
