import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingRedisServer, startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { connectRedisState, type SharedStateConnection } from './redis-state.js';
import { RedisRevocationStore } from './redis-revocation-store.js';
import { parseStateLocation } from './state-url.js';

const skip = missingRedisServer();

describe.skipIf(skip !== null)('RedisRevocationStore on a real redis-server', () => {
  let server: RedisServer;
  let replicaA: SharedStateConnection;
  let replicaB: SharedStateConnection;

  beforeAll(async () => {
    server = await startRedisServer();
    replicaA = await connectRedisState(parseStateLocation(server.url), { commandTimeoutMs: 500 });
    replicaB = await connectRedisState(parseStateLocation(server.url), { commandTimeoutMs: 500 });
    await until(() => replicaA.up && replicaB.up);
  });

  afterAll(async () => {
    await replicaA?.close();
    await replicaB?.close();
    await server?.stop();
  });

  it('a token revoked through one replica is revoked for the other, and listed with its details', async () => {
    const a = new RedisRevocationStore(replicaA);
    const b = new RedisRevocationStore(replicaB);
    expect(await b.isRevoked('jti-1')).toBe(false);
    await a.revoke({ jti: 'jti-1', clientId: 'ci-bot', expiresAt: 2_000_000_000_000, revokedAt: 1_700_000_000_000 });
    expect(await b.isRevoked('jti-1')).toBe(true);
    expect(await b.isRevoked('jti-2')).toBe(false);
    expect(await b.list()).toEqual([{ jti: 'jti-1', clientId: 'ci-bot', expiresAt: 2_000_000_000_000, revokedAt: 1_700_000_000_000 }]);
  });

  it('rejects while the server is down (the authenticator then refuses the token), and answers again once it is back', async () => {
    const b = new RedisRevocationStore(replicaB);
    await server.kill();
    await expect(b.isRevoked('jti-1')).rejects.toThrow(/shared state/);
    await until(() => !replicaB.up);
    await server.restart();
    await until(() => replicaB.up);
    // The restarted server is empty (no persistence in this test).
    expect(await b.isRevoked('jti-1')).toBe(false);
  });
});

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
