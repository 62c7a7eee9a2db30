// Which client of the policy's `clients:` sent a request, from its Proxy-Authorization header and
// the certificate it presented on a TLS listener; or why none, with a stable code, a sentence for
// the audit line and the Proxy-Authenticate challenge of the 407 answer. Static tokens,
// certificates and recently verified JWTs are decided without waiting (authenticateSync).
import { createHash } from 'node:crypto';
import { decodeJwt } from 'jose';
import type { ClientCredential, PolicyClient } from '../policies/types.js';
import { IssuedTokenVerifier, ISSUED_TOKEN_ISSUER } from './issued-tokens.js';
import { JwtClient, type RemoteJwksOptions } from './jwt-clients.js';
import { MtlsClients, type PresentedCertificate } from './mtls-clients.js';
import { parseProxyAuthorization } from './proxy-credentials.js';
import type { RevocationStore } from './revocation-store.js';
import type { TokenFailureReason, TokenVerification } from './token-failures.js';
import { TokenClients } from './token-clients.js';
import { checkTokenStateDirectory } from './token-state-directory.js';

/** Every code a refusal can carry: stable, for audit lines, metrics and alerts. */
export const CLIENT_AUTHENTICATION_CODES = [
  'client-credentials-missing',
  'client-credentials-malformed',
  'client-credentials-invalid',
  'client-certificate-unverified',
  'client-certificate-not-allowed',
  'client-token-malformed',
  'client-token-expired',
  'client-token-not-yet-valid',
  'client-token-wrong-audience',
  'client-token-wrong-issuer',
  'client-token-unknown-key',
  'client-token-bad-signature',
  'client-token-subject-not-allowed',
  'client-token-invalid-claims',
  'client-token-revoked',
  'client-token-revocations-unavailable',
  'client-token-keys-unavailable',
] as const;
export type ClientAuthenticationCode = (typeof CLIENT_AUTHENTICATION_CODES)[number];

export type ClientAuthenticationMethod = ClientCredential['kind'];

export interface ClientAuthenticationInput {
  /**
   * Proxy-Authorization as received. Give every value when the header came more than once (from
   * rawHeaders: node's `headers` keeps only the first), so that duplicates are refused.
   */
  readonly proxyAuthorization?: string | readonly string[] | undefined;
  /** The certificate the client presented on a TLS listener that asks for one. */
  readonly peerCertificate?: PresentedCertificate | undefined;
}

export type ClientAuthentication =
  | { readonly ok: true; readonly clientId: string; readonly client: PolicyClient; readonly method: ClientAuthenticationMethod }
  | {
      readonly ok: false;
      readonly code: ClientAuthenticationCode;
      /** For the audit line: says what to fix; never holds a token. */
      readonly reason: string;
      /** The Proxy-Authenticate value of the 407 answer. */
      readonly challenge: string;
    };

export interface ClientAuthenticatorOptions {
  /** srt-gw's state directory whose client-tokens/ holds the key of minted tokens (default: the user's). */
  readonly stateDirectory?: string;
  /** The realm of the Proxy-Authenticate challenge (default "srt-gw"). */
  readonly realm?: string;
  /** Milliseconds since the epoch; injected by tests. */
  readonly now?: () => number;
  readonly clockToleranceSeconds?: number;
  /** How often JWKS, key and revocation files are stat-ed at most (default 1000 ms). */
  readonly fileCheckIntervalMs?: number;
  readonly remoteJwks?: RemoteJwksOptions;
  /** Where revocations of minted tokens are looked up (default: the file in client-tokens/). */
  readonly revocations?: RevocationStore;
  /** Verified tokens remembered at most (default 4096). */
  readonly tokenCacheSize?: number;
  /** A remembered token is verified again after this long, or at its expiry if sooner (default 5 min). */
  readonly tokenCacheMaxAgeMs?: number;
}

export interface ClientAuthenticator {
  readonly clients: readonly PolicyClient[];
  /** Who sent the request, or why no one can be said to have. Never rejects. */
  authenticate(input: ClientAuthenticationInput): Promise<ClientAuthentication>;
  /**
   * The same answer when it needs no waiting (static tokens, certificates, missing or malformed
   * credentials, JWTs verified recently); undefined when only authenticate() can tell.
   */
  authenticateSync(input: ClientAuthenticationInput): ClientAuthentication | undefined;
}

