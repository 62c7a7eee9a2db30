// JWT clients: tokens verified by jose against a JWKS file (rotated the way Kubernetes rotates a
// mounted ConfigMap) or a JWKS URL served on loopback (rotated too), with every reason a token is
// refused.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { JwksSource, PolicyClient } from '../policies/types.js';
import { JWT_CLOCK_TOLERANCE_SECONDS, JwtClient } from './jwt-clients.js';

const NOW = 1_800_000_000_000;
const NOW_SECONDS = NOW / 1000;
const ISSUER = 'https://kubernetes.default.svc';
const AUDIENCE = 'srt-gw';
const SUBJECT = 'system:serviceaccount:agents:builder';

interface TestKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

async function testKey(kid: string, alg = 'RS256'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

async function sign(key: TestKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: SUBJECT, iat: NOW_SECONDS - 60, exp: NOW_SECONDS + 3600, ...claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

const jwks = (...keys: TestKey[]) => JSON.stringify({ keys: keys.map((key) => key.jwk) });

function client(jwksSource: JwksSource, subjects?: string[]): PolicyClient & { credential: { kind: 'jwt'; issuer: string; audience: string; jwks: JwksSource } } {
  return { id: 'builders', credential: { kind: 'jwt', issuer: ISSUER, audience: AUDIENCE, jwks: jwksSource, ...(subjects === undefined ? {} : { subjects }) } };
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-jwt-'));
  dirs.push(dir);
  return dir;
}

/** A projected-volume layout: DIR/jwks.json → ..data/jwks.json, ..data → ..VERSION; swap() as the kubelet does. */
function mountedJwks(content: string): { path: string; swap(content: string): void } {
  const dir = tempDir();
  let generation = 0;
  const swap = (text: string) => {
    const version = `..2026_01_01_00_00_0${generation++}`;
    mkdirSync(join(dir, version));
    writeFileSync(join(dir, version, 'jwks.json'), text);
    symlinkSync(version, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  swap(content);
  symlinkSync(join('..data', 'jwks.json'), join(dir, 'jwks.json'));
  return { path: join(dir, 'jwks.json'), swap };
}

let keyA: TestKey;
let keyB: TestKey;
let keyEc: TestKey;
beforeAll(async () => {
  [keyA, keyB, keyEc] = await Promise.all([testKey('key-a'), testKey('key-b'), testKey('key-ec', 'ES256')]);
});

describe('JwtClient with a JWKS file', () => {
  let now = NOW;
  afterEach(() => {
    now = NOW;
  });
  const verifier = (path: string, subjects?: string[]) => new JwtClient(client({ kind: 'file', path, written: path }, subjects), { now: () => now, fileCheckIntervalMs: 1000 });

  test('accepts a good token and says its subject and expiry', async () => {
    const { path } = mountedJwks(jwks(keyA, keyEc));
    const jwt = verifier(path);
    expect(await jwt.verify(await sign(keyA, { jti: 'j1' }))).toEqual({ ok: true, subject: SUBJECT, expiresAt: (NOW_SECONDS + 3600) * 1000, jti: 'j1' });
    expect((await jwt.verify(await sign(keyEc))).ok).toBe(true);
  });

  test.each([
    ['expired', { exp: NOW_SECONDS - JWT_CLOCK_TOLERANCE_SECONDS - 1 }, {}, 'expired', /^the token expired at 2027-01-15T07:59:29.000Z$/],
    ['not yet valid', { nbf: NOW_SECONDS + JWT_CLOCK_TOLERANCE_SECONDS + 60 }, {}, 'not-yet-valid', /^the token is not valid yet: not before 2027-01-15T08:01:30.000Z$/],
    ['for another audience', { aud: ['https://kubernetes.default.svc', 'vault'] }, {}, 'wrong-audience', /audience \["https:\/\/kubernetes.default.svc","vault"\], not "srt-gw"/],
    ['from another issuer', { iss: 'https://other.example.test' }, {}, 'wrong-issuer', /issuer is "https:\/\/other.example.test", not "https:\/\/kubernetes.default.svc"/],
    ['without an issuer', { iss: undefined }, {}, 'wrong-issuer', /issuer is missing/],
    ['without an expiry', { exp: undefined }, {}, 'invalid-claims', /"exp" claim is missing/],
    ['without a subject', { sub: undefined }, {}, 'invalid-claims', /"sub" claim is missing/],
    ['signed with a key id the set lacks', {}, { kid: 'key-z' }, 'unknown-key', /no key of the issuer/],
  ])('refuses a token %s', async (_name, claims, header, reason, detail) => {
    const { path } = mountedJwks(jwks(keyA));
    const verification = await verifier(path).verify(await sign(keyA, claims, header));
    expect(verification).toMatchObject({ ok: false, reason });
    expect(verification.ok === false && verification.detail).toMatch(detail);
  });

  test('accepts a token within the clock tolerance of its expiry and start', async () => {
    const { path } = mountedJwks(jwks(keyA));
    const jwt = verifier(path);
    expect((await jwt.verify(await sign(keyA, { exp: NOW_SECONDS - JWT_CLOCK_TOLERANCE_SECONDS + 1 }))).ok).toBe(true);
    expect((await jwt.verify(await sign(keyA, { nbf: NOW_SECONDS + JWT_CLOCK_TOLERANCE_SECONDS - 1 }))).ok).toBe(true);
  });

  test('refuses a token whose signature is not the key\'s', async () => {
    const { path } = mountedJwks(jwks(keyA));
    const forged = await sign({ ...keyB, kid: 'key-a' });
    expect(await verifier(path).verify(forged)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  test('refuses a tampered payload', async () => {
    const { path } = mountedJwks(jwks(keyA));
    const [header, , signature] = (await sign(keyA)).split('.');
    const payload = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: 'system:serviceaccount:kube-system:admin', exp: NOW_SECONDS + 60 })).toString('base64url');
    expect(await verifier(path).verify(`${header}.${payload}.${signature}`)).toMatchObject({ ok: false, reason: 'bad-signature' });
  });

  test('refuses HS256 signed with the public key as a secret, and unsigned tokens', async () => {
    const { path } = mountedJwks(jwks(keyA));
    const secret = new TextEncoder().encode(JSON.stringify(keyA.jwk));
    const hmac = await new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: SUBJECT, exp: NOW_SECONDS + 60 }).setProtectedHeader({ alg: 'HS256', kid: 'key-a' }).sign(secret);
    expect(await verifier(path).verify(hmac)).toMatchObject({ ok: false, reason: 'malformed' });
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: SUBJECT, exp: NOW_SECONDS + 60 })).toString('base64url')}.`;
    expect(await verifier(path).verify(none)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(await verifier(path).verify('not-a-jwt')).toMatchObject({ ok: false, reason: 'malformed' });
  });

  test('matches the subject against the client\'s globs', async () => {
    const { path } = mountedJwks(jwks(keyA));
    const jwt = verifier(path, ['system:serviceaccount:agents:*']);
    expect((await jwt.verify(await sign(keyA))).ok).toBe(true);
    expect(await jwt.verify(await sign(keyA, { sub: 'system:serviceaccount:kube-system:admin' }))).toEqual({
      ok: false,
      reason: 'subject-not-allowed',
      detail: 'subject "system:serviceaccount:kube-system:admin" is not one of client builders\'s subjects',
    });
    expect((await jwt.verify(await sign(keyA, { sub: 'system:serviceaccount:agents:a:b' }))).ok).toBe(false);
  });

  test('tries every key that fits when several share a key id', async () => {
    const { path } = mountedJwks(JSON.stringify({ keys: [{ ...keyB.jwk, kid: 'same' }, { ...keyA.jwk, kid: 'same' }] }));
    expect((await verifier(path).verify(await sign({ ...keyA, kid: 'same' }))).ok).toBe(true);
    expect(await verifier(path).verify(await sign({ ...keyEc, alg: 'ES256', kid: 'same' }))).toMatchObject({ ok: false });
  });

  test('uses the new keys after a ConfigMap-style symlink swap, within the check interval', async () => {
    const mounted = mountedJwks(jwks(keyA));
    const jwt = verifier(mounted.path);
    const tokenA = await sign(keyA);
    const tokenB = await sign(keyB);
    expect((await jwt.verify(tokenA)).ok).toBe(true);
    expect(await jwt.verify(tokenB)).toMatchObject({ ok: false, reason: 'unknown-key' });
    mounted.swap(jwks(keyB));
    now += 1000;
    expect((await jwt.verify(tokenB)).ok).toBe(true);
    expect(await jwt.verify(tokenA)).toMatchObject({ ok: false, reason: 'unknown-key' });
  });

  test('keeps the last good keys when the file breaks, and says so when there never were any', async () => {
    const mounted = mountedJwks(jwks(keyA));
    const jwt = verifier(mounted.path);
    expect((await jwt.verify(await sign(keyA))).ok).toBe(true);
    mounted.swap('{"keys": [');
    now += 1000;
    expect((await jwt.verify(await sign(keyA))).ok).toBe(true);
    const missing = verifier(join(tempDir(), 'jwks.json'));
    expect(await missing.verify(await sign(keyA))).toMatchObject({ ok: false, reason: 'keys-unavailable', detail: expect.stringMatching(/does not exist/) });
    const broken = mountedJwks('{"keys": 3}');
    expect(await verifier(broken.path).verify(await sign(keyA))).toMatchObject({ ok: false, reason: 'keys-unavailable' });
  });

  test('refuses a key set that holds a private key', async () => {
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const { path } = mountedJwks(JSON.stringify({ keys: [{ ...(await exportJWK(privateKey)), kid: 'key-a', alg: 'RS256' }] }));
    expect(await verifier(path).verify(await sign(keyA))).toMatchObject({ ok: false, reason: 'keys-unavailable' });
  });
});

describe('JwtClient with a JWKS URL', () => {
  let server: Server;
  let served = '';
  let fetches = 0;
  let url = '';
  beforeAll(async () => {
    server = createServer((_request, response) => {
      fetches++;
      response.setHeader('content-type', 'application/json');
      response.end(served);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/openid/v1/jwks`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  test('fetches the keys once, caches them, and fetches again for a rotated key', async () => {
    served = jwks(keyA);
    fetches = 0;
    const jwt = new JwtClient(client({ kind: 'url', url }), { now: () => NOW, remoteJwks: { cooldownMs: 0 } });
    const tokenA = await sign(keyA);
    expect((await jwt.verify(tokenA)).ok).toBe(true);
    expect((await jwt.verify(tokenA)).ok).toBe(true);
    expect(fetches).toBe(1);
    served = jwks(keyB);
    expect((await jwt.verify(await sign(keyB))).ok).toBe(true);
    expect(fetches).toBe(2);
    expect(await jwt.verify(tokenA)).toMatchObject({ ok: false, reason: 'unknown-key' });
  });

  test('does not fetch again for unknown key ids within the cooldown', async () => {
    served = jwks(keyA);
    fetches = 0;
    const jwt = new JwtClient(client({ kind: 'url', url }), { now: () => NOW, remoteJwks: { cooldownMs: 60_000 } });
    expect((await jwt.verify(await sign(keyA))).ok).toBe(true);
    for (let i = 0; i < 5; i++) expect(await jwt.verify(await sign(keyA, {}, { kid: `unknown-${i}` }))).toMatchObject({ ok: false, reason: 'unknown-key' });
    expect(fetches).toBe(1);
  });

  test('says the keys are unavailable when the URL does not answer with a key set', async () => {
    served = 'not json';
    const jwt = new JwtClient(client({ kind: 'url', url }), { now: () => NOW });
    expect(await jwt.verify(await sign(keyA))).toMatchObject({ ok: false, reason: 'keys-unavailable' });
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/jwks`;
    await new Promise((resolve) => closed.close(resolve));
    const unreachable = new JwtClient(client({ kind: 'url', url: closedUrl }), { now: () => NOW, remoteJwks: { timeoutMs: 2000 } });
    expect(await unreachable.verify(await sign(keyA))).toMatchObject({ ok: false, reason: 'keys-unavailable' });
  });
});
