// Tokens minted by `srt-gw token issue`: issued, verified, expired, revoked, signed by another or a
// replaced key, and the signing key's file and directory kept private.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, describe, expect, test } from 'vitest';
import { IssuedTokenLedger } from './issued-token-ledger.js';
import { loadOrCreateSigningKey } from './issued-token-key.js';
import { IssuedTokenVerifier, issueClientToken, MAX_ISSUED_TOKEN_TTL_SECONDS, readIssuedTokenForRevocation } from './issued-tokens.js';
import { JWT_CLOCK_TOLERANCE_SECONDS } from './jwt-clients.js';
import { FileRevocationStore } from './revocation-store.js';
import { ensureTokenStateDirectory, type TokenStatePaths } from './token-state-directory.js';

const NOW = 1_800_000_000_000;
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function stateDirectory(): TokenStatePaths {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-issued-'));
  dirs.push(dir);
  return ensureTokenStateDirectory(join(dir, 'state'));
}

function verifierAt(paths: TokenStatePaths, clock: { now: number }, clients = ['laptops']): IssuedTokenVerifier {
  return new IssuedTokenVerifier(paths, new Set(clients), { now: () => clock.now, fileCheckIntervalMs: 0 });
}

describe('issueClientToken and IssuedTokenVerifier', () => {
  test('mint a token that verifies for its client, with jti, iat, exp and the key id', async () => {
    const paths = stateDirectory();
    const { token, record } = await issueClientToken(paths, 'laptops', 3600, NOW);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: 'srt-gw', aud: 'srt-gw', sub: 'laptops', iat: NOW / 1000, exp: NOW / 1000 + 3600, jti: record.jti });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: expect.any(String) });
    const verification = await verifierAt(paths, { now: NOW + 1000 }).verify(token);
    expect(verification).toEqual({ ok: true, subject: 'laptops', expiresAt: NOW + 3600_000, jti: record.jti, kid: decodeProtectedHeader(token).kid });
    expect(new IssuedTokenLedger(paths.issued).list()).toEqual([record]);
  });

  test('keep the key in a 0600 file in a 0700 directory', async () => {
    const paths = stateDirectory();
    await issueClientToken(paths, 'laptops', 60, NOW);
    expect(statSync(paths.signingKey).mode & 0o777).toBe(0o600);
    expect(statSync(paths.directory).mode & 0o777).toBe(0o700);
    expect(statSync(paths.issued).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(paths.signingKey, 'utf8'))).toMatchObject({ kty: 'EC', crv: 'P-256', d: expect.any(String) });
  });

  test('refuse an expired token, after the clock tolerance', async () => {
    const paths = stateDirectory();
    const { token } = await issueClientToken(paths, 'laptops', 60, NOW);
    const clock = { now: NOW + 60_000 + JWT_CLOCK_TOLERANCE_SECONDS * 1000 - 1000 };
    expect((await verifierAt(paths, clock).verify(token)).ok).toBe(true);
    clock.now += 2000;
    expect(await verifierAt(paths, clock).verify(token)).toMatchObject({ ok: false, reason: 'expired' });
  });

  test('refuse a revoked token, and only that one', async () => {
    const paths = stateDirectory();
    const first = await issueClientToken(paths, 'laptops', 3600, NOW);
    const second = await issueClientToken(paths, 'laptops', 3600, NOW);
    const verifier = verifierAt(paths, { now: NOW });
    expect((await verifier.verify(first.token)).ok).toBe(true);
    await new FileRevocationStore(paths.revoked).revoke({ jti: first.record.jti, clientId: 'laptops', revokedAt: NOW });
    expect(await verifier.verify(first.token)).toEqual({ ok: false, reason: 'revoked', detail: `the token (jti ${first.record.jti}) was revoked` });
    expect((await verifier.verify(second.token)).ok).toBe(true);
    expect(statSync(paths.revoked).mode & 0o777).toBe(0o600);
  });

  test('see a revocation made by another process once the check interval passes', async () => {
    const paths = stateDirectory();
    const { token, record } = await issueClientToken(paths, 'laptops', 3600, NOW);
    const clock = { now: NOW };
    const verifier = new IssuedTokenVerifier(paths, new Set(['laptops']), { now: () => clock.now, fileCheckIntervalMs: 1000 });
    expect((await verifier.verify(token)).ok).toBe(true);
    writeFileSync(paths.revoked, `${JSON.stringify({ jti: record.jti, revokedAt: new Date(NOW).toISOString() })}\n`);
    clock.now += 1000;
    expect(await verifier.verify(token)).toMatchObject({ ok: false, reason: 'revoked' });
  });

  test('an unreadable revocation list refuses every token rather than guess', async () => {
    const paths = stateDirectory();
    const { token } = await issueClientToken(paths, 'laptops', 3600, NOW);
    writeFileSync(paths.revoked, '{"jti":"a"}\nnot json\n');
    expect(await verifierAt(paths, { now: NOW }).verify(token)).toMatchObject({ ok: false, reason: 'revocations-unavailable', detail: expect.stringMatching(/line 2 is not JSON/) });
  });

  test('refuse a token signed with another directory\'s key, or with a key since replaced', async () => {
    const paths = stateDirectory();
    const other = stateDirectory();
    const { token: foreign } = await issueClientToken(other, 'laptops', 3600, NOW);
    const { token: old } = await issueClientToken(paths, 'laptops', 3600, NOW);
    const verifier = verifierAt(paths, { now: NOW });
    expect(await verifier.verify(foreign)).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect((await verifier.verify(old)).ok).toBe(true);
    unlinkSync(paths.signingKey);
    expect(await verifier.verify(old)).toMatchObject({ ok: false, reason: 'keys-unavailable', detail: expect.stringMatching(/no token has been minted/) });
    const { token: fresh } = await issueClientToken(paths, 'laptops', 3600, NOW);
    expect(await verifier.verify(old)).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect((await verifier.verify(fresh)).ok).toBe(true);
  });

  test('refuse a token minted for a client the policy has no issued client for', async () => {
    const paths = stateDirectory();
    const { token } = await issueClientToken(paths, 'ci', 3600, NOW);
    expect(await verifierAt(paths, { now: NOW }, ['laptops']).verify(token)).toEqual({
      ok: false,
      reason: 'subject-not-allowed',
      detail: 'the token was minted for client "ci", which the policy has no "issued: {}" client for',
    });
  });

  test('recheck says a remembered token is still good, revoked, or from a replaced key', async () => {
    const paths = stateDirectory();
    const { token, record } = await issueClientToken(paths, 'laptops', 3600, NOW);
    const verifier = verifierAt(paths, { now: NOW });
    const verification = await verifier.verify(token);
    const kid = verification.ok ? verification.kid : undefined;
    expect(await verifier.recheck(record.jti, kid)).toBe(false);
    expect(await verifier.recheck(record.jti, 'another-kid')).toMatchObject({ reason: 'unknown-key' });
    await new FileRevocationStore(paths.revoked).revoke({ jti: record.jti, revokedAt: NOW });
    expect(await verifier.recheck(record.jti, kid)).toMatchObject({ reason: 'revoked' });
  });

  test('two first uses at once agree on one key', async () => {
    const paths = stateDirectory();
    const [a, b] = await Promise.all([issueClientToken(paths, 'laptops', 60, NOW), issueClientToken(paths, 'laptops', 60, NOW)]);
    expect(decodeProtectedHeader(a.token).kid).toBe(decodeProtectedHeader(b.token).kid);
    const verifier = verifierAt(paths, { now: NOW });
    expect([(await verifier.verify(a.token)).ok, (await verifier.verify(b.token)).ok]).toEqual([true, true]);
  });

  test('refuse to sign with a key file others can read', async () => {
    const paths = stateDirectory();
    await issueClientToken(paths, 'laptops', 60, NOW);
    chmodSync(paths.signingKey, 0o644);
    await expect(loadOrCreateSigningKey(paths.signingKey)).rejects.toThrow(/can be read by others; run: chmod 600/);
  });

  test('refuse a key file that is not a signing key', async () => {
    const paths = stateDirectory();
    writeFileSync(paths.signingKey, '{"kty":"oct","k":"x"}', { mode: 0o600 });
    await expect(issueClientToken(paths, 'laptops', 60, NOW)).rejects.toThrow(/is not an srt-gw token signing key/);
  });

  test.each([0, -1, 1.5, MAX_ISSUED_TOKEN_TTL_SECONDS + 1])('refuse a lifetime of %s seconds', async (ttl) => {
    await expect(issueClientToken(stateDirectory(), 'laptops', ttl, NOW)).rejects.toThrow(/lifetime must be from 1 second/);
  });
});

describe('readIssuedTokenForRevocation', () => {
  test('reads the jti, client and expiry of a token signed with the key, expired or not', async () => {
    const paths = stateDirectory();
    const { token, record } = await issueClientToken(paths, 'laptops', 60, NOW - 10 * 3600_000);
    expect(await readIssuedTokenForRevocation(paths, token)).toEqual({ jti: record.jti, clientId: 'laptops', expiresAt: record.expiresAt });
  });

  test('refuses a token of another key, and text that is not a token', async () => {
    const paths = stateDirectory();
    await issueClientToken(paths, 'laptops', 60, NOW);
    const { token } = await issueClientToken(stateDirectory(), 'laptops', 60, NOW);
    await expect(readIssuedTokenForRevocation(paths, token)).rejects.toThrow(/it was not signed with the key in/);
    await expect(readIssuedTokenForRevocation(paths, 'abc.def.ghi')).rejects.toThrow(/not a JWT/);
    await expect(readIssuedTokenForRevocation(stateDirectory(), token)).rejects.toThrow(/no token has been minted/);
  });
});
