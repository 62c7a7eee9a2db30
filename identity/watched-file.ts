// A small file the gateway reads again when it changes: a JWKS file, the token signing key, the
// revocation list. Changes are found by stat-ing the PATH at most once per interval, never by
// holding the inode: Kubernetes updates a mounted ConfigMap or projected volume by pointing the
// `..data` symlink at a new directory, so the path leads to a new file while the old one stays as
// it was.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type BigIntStats } from 'node:fs';

/** What the file holds now. */
export type WatchedFileState<T> =
  | { readonly kind: 'value'; readonly value: T }
  | { readonly kind: 'missing' }
  /** Unreadable, too large, not a regular file, or refused by `parse`; `error` says which. */
  | { readonly kind: 'error'; readonly error: string };

export interface WatchedFileOptions<T> {
  /** Turns the bytes into a value; throws (an Error whose message says what is wrong) to refuse them. */
  readonly parse: (content: Buffer) => T;
  /** Milliseconds since the epoch; injected by tests. */
  readonly now?: () => number;
  /** How often the path is stat-ed at most (default 1000 ms; 0: at every read). */
  readonly checkIntervalMs?: number;
  /** Larger files are refused rather than read (default 1 MiB). */
  readonly maxBytes?: number;
}

const DEFAULT_CHECK_INTERVAL_MS = 1000;
const DEFAULT_MAX_BYTES = 1024 * 1024;

export class WatchedFile<T> {
  private readonly parse: (content: Buffer) => T;
  private readonly now: () => number;
  private readonly checkIntervalMs: number;
  private readonly maxBytes: number;
  private state: WatchedFileState<T> | undefined;
  private identity: string | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private lastGood: T | undefined;

  constructor(
    readonly path: string,
    options: WatchedFileOptions<T>,
  ) {
    this.parse = options.parse;
    this.now = options.now ?? Date.now;
    this.checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** The file's current state, read again if the path leads to a changed file. */
  read(): WatchedFileState<T> {
    const now = this.now();
    if (this.state !== undefined && now - this.checkedAt < this.checkIntervalMs) return this.state;
    this.checkedAt = now;
    let stats: BigIntStats;
    try {
      stats = statSync(this.path, { bigint: true });
    } catch (error) {
      return this.settle(undefined, stateOfFailure(error));
    }
    if (this.state !== undefined && identityOf(stats) === this.identity) return this.state;
    // SECURITY: opening a FIFO blocks until a writer comes, and reading a device (/dev/zero) never
    // ends: neither is opened — identity/watched-file.test.ts "a FIFO".
    if (!stats.isFile()) return this.settle(identityOf(stats), { kind: 'error', error: `${this.path} is not a regular file` });
    return this.load();
  }

  /** The last value `parse` accepted, even if the file has since gone or broken. */
  get lastValue(): T | undefined {
    return this.lastGood;
  }

  /** Forgets what was read, so the next read() reads the file whatever the interval. */
  invalidate(): void {
    this.state = undefined;
    this.identity = undefined;
  }

  private load(): WatchedFileState<T> {
    let fd: number;
    try {
      // Non-blocking, in case the path was swapped for a FIFO since the stat.
      fd = openSync(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (error) {
      return this.settle(undefined, stateOfFailure(error));
    }
    try {
      // The identity and the bytes come from the same open file, so a swap between the stat and
      // the read cannot pair old bytes with a new identity.
      const stats = fstatSync(fd, { bigint: true });
      const identity = identityOf(stats);
      if (!stats.isFile()) return this.settle(identity, { kind: 'error', error: `${this.path} is not a regular file` });
      if (stats.size > BigInt(this.maxBytes)) return this.settle(identity, { kind: 'error', error: `${this.path} is larger than ${this.maxBytes} bytes` });
      const content = readWhole(fd, Number(stats.size), this.maxBytes);
      if (content === undefined) return this.settle(identity, { kind: 'error', error: `${this.path} changed while being read; it is read again at the next check` });
      let value: T;
      try {
        value = this.parse(content);
      } catch (error) {
        return this.settle(identity, { kind: 'error', error: `${this.path}: ${error instanceof Error ? error.message : String(error)}` });
      }
      this.lastGood = value;
      return this.settle(identity, { kind: 'value', value });
    } catch (error) {
      return this.settle(undefined, stateOfFailure(error));
    } finally {
      closeSync(fd);
    }
  }

  private settle(identity: string | undefined, state: WatchedFileState<T>): WatchedFileState<T> {
    this.identity = identity;
    this.state = state;
    return state;
  }
}

function identityOf(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

function readWhole(fd: number, expected: number, maxBytes: number): Buffer | undefined {
  const buffer = Buffer.alloc(Math.min(maxBytes + 1, Math.max(expected, 0) + 1));
  let length = 0;
  for (;;) {
    if (length === buffer.length) return undefined;
    const read = readSync(fd, buffer, length, buffer.length - length, null);
    if (read === 0) return buffer.subarray(0, length);
    length += read;
  }
}

function stateOfFailure(error: unknown): WatchedFileState<never> {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'missing' };
  return { kind: 'error', error: error instanceof Error ? error.message : String(error) };
}
