// Tokens the gateway mints itself (`issued: {}` clients): `srt-gw token issue --client ID` signs a
// JWT with the key in the client-tokens directory (iss and aud "srt-gw", sub the client id, a
// random jti, iat, exp); the gateway accepts it while it is unexpired, signed by the current key,
// for a client the policy has as `issued`, and not revoked.
import { randomUUID } from 'node:crypto';
import { compactVerify, createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { ISSUED_TOKEN_ALGORITHM, loadOrCreateSigningKey, watchVerificationKey } from './issued-token-key.js';
import { IssuedTokenLedger, type IssuedTokenRecord } from './issued-token-ledger.js';
import { JWT_CLOCK_TOLERANCE_SECONDS } from './jwt-clients.js';
import { FileRevocationStore, type RevocationStore } from './revocation-store.js';
import { KeysUnavailableError, tokenFailure, type TokenVerification } from './token-failures.js';
import type { TokenStatePaths } from './token-state-directory.js';

type KeySet = ReturnType<typeof createLocalJWKSet>;

export const ISSUED_TOKEN_ISSUER = 'srt-gw';
export const ISSUED_TOKEN_AUDIENCE = 'srt-gw';
/** The longest life `token issue --ttl` gives a token: a longer-lived bearer secret wants another kind of client. */
export const MAX_ISSUED_TOKEN_TTL_SECONDS = 90 * 24 * 3600;

export interface IssuedToken {
  readonly token: string;
  readonly record: IssuedTokenRecord;
}

/** Mints a token for `clientId`, valid `ttlSeconds` from `now`, and records it in the ledger. */
export async function issueClientToken(paths: TokenStatePaths, clientId: string, ttlSeconds: number, now: number = Date.now()): Promise<IssuedToken> {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_ISSUED_TOKEN_TTL_SECONDS) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `the token lifetime must be from 1 second to ${MAX_ISSUED_TOKEN_TTL_SECONDS / 86400} days`);
  }
  const key = await loadOrCreateSigningKey(paths.signingKey);
  const issuedAt = Math.floor(now / 1000);
  const jti = randomUUID();
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: ISSUED_TOKEN_ALGORITHM, kid: key.kid, typ: 'JWT' })
    .setIssuer(ISSUED_TOKEN_ISSUER)
    .setAudience(ISSUED_TOKEN_AUDIENCE)
    .setSubject(clientId)
    .setJti(jti)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + ttlSeconds)
    .sign(key.privateKey);
  const record: IssuedTokenRecord = { jti, clientId, issuedAt: issuedAt * 1000, expiresAt: (issuedAt + ttlSeconds) * 1000 };
  new IssuedTokenLedger(paths.issued).record(record);
  return { token, record };
}

/**
 * What a token to be revoked says about itself, once its signature is checked against the current
 * key (its expiry is not checked: revoking an expired token is harmless).
 */
