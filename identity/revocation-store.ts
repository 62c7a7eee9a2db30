// Revoked minted tokens, by jti. The interface is what the gateway and `srt-gw token revoke` use;
// the file store keeps one JSON line per revocation in the client-tokens directory. A store shared
// by several gateways (Redis, say) implements the same interface.
import { appendFileSync } from 'node:fs';
import { WatchedFile } from './watched-file.js';

export interface RevokedToken {
  readonly jti: string;
  /** The client the token was minted for, when known. */
  readonly clientId?: string;
  /** When the token expires anyway (ms since the epoch), when known. */
  readonly expiresAt?: number;
  /** Milliseconds since the epoch. */
  readonly revokedAt: number;
}

export interface RevocationStore {
  /** Rejects when the store cannot answer: the caller must then refuse the token (fail closed). */
  isRevoked(jti: string): Promise<boolean>;
  revoke(entry: RevokedToken): Promise<void>;
  list(): Promise<readonly RevokedToken[]>;
}

export interface FileRevocationStoreOptions {
  readonly now?: () => number;
  /** How often the file's path is stat-ed at most (default 1000 ms): how soon another process's revocation counts. */
  readonly checkIntervalMs?: number;
}

/** Revocations list files stay small: one line per revoked token. */
const MAX_REVOCATION_FILE_BYTES = 16 * 1024 * 1024;

export class FileRevocationStore implements RevocationStore {
  private readonly file: WatchedFile<ReadonlyMap<string, RevokedToken>>;

  constructor(
    readonly path: string,
    options: FileRevocationStoreOptions = {},
  ) {
    this.file = new WatchedFile(path, {
      parse: parseRevocations,
      maxBytes: MAX_REVOCATION_FILE_BYTES,
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.checkIntervalMs === undefined ? {} : { checkIntervalMs: options.checkIntervalMs }),
    });
  }

  async isRevoked(jti: string): Promise<boolean> {
    return this.current().has(jti);
  }

  async list(): Promise<readonly RevokedToken[]> {
    return [...this.current().values()];
  }

  /**
   * Appends one line. Appends of one short line from several processes at once do not mix
   * (O_APPEND), so no lock is needed, and nothing is ever rewritten.
   */
  async revoke(entry: RevokedToken): Promise<void> {
    const line = JSON.stringify({
      jti: entry.jti,
      ...(entry.clientId === undefined ? {} : { client: entry.clientId }),
      ...(entry.expiresAt === undefined ? {} : { exp: Math.floor(entry.expiresAt / 1000) }),
      revokedAt: new Date(entry.revokedAt).toISOString(),
    });
    appendFileSync(this.path, `${line}\n`, { mode: 0o600 });
    this.file.invalidate();
  }

  private current(): ReadonlyMap<string, RevokedToken> {
    const state = this.file.read();
    if (state.kind === 'missing') return new Map();
    // SECURITY: a list that cannot be read could hide any revocation; refuse rather than guess —
    // identity/issued-tokens.test.ts "an unreadable revocation list".
    if (state.kind === 'error') throw new Error(`the revocation list cannot be read: ${state.error}`);
    return state.value;
  }
}

function parseRevocations(content: Buffer): ReadonlyMap<string, RevokedToken> {
  const revoked = new Map<string, RevokedToken>();
  content
    .toString('utf8')
    .split('\n')
    .forEach((line, index) => {
      if (line.trim() === '') return;
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        throw new Error(`line ${index + 1} is not JSON`);
      }
      const { jti, client, exp, revokedAt } = (entry ?? {}) as Record<string, unknown>;
      if (typeof jti !== 'string' || jti === '') throw new Error(`line ${index + 1} has no "jti"`);
      revoked.set(jti, {
        jti,
        ...(typeof client === 'string' ? { clientId: client } : {}),
        ...(typeof exp === 'number' ? { expiresAt: exp * 1000 } : {}),
        revokedAt: typeof revokedAt === 'string' ? Date.parse(revokedAt) : Number.NaN,
      });
    });
  return revoked;
}