const DEFAULT_REALM = 'srt-gw';
const DEFAULT_TOKEN_CACHE_SIZE = 4096;
const DEFAULT_TOKEN_CACHE_MAX_AGE_MS = 5 * 60_000;
/** A JWT: three base64url parts. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Reasons that say "not this client" rather than "bad token": another candidate's reason is more telling. */
const WEAK_REASONS: ReadonlySet<TokenFailureReason> = new Set(['wrong-audience', 'subject-not-allowed']);

interface RememberedToken {
  readonly clientId: string;
  readonly method: 'jwt' | 'issued';
  /** The earlier of the token's expiry and the end of the cache age (ms). */
  readonly goodUntil: number;
  readonly jti?: string;
  readonly kid?: string;
}

/** A verifier of signed tokens for one or more clients. */
interface SignedTokenCandidate {
  readonly method: 'jwt' | 'issued';
  /** The client's id; for minted tokens, the token's subject decides. */
  readonly clientId?: string;
  verify(token: string): Promise<TokenVerification>;
}

type SyncStep = { readonly done: ClientAuthentication } | { readonly verify: { readonly token: string; readonly username: string | undefined; readonly remembered?: RememberedToken } };

/** The `Proxy-Authenticate` value that asks for either scheme the gateway reads. */
export function proxyAuthenticateChallenge(realm: string = DEFAULT_REALM): string {
  const quoted = realm.replace(/[\\"]/g, '\\$&');
  return `Bearer realm="${quoted}", Basic realm="${quoted}"`;
}

/**
 * An authenticator for one policy's clients; make a new one when the policy is reloaded. Throws
 * SRTGW_CONFIG_INVALID when the policy has `issued` clients and the client-tokens directory is
 * writable by others.
 */
export function createClientAuthenticator(clients: readonly PolicyClient[], options: ClientAuthenticatorOptions = {}): ClientAuthenticator {
  return new PolicyClientAuthenticator(clients, options);
}

class PolicyClientAuthenticator implements ClientAuthenticator {
  private readonly byId: ReadonlyMap<string, PolicyClient>;
  private readonly tokens: TokenClients;
  private readonly certificates: MtlsClients;
  private readonly jwtClients: ReadonlyMap<string, JwtClient>;
  private readonly issued: IssuedTokenVerifier | undefined;
  private readonly challenge: string;
  private readonly now: () => number;
  private readonly cacheSize: number;
  private readonly cacheMaxAgeMs: number;
  private readonly remembered = new Map<string, RememberedToken>();
  private readonly pending = new Map<string, Promise<ClientAuthentication>>();

  constructor(
    readonly clients: readonly PolicyClient[],
    options: ClientAuthenticatorOptions,
  ) {
    this.byId = new Map(clients.map((client) => [client.id, client]));
    this.challenge = proxyAuthenticateChallenge(options.realm);
    this.now = options.now ?? Date.now;
    this.cacheSize = options.tokenCacheSize ?? DEFAULT_TOKEN_CACHE_SIZE;
    this.cacheMaxAgeMs = options.tokenCacheMaxAgeMs ?? DEFAULT_TOKEN_CACHE_MAX_AGE_MS;
    this.tokens = new TokenClients(clients.flatMap(({ id, credential }) => (credential.kind === 'token' ? [{ id, sha256: credential.sha256 }] : [])));
    this.certificates = new MtlsClients(clients.filter((client): client is PolicyClient & { credential: Extract<ClientCredential, { kind: 'mtls' }> } => client.credential.kind === 'mtls'));
    const shared = {
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.clockToleranceSeconds === undefined ? {} : { clockToleranceSeconds: options.clockToleranceSeconds }),
      ...(options.fileCheckIntervalMs === undefined ? {} : { fileCheckIntervalMs: options.fileCheckIntervalMs }),
    };
    this.jwtClients = new Map(
      clients.flatMap((client) =>
        client.credential.kind === 'jwt'
          ? [[client.id, new JwtClient(client as PolicyClient & { credential: Extract<ClientCredential, { kind: 'jwt' }> }, { ...shared, ...(options.remoteJwks === undefined ? {} : { remoteJwks: options.remoteJwks }) })] as const]
          : [],
      ),
    );
    const issuedIds = new Set(clients.filter((client) => client.credential.kind === 'issued').map((client) => client.id));
    this.issued =
      issuedIds.size === 0
        ? undefined
        : new IssuedTokenVerifier(checkTokenStateDirectory(options.stateDirectory), issuedIds, { ...shared, ...(options.revocations === undefined ? {} : { revocations: options.revocations }) });
  }

  authenticateSync(input: ClientAuthenticationInput): ClientAuthentication | undefined {
    const step = this.decideWithoutWaiting(input);
    return 'done' in step ? step.done : undefined;
  }

  async authenticate(input: ClientAuthenticationInput): Promise<ClientAuthentication> {
    const step = this.decideWithoutWaiting(input);
    if ('done' in step) return step.done;
    const { token, username, remembered } = step.verify;
    const key = `${username ?? ''}\0${tokenKey(token)}`;
    // Requests that carry the same new token at once share one verification.
    let verification = this.pending.get(key);
    if (verification === undefined) {
      verification = this.verifySigned(token, username, remembered).catch((error: unknown) =>
        this.refuse('client-credentials-invalid', `the credentials could not be checked: ${error instanceof Error ? error.message : String(error)}`),
      );
      this.pending.set(key, verification);
      void verification.finally(() => this.pending.delete(key));
    }
    return verification;
  }

  private decideWithoutWaiting(input: ClientAuthenticationInput): SyncStep {
    let certificateRefusal: ClientAuthentication | undefined;
    if (input.peerCertificate !== undefined && this.certificates.size > 0) {
      const match = this.certificates.match(input.peerCertificate);
      if (match.ok) return { done: this.accept(match.clientId, 'mtls') };
      certificateRefusal = this.refuse(match.reason === 'unverified' ? 'client-certificate-unverified' : 'client-certificate-not-allowed', match.detail);
    }
    const parsed = parseProxyAuthorization(input.proxyAuthorization);
    if (parsed.kind === 'missing') {
      return { done: certificateRefusal ?? this.refuse('client-credentials-missing', 'the request has no Proxy-Authorization (Bearer TOKEN, or Basic CLIENT:TOKEN) and no client certificate') };
    }
    if (parsed.kind === 'malformed') return { done: this.refuse('client-credentials-malformed', parsed.problem) };
    const { credentials } = parsed;
    const token = credentials.token;
    const username = credentials.scheme === 'basic' && credentials.username !== '' ? credentials.username : undefined;

    if (username !== undefined) {
      const client = this.byId.get(username);
      if (client === undefined) return { done: this.refuse('client-credentials-invalid', 'the Basic user name is not the id of a client of the policy') };
      switch (client.credential.kind) {
        case 'token':
          return { done: this.tokens.match(token) === username ? this.accept(username, 'token') : this.refuse('client-credentials-invalid', `the token is not client ${username}'s`) };
        case 'mtls':
          return { done: this.refuse('client-credentials-invalid', `client ${username} authenticates with a client certificate, not a token`) };
        default:
          return this.rememberedOrVerify(token, username);
      }
    }
    const tokenClient = this.tokens.match(token);
    if (tokenClient !== undefined) return { done: this.accept(tokenClient, 'token') };
    if (JWT_SHAPE.test(token) && (this.jwtClients.size > 0 || this.issued !== undefined)) return this.rememberedOrVerify(token, undefined);
    return { done: this.refuse('client-credentials-invalid', 'the token is not one of the policy\'s client tokens') };
  }

  private rememberedOrVerify(token: string, username: string | undefined): SyncStep {
    const key = tokenKey(token);
    const remembered = this.remembered.get(key);
    if (remembered !== undefined && this.now() >= remembered.goodUntil) this.remembered.delete(key);
    else if (remembered !== undefined) {
      if (username !== undefined && remembered.clientId !== username) return { done: this.refuse('client-credentials-invalid', `the token is not client ${username}'s`) };
      // A minted token may have been revoked since: that needs the revocation store.
      if (remembered.method === 'jwt') return { done: this.accept(remembered.clientId, 'jwt') };
      return { verify: { token, username, remembered } };
    }
    return { verify: { token, username } };
  }

  private async verifySigned(token: string, username: string | undefined, remembered: RememberedToken | undefined): Promise<ClientAuthentication> {
    if (remembered !== undefined && this.issued !== undefined && remembered.jti !== undefined) {
      const failure = await this.issued.recheck(remembered.jti, remembered.kid);
      if (failure === false) return this.accept(remembered.clientId, 'issued');
      this.remembered.delete(tokenKey(token));
      return this.refuse(codeOf(failure.reason), `client ${remembered.clientId}: ${failure.detail}`);
    }
    const candidates = this.candidatesFor(token, username);
    if ('refusal' in candidates) return candidates.refusal;
    const failures: { clientId: string | undefined; failure: TokenVerification & { ok: false } }[] = [];
    for (const candidate of candidates.list) {
      const verification = await candidate.verify(token);
      if (!verification.ok) {
        failures.push({ clientId: candidate.clientId, failure: verification });
        continue;
      }
      const clientId = candidate.clientId ?? verification.subject;
      if (username !== undefined && clientId !== username) return this.refuse('client-credentials-invalid', `the token is not client ${username}'s`);
      this.remember(token, {
        clientId,
        method: candidate.method,
        goodUntil: Math.min(verification.expiresAt, this.now() + this.cacheMaxAgeMs),
        ...(verification.jti === undefined ? {} : { jti: verification.jti }),
        ...(verification.kid === undefined ? {} : { kid: verification.kid }),
      });
      return this.accept(clientId, candidate.method);
    }
    const telling = failures.find(({ failure }) => !WEAK_REASONS.has(failure.reason)) ?? failures[0]!;
    const who = telling.clientId === undefined ? 'minted token' : `client ${telling.clientId}`;
    return this.refuse(codeOf(telling.failure.reason), `${who}: ${telling.failure.detail}`);
  }

  /** The verifiers that could accept the token: the Basic user's, else those of the token's issuer. */
  private candidatesFor(token: string, username: string | undefined): { list: SignedTokenCandidate[] } | { refusal: ClientAuthentication } {
    if (username !== undefined) {
      const jwtClient = this.jwtClients.get(username);
      if (jwtClient !== undefined) return { list: [{ method: 'jwt', clientId: username, verify: (value) => jwtClient.verify(value) }] };
      return { list: this.issued === undefined ? [] : [this.issuedCandidate(this.issued)] };
    }
    let issuer: unknown;
    try {
      issuer = decodeJwt(token).iss;
    } catch {
      return { refusal: this.refuse('client-token-malformed', 'the token is not a well-formed JWT') };
    }
    // The issuer is read unverified only to pick the keys; each candidate verifies it again.
    const list: SignedTokenCandidate[] = [...this.jwtClients.values()]
      .filter((client) => client.issuer === issuer)
      .map((client) => ({ method: 'jwt' as const, clientId: client.id, verify: (value: string) => client.verify(value) }));
    if (issuer === ISSUED_TOKEN_ISSUER && this.issued !== undefined) list.push(this.issuedCandidate(this.issued));
    if (list.length === 0) {
      const shown = typeof issuer === 'string' ? JSON.stringify(issuer.slice(0, 120)) : 'none';
      return { refusal: this.refuse('client-token-wrong-issuer', `no client of the policy accepts tokens from issuer ${shown}`) };
    }
    return { list };
  }

  private issuedCandidate(verifier: IssuedTokenVerifier): SignedTokenCandidate {
    return { method: 'issued', verify: (value) => verifier.verify(value) };
  }

  private remember(token: string, entry: RememberedToken): void {
    const key = tokenKey(token);
    this.remembered.delete(key);
    if (this.remembered.size >= this.cacheSize) {
      const oldest = this.remembered.keys().next();
      if (oldest.done !== true) this.remembered.delete(oldest.value);
    }
    this.remembered.set(key, entry);
  }

  private accept(clientId: string, method: ClientAuthenticationMethod): ClientAuthentication {
    return { ok: true, clientId, client: this.byId.get(clientId)!, method };
  }

  private refuse(code: ClientAuthenticationCode, reason: string): ClientAuthentication {
    return { ok: false, code, reason, challenge: this.challenge };
  }
}

function codeOf(reason: TokenFailureReason): ClientAuthenticationCode {
  return `client-token-${reason}`;
}

/** Tokens are remembered by digest: bounded memory whatever their length, and no token kept in the clear. */
function tokenKey(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64');
}
