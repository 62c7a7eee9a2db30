// Static-token clients (`token: { sha256 }`): which client a presented token belongs to, found by
// comparing its SHA-256 with every client's in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';

const SHA256_BYTES = 32;

export interface TokenClient {
  readonly id: string;
  /** Lower-case hex SHA-256 of the token. */
  readonly sha256: string;
}

export class TokenClients {
  private readonly digests: readonly { readonly id: string; readonly digest: Buffer }[];

  constructor(clients: readonly TokenClient[]) {
    this.digests = clients.map(({ id, sha256 }) => {
      const digest = Buffer.from(sha256, 'hex');
      if (digest.length !== SHA256_BYTES) throw new TypeError(`client ${id}: sha256 must be 64 hex digits`);
      return { id, digest };
    });
  }

  get size(): number {
    return this.digests.length;
  }

  has(id: string): boolean {
    return this.digests.some((client) => client.id === id);
  }

  /**
   * The id of the client whose token this is, or undefined.
   * SECURITY: every client's digest is compared, each in constant time, and the loop never stops
   * early, so the time taken says nothing about how close a guess came or which client it hit —
   * identity/token-clients.test.ts "compares every client".
   */
  match(token: string): string | undefined {
    const presented = createHash('sha256').update(token, 'utf8').digest();
    let matched: string | undefined;
    for (const { id, digest } of this.digests) {
      if (timingSafeEqual(presented, digest) && matched === undefined) matched = id;
    }
    return matched;
  }
}
