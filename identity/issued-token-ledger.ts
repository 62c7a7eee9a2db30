// What `srt-gw token issue` minted, for `srt-gw token list` and `token revoke --jti`: one JSON line
// per token with its jti, client and times. Never the token itself: the ledger is not a secret.
import { appendFileSync, readFileSync } from 'node:fs';
import { ErrorCodes, SrtGwError } from '../errors.js';

export interface IssuedTokenRecord {
  readonly jti: string;
  readonly clientId: string;
  /** Milliseconds since the epoch. */
  readonly issuedAt: number;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
}

export class IssuedTokenLedger {
  constructor(readonly path: string) {}

  /** Appends one line (O_APPEND: concurrent mints do not mix their lines). */
  record(entry: IssuedTokenRecord): void {
    const line = JSON.stringify({ jti: entry.jti, client: entry.clientId, iat: Math.floor(entry.issuedAt / 1000), exp: Math.floor(entry.expiresAt / 1000) });
    appendFileSync(this.path, `${line}\n`, { mode: 0o600 });
  }

  /** Every token minted from this directory, oldest first; lines that are not records are skipped. */
  list(): readonly IssuedTokenRecord[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot read ${this.path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
    }
    const records: IssuedTokenRecord[] = [];
    for (const line of text.split('\n')) {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      const { jti, client, iat, exp } = entry ?? {};
      if (typeof jti === 'string' && typeof client === 'string' && typeof iat === 'number' && typeof exp === 'number') {
        records.push({ jti, clientId: client, issuedAt: iat * 1000, expiresAt: exp * 1000 });
      }
    }
    return records;
  }

  find(jti: string): IssuedTokenRecord | undefined {
    return this.list().find((record) => record.jti === jti);
  }
}
