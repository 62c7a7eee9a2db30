// createClientAuthenticator: one policy's clients of every kind, and every way a request is
// accepted or refused (code, reason, challenge), with and without waiting.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { parsePolicy } from '../policies/loader.js';
import type { PolicyClient } from '../policies/types.js';
import { CLIENT_AUTHENTICATION_CODES, createClientAuthenticator, proxyAuthenticateChallenge, type ClientAuthentication, type ClientAuthenticator } from './authenticate-client.js';
import { issueClientToken } from './issued-tokens.js';
import { JwtClient } from './jwt-clients.js';
import { FileRevocationStore } from './revocation-store.js';
import { ensureTokenStateDirectory } from './token-state-directory.js';

const NOW = 1_800_000_000_000;
const NOW_SECONDS = NOW / 1000;
const CHALLENGE = 'Bearer realm="srt-gw", Basic realm="srt-gw"';
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;

const root = mkdtempSync(join(tmpdir(), 'srt-gw-authn-'));
const stateDirectory = join(root, 'state');
const paths = ensureTokenStateDirectory(stateDirectory);
afterAll(() => rmSync(root, { recursive: true, force: true }));

let privateKey: CryptoKey;
let otherIssuerKey: CryptoKey;
let clients: readonly PolicyClient[];
const clock = { now: NOW };
afterEach(() => {
  clock.now = NOW;
  vi.restoreAllMocks();
});

