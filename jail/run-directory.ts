// The private directory one `srt-gw run` keeps on the host: the gateway's unix sockets (mounted
// only where the jail's helpers can reach them) and the files the jail mounts read-only (trust
// bundle, nftables rules, hosts). Created 0700; removed by dispose() on every exit path, and a
// later run sweeps what a crashed one left behind.
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'srt-gw-run-';

export class RunDirectory {
  /** Holds the gateway's sockets; mounted for the jail's helpers, unmounted for the command. */
  readonly gatewayDir: string;
  /** Files the jail mounts read-only. */
  readonly jailDir: string;
  /** Where the gateway listens for the jail's DNS forwarder. */
  readonly dnsSocketPath: string;
  private disposed = false;

  private constructor(readonly path: string) {
    this.gatewayDir = join(path, 'gateway');
    this.jailDir = join(path, 'jail');
    this.dnsSocketPath = join(this.gatewayDir, 'dns.sock');
    mkdirSync(this.gatewayDir, { mode: 0o700 });
    mkdirSync(this.jailDir, { mode: 0o700 });
  }

  /**
   * A new directory under `parent` (default: defaultParent()), named
   * after this process so that a sweep can tell a live run from a dead one.
   */
  static create(parent: string = defaultParent()): RunDirectory {
    sweepLeftovers(parent);
    const path = mkdtempSync(join(parent, `${PREFIX}${process.pid}-`));
    chmodSync(path, 0o700);
    return new RunDirectory(path);
  }

  /** Writes a file for the jail (read-only inside: it is mounted with --ro-bind). */
  writeJailFile(name: string, content: string, mode = 0o444): string {
    const path = join(this.jailDir, name);
    writeFileSync(path, content, { mode });
    chmodSync(path, mode);
    return path;
  }

  /**
   * Replaces a jail file's content in place (the same inode), so a jail that has already mounted
   * it sees the new content: the trust bundle is written once the gateway has loaded its CA.
   */
  rewriteJailFile(path: string, content: string, mode = 0o444): void {
    chmodSync(path, 0o600);
    writeFileSync(path, content);
    chmodSync(path, mode);
  }

  /** Safe to call twice and from exit handlers (synchronous). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    rmSync(this.path, { recursive: true, force: true });
  }
}

/**
 * $XDG_RUNTIME_DIR (per user, a tmpfs); else, on Linux when TMPDIR names no other place, /dev/shm
 * (a tmpfs everywhere); else the system temp dir. On ext4, removing the run directory took
 * 36-390 ms in about one run of 40: its gateway/ is mounted in the jail, whose mount namespace
 * the kernel is still tearing down when the run ends. On tmpfs: none in 30.
 */
export function defaultParent(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && runtime.startsWith('/')) return runtime;
  if (platform === 'linux' && !env.TMPDIR && isWritableDirectory(SHARED_MEMORY_DIR)) return SHARED_MEMORY_DIR;
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

/** Removes run directories whose process no longer exists (a run killed with SIGKILL). */
export function sweepLeftovers(parent: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return removed;
  }
  for (const name of names) {
    const match = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (!match || processExists(Number(match[1]))) continue;
    try {
      rmSync(join(parent, name), { recursive: true, force: true });
      removed.push(join(parent, name));
    } catch {
      // another user's directory, or gone already: not ours to clean
    }
  }
  return removed;
}

/** Whether a process with this pid exists (EPERM: it does, and belongs to someone else). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
