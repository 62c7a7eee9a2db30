// Why a signed token (a JWT client's, or one minted by `srt-gw token issue`) was refused: jose's
// errors turned into stable reasons and a sentence for the audit line. The sentence never holds
// the token, only claims that say what to fix (expiry, audience, issuer, key id).
import { errors } from 'jose';

export type TokenFailureReason =
  | 'malformed'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'unknown-key'
  | 'bad-signature'
  | 'subject-not-allowed'
  | 'invalid-claims'
  | 'revoked'
  | 'revocations-unavailable'
  | 'keys-unavailable';

export type TokenVerification =
  | {
      readonly ok: true;
      readonly subject: string;
      /** Milliseconds since the epoch. */
      readonly expiresAt: number;
      readonly jti?: string;
      /** The key id of the token's signature, when it names one. */
      readonly kid?: string;
    }
  | { readonly ok: false; readonly reason: TokenFailureReason; readonly detail: string };

/** Thrown by a key lookup when the keys themselves cannot be had (file unreadable, no key yet). */
export class KeysUnavailableError extends Error {
  override readonly name = 'KeysUnavailableError';
}

const MAX_SHOWN_CLAIM = 120;

/** What the token's claims must be, to word the failures. */
export interface ExpectedClaims {
  readonly issuer: string;
  readonly audience: string;
}

/** The reason and sentence for an error from jose's jwtVerify (or a key lookup). */
export function tokenFailure(error: unknown, expected: ExpectedClaims): TokenVerification & { ok: false } {
  if (error instanceof errors.JWTExpired) {
    const when = isoTime(error.payload.exp);
    return failure('expired', when === undefined ? 'the token expired' : `the token expired at ${when}`);
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const { claim, payload } = error;
    switch (claim) {
      case 'nbf': {
        const when = isoTime(payload.nbf);
        return failure('not-yet-valid', when === undefined ? 'the token is not valid yet' : `the token is not valid yet: not before ${when}`);
      }
      case 'aud':
        return failure('wrong-audience', `the token is for audience ${shown(payload.aud)}, not ${shown(expected.audience)}`);
      case 'iss':
        return failure('wrong-issuer', `the token's issuer is ${shown(payload.iss)}, not ${shown(expected.issuer)}`);
      default:
        return failure('invalid-claims', `the token's "${claim}" claim ${error.reason === 'missing' ? 'is missing' : 'is not valid'}`);
    }
  }
  if (error instanceof errors.JWKSNoMatchingKey) return failure('unknown-key', "no key of the issuer matches the token's key id and algorithm");
  if (error instanceof errors.JWSSignatureVerificationFailed) return failure('bad-signature', "the token's signature does not verify with the issuer's key");
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return failure('malformed', 'the token is signed with an algorithm the gateway does not accept (asymmetric RS, PS, ES and EdDSA only)');
  }
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return failure('malformed', 'the token is not a well-formed signed JWT');
  if (error instanceof KeysUnavailableError) return failure('keys-unavailable', error.message);
  // Anything else came from fetching or reading the keys (timeout, HTTP status, bad JSON, network).
  const message = error instanceof Error ? error.message : String(error);
  return failure('keys-unavailable', `the issuer's keys cannot be had: ${message.slice(0, MAX_SHOWN_CLAIM)}`);
}

function failure(reason: TokenFailureReason, detail: string): TokenVerification & { ok: false } {
  return { ok: false, reason, detail };
}

function isoTime(seconds: unknown): string | undefined {
  return typeof seconds === 'number' && Number.isFinite(seconds) && Math.abs(seconds) < 1e11 ? new Date(seconds * 1000).toISOString() : undefined;
}

function shown(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > MAX_SHOWN_CLAIM ? `${text.slice(0, MAX_SHOWN_CLAIM)}...` : text;
}