beforeAll(async () => {
  const pair = await generateKeyPair('ES256', { extractable: true });
  privateKey = pair.privateKey;
  otherIssuerKey = (await generateKeyPair('ES256', { extractable: true })).privateKey;
  writeFileSync(join(root, 'jwks.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  writeFileSync(join(root, 'jwks-vault.json'), JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] }));
  // The clients come from a policy file, as the gateway will get them: jwksFile relative to it.
  clients = parsePolicy(
    `version: 1
rules:
  - { id: npm-read, host: registry.npmjs.org }
  - { id: api, host: api.example.test }
clients:
  - id: ci
    token: { sha256: "${sha256('ci-token')}" }
    rules: [npm-read]
  - id: readers
    token: { sha256: "${sha256('readers-token')}" }
  - id: builders
    jwt:
      issuer: https://kubernetes.default.svc
      audience: srt-gw
      jwksFile: ./jwks.json
      subject: "system:serviceaccount:agents:*"
    rules: [api]
  - id: vault-users
    jwt: { issuer: https://kubernetes.default.svc, audience: vault, jwksFile: ./jwks-vault.json }
  - id: runners
    mtls: { subject: "CN=runner-*" }
  - id: laptops
    issued: {}
`,
    join(root, 'policy.yaml'),
  ).clients!;
});

function authenticator(options: Parameters<typeof createClientAuthenticator>[1] = {}): ClientAuthenticator {
  return createClientAuthenticator(clients, { stateDirectory, now: () => clock.now, fileCheckIntervalMs: 0, ...options });
}

function kubernetesToken(claims: JWTPayload = {}, key: CryptoKey = privateKey): Promise<string> {
  return new SignJWT({ iss: 'https://kubernetes.default.svc', aud: ['srt-gw'], sub: 'system:serviceaccount:agents:builder', iat: NOW_SECONDS, exp: NOW_SECONDS + 600, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .sign(key);
}

const refused = (code: string, reason: string | RegExp) => ({ ok: false, code, reason: typeof reason === 'string' ? reason : expect.stringMatching(reason), challenge: CHALLENGE });
const accepted = (clientId: string, method: string) => ({ ok: true, clientId, method, client: expect.objectContaining({ id: clientId }) });

/** authenticate() and, when it can decide, authenticateSync(): both must say the same. */
async function both(auth: ClientAuthenticator, input: Parameters<ClientAuthenticator['authenticate']>[0]): Promise<{ async: ClientAuthentication; sync: ClientAuthentication | undefined }> {
  const sync = auth.authenticateSync(input);
  return { async: await auth.authenticate(input), sync };
}

describe('requests without usable credentials', () => {
  test.each([
    ['no header and no certificate', {}, refused('client-credentials-missing', 'the request has no Proxy-Authorization (Bearer TOKEN, or Basic CLIENT:TOKEN) and no client certificate')],
    ['a malformed header', { proxyAuthorization: 'Bearer' }, refused('client-credentials-malformed', /^Proxy-Authorization must be/)],
    ['the header twice', { proxyAuthorization: ['Bearer ci-token', 'Bearer ci-token'] }, refused('client-credentials-malformed', 'Proxy-Authorization must be sent once')],
    ['an unknown static token', { proxyAuthorization: 'Bearer nope' }, refused('client-credentials-invalid', "the token is not one of the policy's client tokens")],
    ['a Basic user that is no client', { proxyAuthorization: basic('nobody', 'ci-token') }, refused('client-credentials-invalid', 'the Basic user name is not the id of a client of the policy')],
    ['another client\'s token under a Basic user', { proxyAuthorization: basic('readers', 'ci-token') }, refused('client-credentials-invalid', "the token is not client readers's")],
    ['a token for a certificate client', { proxyAuthorization: basic('runners', 'ci-token') }, refused('client-credentials-invalid', 'client runners authenticates with a client certificate, not a token')],
  ])('%s: refused at once', async (_name, input, expected) => {
    const result = await both(authenticator(), input);
    expect(result.async).toEqual(expected);
    expect(result.sync).toEqual(expected);
  });

  test('every code is stable kebab-case, and the challenge asks for both schemes', () => {
    for (const code of CLIENT_AUTHENTICATION_CODES) expect(code).toMatch(/^client-[a-z]+(-[a-z]+)*$/);
    expect(proxyAuthenticateChallenge()).toBe(CHALLENGE);
    expect(proxyAuthenticateChallenge('fleet "a"')).toBe('Bearer realm="fleet \\"a\\"", Basic realm="fleet \\"a\\""');
  });
});

describe('static tokens and certificates: decided without waiting', () => {
  test.each([
    ['Bearer TOKEN', 'Bearer ci-token', 'ci'],
    ['Basic CLIENT:TOKEN', basic('ci', 'ci-token'), 'ci'],
    ['Basic :TOKEN', basic('', 'readers-token'), 'readers'],
  ])('%s', async (_name, header, clientId) => {
    const result = await both(authenticator(), { proxyAuthorization: header });
    expect(result.sync).toEqual(accepted(clientId, 'token'));
    expect(result.async).toEqual(accepted(clientId, 'token'));
  });

  const certificate = (cn: string): PeerCertificate => ({ subject: { CN: cn }, subjectaltname: '', raw: Buffer.from('x') }) as unknown as PeerCertificate;

  test('a verified certificate names its client, with no header needed', async () => {
    const result = await both(authenticator(), { peerCertificate: { certificate: certificate('runner-3'), authorized: true } });
    expect(result.sync).toEqual(accepted('runners', 'mtls'));
  });

  test('an unverified certificate names no one; a valid token still counts', async () => {
    const auth = authenticator();
    const peerCertificate = { certificate: certificate('runner-3'), authorized: false };
    expect(auth.authenticateSync({ peerCertificate })).toEqual(refused('client-certificate-unverified', 'the client certificate did not verify against the client CA'));
    expect(auth.authenticateSync({ peerCertificate, proxyAuthorization: 'Bearer ci-token' })).toEqual(accepted('ci', 'token'));
  });

  test('a verified certificate that matches no client', () => {
    expect(authenticator().authenticateSync({ peerCertificate: { certificate: certificate('laptop-1'), authorized: true } })).toEqual(
      refused('client-certificate-not-allowed', 'no client matches the certificate (CN="laptop-1", no URI name)'),
    );
  });
});

describe('JWT clients', () => {
  test('a new JWT needs authenticate(); once verified it is remembered until it expires', async () => {
    const auth = authenticator();
    const token = await kubernetesToken();
    const input = { proxyAuthorization: `Bearer ${token}` };
    expect(auth.authenticateSync(input)).toBeUndefined();
    expect(await auth.authenticate(input)).toEqual(accepted('builders', 'jwt'));
    expect(auth.authenticateSync(input)).toEqual(accepted('builders', 'jwt'));
    clock.now = (NOW_SECONDS + 600) * 1000;
    expect(auth.authenticateSync(input)).toBeUndefined();
    expect(await auth.authenticate(input)).toEqual(accepted('builders', 'jwt'));
    clock.now = (NOW_SECONDS + 700) * 1000;
    expect(await auth.authenticate(input)).toEqual(refused('client-token-expired', 'client builders: the token expired at 2027-01-15T08:10:00.000Z'));
  });

  test('a remembered token is verified again after the cache age, and the cache is bounded', async () => {
    const verify = vi.spyOn(JwtClient.prototype, 'verify');
    const auth = authenticator({ tokenCacheMaxAgeMs: 60_000, tokenCacheSize: 2 });
    const [a, b, c] = await Promise.all([kubernetesToken({ jti: 'a' }), kubernetesToken({ jti: 'b' }), kubernetesToken({ jti: 'c' })]);
    for (const token of [a, b, c]) expect((await auth.authenticate({ proxyAuthorization: `Bearer ${token}` })).ok).toBe(true);
    expect(auth.authenticateSync({ proxyAuthorization: `Bearer ${a}` })).toBeUndefined();
    expect(auth.authenticateSync({ proxyAuthorization: `Bearer ${c}` })).toEqual(accepted('builders', 'jwt'));
    clock.now += 60_000;
    expect(auth.authenticateSync({ proxyAuthorization: `Bearer ${c}` })).toBeUndefined();
    expect(verify).toHaveBeenCalledTimes(3);
  });

  test('requests carrying the same new token at once share one verification', async () => {
    const verify = vi.spyOn(JwtClient.prototype, 'verify');
    const auth = authenticator();
    const input = { proxyAuthorization: `Bearer ${await kubernetesToken()}` };
    const results = await Promise.all([auth.authenticate(input), auth.authenticate(input), auth.authenticate(input)]);
    expect(results.every((result) => result.ok)).toBe(true);
    expect(verify).toHaveBeenCalledTimes(1);
  });

  test('Basic with the client id as user name; another client\'s name is refused, even once remembered', async () => {
    const auth = authenticator();
    const token = await kubernetesToken();
    expect(await auth.authenticate({ proxyAuthorization: basic('builders', token) })).toEqual(accepted('builders', 'jwt'));
    expect(await auth.authenticate({ proxyAuthorization: basic('laptops', token) })).toEqual(refused('client-credentials-invalid', "the token is not client laptops's"));
    expect(await auth.authenticate({ proxyAuthorization: basic('vault-users', token) })).toEqual(refused('client-credentials-invalid', "the token is not client vault-users's"));
    // Not remembered yet: the named client's own verifier says why.
    expect(await authenticator().authenticate({ proxyAuthorization: basic('vault-users', token) })).toEqual(
      refused('client-token-wrong-audience', 'client vault-users: the token is for audience ["srt-gw"], not "vault"'),
    );
  });

  test('the audience picks the client among those of one issuer', async () => {
    const auth = authenticator();
    expect(await auth.authenticate({ proxyAuthorization: `Bearer ${await kubernetesToken({ aud: 'vault' })}` })).toEqual(accepted('vault-users', 'jwt'));
    expect(await auth.authenticate({ proxyAuthorization: `Bearer ${await kubernetesToken({ aud: 'other' })}` })).toEqual(
      refused('client-token-wrong-audience', 'client builders: the token is for audience "other", not "srt-gw"'),
    );
  });

  test.each([
    ['not yet valid', { nbf: NOW_SECONDS + 3600 }, 'client-token-not-yet-valid', /^client builders: the token is not valid yet: not before /],
    ['from an issuer no client has', { iss: 'https://evil.example.test' }, 'client-token-wrong-issuer', 'no client of the policy accepts tokens from issuer "https://evil.example.test"'],
    ['for a subject the client does not allow', { sub: 'system:serviceaccount:kube-system:admin' }, 'client-token-subject-not-allowed', /^client builders: subject "system:serviceaccount:kube-system:admin"/],
  ])('refuses a JWT %s, with its code', async (_name, claims, code, reason) => {
    expect(await authenticator().authenticate({ proxyAuthorization: `Bearer ${await kubernetesToken(claims)}` })).toEqual(refused(code, reason));
  });

  test('refuses a forged JWT, and garbage shaped like one', async () => {
    const auth = authenticator();
    expect(await auth.authenticate({ proxyAuthorization: `Bearer ${await kubernetesToken({}, otherIssuerKey)}` })).toEqual(refused('client-token-bad-signature', /^client builders: /));
    expect(await auth.authenticate({ proxyAuthorization: 'Bearer aaa.bbb.ccc' })).toEqual(refused('client-token-malformed', 'the token is not a well-formed JWT'));
  });

  test('never puts the token in a reason', async () => {
    const token = await kubernetesToken({ exp: NOW_SECONDS - 3600 });
    const result = await authenticator().authenticate({ proxyAuthorization: basic('builders', token) });
    expect(result.ok).toBe(false);
    for (const part of token.split('.')) expect(JSON.stringify(result)).not.toContain(part);
  });
});

describe('minted tokens (issued clients)', () => {
  test('accepted by Bearer and by Basic with the client id, refused once revoked even when remembered', async () => {
    const auth = authenticator();
    const { token, record } = await issueClientToken(paths, 'laptops', 3600, NOW);
    const bearer = { proxyAuthorization: `Bearer ${token}` };
    expect(await auth.authenticate(bearer)).toEqual(accepted('laptops', 'issued'));
    expect(await auth.authenticate({ proxyAuthorization: basic('laptops', token) })).toEqual(accepted('laptops', 'issued'));
    // Remembered, but a revocation must still count: never decided without the revocation store.
    expect(auth.authenticateSync(bearer)).toBeUndefined();
    await new FileRevocationStore(paths.revoked).revoke({ jti: record.jti, revokedAt: NOW });
    expect(await auth.authenticate(bearer)).toEqual(refused('client-token-revoked', `client laptops: the token (jti ${record.jti}) was revoked`));
    expect(await auth.authenticate({ proxyAuthorization: basic('laptops', token) })).toEqual(refused('client-token-revoked', `minted token: the token (jti ${record.jti}) was revoked`));
  });

  test('a token minted for a client the policy does not have as issued', async () => {
    const { token } = await issueClientToken(paths, 'ci', 3600, NOW);
    expect(await authenticator().authenticate({ proxyAuthorization: `Bearer ${token}` })).toEqual(refused('client-token-subject-not-allowed', /^minted token: the token was minted for client "ci"/));
    expect(await authenticator().authenticate({ proxyAuthorization: basic('ci', token) })).toEqual(refused('client-credentials-invalid', "the token is not client ci's"));
  });

  test('a revocation store that cannot answer refuses the token', async () => {
    const { token } = await issueClientToken(paths, 'laptops', 3600, NOW);
    const failing = { isRevoked: () => Promise.reject(new Error('redis is down')), revoke: () => Promise.resolve(), list: () => Promise.resolve([]) };
    expect(await authenticator({ revocations: failing }).authenticate({ proxyAuthorization: `Bearer ${token}` })).toEqual(refused('client-token-revocations-unavailable', 'minted token: redis is down'));
  });
});