export async function readIssuedTokenForRevocation(paths: TokenStatePaths, token: string): Promise<{ jti: string; clientId?: string; expiresAt?: number }> {
  const refused = (why: string) => new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot revoke this token: ${why}`);
  const keyFile = watchVerificationKey(paths.signingKey, { checkIntervalMs: 0 });
  const state = keyFile.read();
  if (state.kind !== 'value') throw refused(state.kind === 'missing' ? `no token has been minted from ${paths.directory} (no signing key)` : state.error);
  try {
    decodeProtectedHeader(token);
  } catch {
    throw refused('it is not a token minted by srt-gw token issue (not a JWT)');
  }
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(new TextDecoder().decode((await compactVerify(token, state.value, { algorithms: [ISSUED_TOKEN_ALGORITHM] })).payload)) as Record<string, unknown>;
  } catch (error) {
    const failure = tokenFailure(error, { issuer: ISSUED_TOKEN_ISSUER, audience: ISSUED_TOKEN_AUDIENCE });
    throw refused(failure.reason === 'unknown-key' || failure.reason === 'bad-signature' ? `it was not signed with the key in ${paths.directory}` : failure.detail);
  }
  if (typeof payload.jti !== 'string' || payload.iss !== ISSUED_TOKEN_ISSUER) throw refused('it is not a token minted by srt-gw token issue');
  return {
    jti: payload.jti,
    ...(typeof payload.sub === 'string' ? { clientId: payload.sub } : {}),
    ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}),
  };
}

export interface IssuedTokenVerifierOptions {
  readonly now?: () => number;
  readonly clockToleranceSeconds?: number;
  /** How often the key and revocation files' paths are stat-ed at most (default 1000 ms). */
  readonly fileCheckIntervalMs?: number;
  /** Default: the file store in the client-tokens directory. */
  readonly revocations?: RevocationStore;
}

/** Verifies minted tokens for the policy's `issued: {}` clients. */
export class IssuedTokenVerifier {
  private readonly key: ReturnType<typeof watchVerificationKey>;
  private readonly revocations: RevocationStore;
  private readonly now: () => number;
  private readonly clockToleranceSeconds: number;

  constructor(
    private readonly paths: TokenStatePaths,
    private readonly clientIds: ReadonlySet<string>,
    options: IssuedTokenVerifierOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.clockToleranceSeconds = options.clockToleranceSeconds ?? JWT_CLOCK_TOLERANCE_SECONDS;
    const fileOptions = {
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.fileCheckIntervalMs === undefined ? {} : { checkIntervalMs: options.fileCheckIntervalMs }),
    };
    this.key = watchVerificationKey(paths.signingKey, fileOptions);
    this.revocations = options.revocations ?? new FileRevocationStore(paths.revoked, fileOptions);
  }

  /** Whether `token` is a valid minted token of one of the `issued` clients, and if not, why. Never throws. */
  async verify(token: string): Promise<TokenVerification> {
    let payload;
    let protectedHeader;
    try {
      ({ payload, protectedHeader } = await jwtVerify(token, (header, input) => this.currentKeys()(header, input), {
        issuer: ISSUED_TOKEN_ISSUER,
        audience: ISSUED_TOKEN_AUDIENCE,
        algorithms: [ISSUED_TOKEN_ALGORITHM],
        clockTolerance: this.clockToleranceSeconds,
        currentDate: new Date(this.now()),
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
      }));
    } catch (error) {
      return tokenFailure(error, { issuer: ISSUED_TOKEN_ISSUER, audience: ISSUED_TOKEN_AUDIENCE });
    }
    const subject = payload.sub ?? '';
    if (!this.clientIds.has(subject)) {
      return { ok: false, reason: 'subject-not-allowed', detail: `the token was minted for client ${JSON.stringify(subject.slice(0, 64))}, which the policy has no "issued: {}" client for` };
    }
    const jti = payload.jti ?? '';
    const revoked = await this.isRevoked(jti);
    if (revoked !== false) return revoked;
    return { ok: true, subject, expiresAt: (payload.exp ?? 0) * 1000, jti, ...(protectedHeader.kid === undefined ? {} : { kid: protectedHeader.kid }) };
  }

  /**
   * For a token verified earlier: false while it is still good, else why not. The key may have
   * been replaced and the token revoked since.
   */
  async recheck(jti: string, kid: string | undefined): Promise<false | (TokenVerification & { ok: false })> {
    const state = this.key.read();
    if (state.kind !== 'value' || kid === undefined || state.value.jwks()?.keys[0]?.kid !== kid) {
      return { ok: false, reason: 'unknown-key', detail: 'the token was signed with a key the gateway no longer has' };
    }
    return this.isRevoked(jti);
  }

  private async isRevoked(jti: string): Promise<false | (TokenVerification & { ok: false })> {
    try {
      if (await this.revocations.isRevoked(jti)) return { ok: false, reason: 'revoked', detail: `the token (jti ${jti}) was revoked` };
      return false;
    } catch (error) {
      return { ok: false, reason: 'revocations-unavailable', detail: error instanceof Error ? error.message : String(error) };
    }
  }

  private currentKeys(): KeySet {
    const state = this.key.read();
    if (state.kind === 'value') return state.value;
    throw new KeysUnavailableError(state.kind === 'missing' ? `no token has been minted from ${this.paths.directory} yet (no signing key)` : state.error);
  }
}
