// JWT clients (`jwt:` in `clients:`): a token is this client's when jose verifies its signature with
// one of the issuer's keys and its issuer, audience, times and subject are what the policy says.
// Keys come from a JWKS file (read again when the path leads to a changed file) or a JWKS URL
// (cached by jose, fetched again on an unknown key id after a cooldown, and when stale).
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { ClientCredential, PolicyClient } from '../policies/types.js';
import { compileSubjectGlobs, type SubjectMatcher } from './subject-glob.js';
import { KeysUnavailableError, tokenFailure, type TokenVerification } from './token-failures.js';
import { WatchedFile } from './watched-file.js';

/**
 * Seconds a token's exp and nbf may be off: the issuer's clock and the gateway's are never quite
 * equal (a Kubernetes API server and a node), but a larger slack stretches every token's life.
 */
export const JWT_CLOCK_TOLERANCE_SECONDS = 30;

/**
 * Only asymmetric signatures: an HMAC ("HS256") token verified against a public key set would let
 * anyone who has the public key sign. jose refuses "none" and secret keys from a JWKS on its own.
 */
export const JWT_ALGORITHMS: readonly string[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

export interface RemoteJwksOptions {
  /** Least time between fetches caused by unknown key ids (default 30 s). */
  readonly cooldownMs?: number;
  /** After this, the set is fetched again before use (default 10 min). */
  readonly cacheMaxAgeMs?: number;
  /** A fetch that takes longer fails (default 5 s). */
  readonly timeoutMs?: number;
}

export interface JwtClientOptions {
  /** Milliseconds since the epoch; injected by tests. */
  readonly now?: () => number;
  readonly clockToleranceSeconds?: number;
  /** How often a jwksFile's path is stat-ed at most (default 1000 ms). */
  readonly fileCheckIntervalMs?: number;
  readonly remoteJwks?: RemoteJwksOptions;
}

type JwtCredential = Extract<ClientCredential, { kind: 'jwt' }>;
type KeySet = ReturnType<typeof createLocalJWKSet>;

const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_CACHE_MAX_AGE_MS = 10 * 60_000;
const DEFAULT_TIMEOUT_MS = 5_000;
const MAX_JWKS_BYTES = 1024 * 1024;

/** One `jwt:` client of the policy. */
export class JwtClient {
  readonly id: string;
  readonly issuer: string;
  private readonly credential: JwtCredential;
  private readonly subjectAllowed: SubjectMatcher;
  private readonly getKey: JWTVerifyGetKey;
  private readonly now: () => number;
  private readonly clockToleranceSeconds: number;

  constructor(client: PolicyClient & { readonly credential: JwtCredential }, options: JwtClientOptions = {}) {
    this.id = client.id;
    this.credential = client.credential;
    this.issuer = client.credential.issuer;
    this.subjectAllowed = compileSubjectGlobs(client.credential.subjects);
    this.now = options.now ?? Date.now;
    this.clockToleranceSeconds = options.clockToleranceSeconds ?? JWT_CLOCK_TOLERANCE_SECONDS;
    const { jwks } = client.credential;
    this.getKey = jwks.kind === 'file' ? fileKeySet(jwks.path, options) : remoteKeySet(jwks.url, options.remoteJwks ?? {});
  }

  /** Whether `token` is a valid token of this client, and if not, why. Never throws. */
  async verify(token: string): Promise<TokenVerification> {
    const options: JWTVerifyOptions = {
      issuer: this.credential.issuer,
      audience: this.credential.audience,
      algorithms: [...JWT_ALGORITHMS],
      clockTolerance: this.clockToleranceSeconds,
      currentDate: new Date(this.now()),
      requiredClaims: ['exp', 'sub'],
    };
    let payload: JWTPayload;
    try {
      payload = (await verifyWithAnyMatchingKey(token, this.getKey, options)).payload;
    } catch (error) {
      return tokenFailure(error, this.credential);
    }
    const subject = payload.sub ?? '';
    if (!this.subjectAllowed(subject)) {
      return { ok: false, reason: 'subject-not-allowed', detail: `subject ${JSON.stringify(subject.slice(0, 200))} is not one of client ${this.id}'s subjects` };
    }
    return { ok: true, subject, expiresAt: (payload.exp ?? 0) * 1000, ...(typeof payload.jti === 'string' ? { jti: payload.jti } : {}) };
  }
}

/**
 * jwtVerify, and when several keys of the set fit the token's header (no key id, or a reused one),
 * each of them in turn, as jose leaves that to the caller.
 */
export async function verifyWithAnyMatchingKey(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<{ payload: JWTPayload }> {
  try {
    return await jwtVerify(token, getKey, options);
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    let last: unknown = new errors.JWSSignatureVerificationFailed();
    for await (const key of error) {
      try {
        return await jwtVerify(token, key, options);
      } catch (inner) {
        last = inner;
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) break;
      }
    }
    throw last;
  }
}

/** A key lookup over a JWKS file; a file that breaks later keeps its last good keys in use. */
function fileKeySet(path: string, options: JwtClientOptions): JWTVerifyGetKey {
  const file = new WatchedFile<KeySet>(path, {
    parse: (content) => createLocalJWKSet(JSON.parse(content.toString('utf8'))),
    maxBytes: MAX_JWKS_BYTES,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.fileCheckIntervalMs === undefined ? {} : { checkIntervalMs: options.fileCheckIntervalMs }),
  });
  return async (header, token) => {
    const state = file.read();
    const keys = state.kind === 'value' ? state.value : file.lastValue;
    if (keys === undefined) {
      throw new KeysUnavailableError(state.kind === 'missing' ? `the JWKS file ${path} does not exist` : `the JWKS file cannot be used: ${state.kind === 'error' ? state.error : ''}`);
    }
    return keys(header, token);
  };
}

function remoteKeySet(url: string, options: RemoteJwksOptions): JWTVerifyGetKey {
  return createRemoteJWKSet(new URL(url), {
    cooldownDuration: options.cooldownMs ?? DEFAULT_COOLDOWN_MS,
    cacheMaxAge: options.cacheMaxAgeMs ?? DEFAULT_CACHE_MAX_AGE_MS,
    timeoutDuration: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  });
}
