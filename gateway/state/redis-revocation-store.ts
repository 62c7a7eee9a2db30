// Revoked minted client tokens kept in the shared state (serve --state), so that a token revoked
// once is refused by every replica. The jtis are one Redis set (SISMEMBER per check); the details
// of each revocation, for `list`, a hash beside it. A store that cannot answer rejects, and the
// authenticator then refuses the token (client-token-revocations-unavailable): fail closed.
import type { RevocationStore, RevokedToken } from '../../identity/revocation-store.js';
import type { SharedStateConnection } from './redis-state.js';

export function revocationKeys(prefix: string): { jtis: string; entries: string } {
  // One hash tag: a Redis Cluster keeps both in one slot, so the script below may write both.
  return { jtis: `${prefix}:{revoked-tokens}:jtis`, entries: `${prefix}:{revoked-tokens}:entries` };
}

const REVOKE_SCRIPT = `
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`;

export class RedisRevocationStore implements RevocationStore {
  private readonly keys: { jtis: string; entries: string };

  constructor(private readonly state: SharedStateConnection) {
    this.keys = revocationKeys(state.keyPrefix);
  }

  async isRevoked(jti: string): Promise<boolean> {
    const reply = await this.state.command(['SISMEMBER', this.keys.jtis, jti]);
    return Number(reply) === 1;
  }

  async revoke(entry: RevokedToken): Promise<void> {
    await this.state.command(['EVAL', REVOKE_SCRIPT, '2', this.keys.jtis, this.keys.entries, entry.jti, JSON.stringify(entry)]);
  }

  async list(): Promise<readonly RevokedToken[]> {
    const reply = await this.state.command(['HGETALL', this.keys.entries]);
    const entries: RevokedToken[] = [];
    for (const value of hashValues(reply)) {
      try {
        const parsed = JSON.parse(value) as RevokedToken;
        if (typeof parsed.jti === 'string' && typeof parsed.revokedAt === 'number') entries.push(parsed);
      } catch {
        // An entry another program wrote in another shape: its jti is still in the set, and refused.
      }
    }
    return entries;
  }
}

/** The values of an HGETALL reply: a flat [field, value, …] list (RESP2) or a map (RESP3). */
function hashValues(reply: unknown): string[] {
  if (Array.isArray(reply)) return reply.filter((_item, index) => index % 2 === 1).map(String);
  if (reply instanceof Map) return [...reply.values()].map(String);
  if (reply !== null && typeof reply === 'object') return Object.values(reply).map(String);
  return [];
}

/**
 * Revocations from several stores: the shared one (Redis) and this host's file, which
 * `srt-gw token revoke` without --state writes. A token is revoked if any store says so; a store
 * that cannot answer makes the check fail (the token is then refused). New revocations go to the first.
 */
export class CombinedRevocationStore implements RevocationStore {
  constructor(private readonly stores: readonly [RevocationStore, ...RevocationStore[]]) {}

  async isRevoked(jti: string): Promise<boolean> {
    const answers = await Promise.all(this.stores.map((store) => store.isRevoked(jti)));
    return answers.includes(true);
  }

  async revoke(entry: RevokedToken): Promise<void> {
    await this.stores[0].revoke(entry);
  }

  async list(): Promise<readonly RevokedToken[]> {
    const byJti = new Map<string, RevokedToken>();
    for (const entries of await Promise.all(this.stores.map((store) => store.list()))) {
      for (const entry of entries) if (!byJti.has(entry.jti)) byJti.set(entry.jti, entry);
    }
    return [...byJti.values()];
  }
}
