// The key that signs the tokens `srt-gw token issue` mints: an ES256 (P-256) JWK in a 0600 file,
// created on first use. The gateway reads only its public half, again whenever the file changes,
// so deleting the file (and minting anew) retires every token signed with the old key.
import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { WatchedFile, type WatchedFileOptions } from './watched-file.js';

export const ISSUED_TOKEN_ALGORITHM = 'ES256';

export interface SigningKey {
  /** The JWK thumbprint of the public key: the `kid` of every token it signs. */
  readonly kid: string;
  readonly privateKey: CryptoKey;
}

/**
 * Reads the signing key at `path`, creating it if absent. Two first uses at once agree on one key:
 * the file appears whole (written aside, then hard-linked into place) and only once.
 */
export async function loadOrCreateSigningKey(path: string): Promise<SigningKey> {
  let text = readKeyText(path);
  if (text === undefined) {
    await createKeyFile(path);
    text = readKeyText(path);
    if (text === undefined) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${path} vanished right after it was created; try again`);
  }
  // SECURITY: a key others can read lets them mint tokens for any client — identity/issued-tokens.test.ts.
  const mode = statSync(path).mode;
  if ((mode & 0o077) !== 0) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${path} can be read by others; run: chmod 600 ${path}`);
  const jwk = parseKey(text, path);
  return { kid: jwk.kid, privateKey: (await importJWK(jwk, ISSUED_TOKEN_ALGORITHM)) as CryptoKey };
}

/** The public half of the key file as a key set of one, for the gateway; watched for changes. */
export function watchVerificationKey(path: string, options: Omit<WatchedFileOptions<unknown>, 'parse'> = {}): WatchedFile<ReturnType<typeof createLocalJWKSet>> {
  return new WatchedFile(path, {
    ...options,
    parse: (content) => {
      const { d: _private, ...publicKey } = parseKey(content.toString('utf8'), path);
      return createLocalJWKSet({ keys: [{ ...publicKey, alg: ISSUED_TOKEN_ALGORITHM, use: 'sig' }] });
    },
  });
}

function readKeyText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot read the token signing key ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
}

function parseKey(text: string, path: string): JWK & { kid: string } {
  let jwk: unknown;
  try {
    jwk = JSON.parse(text);
  } catch {
    jwk = undefined;
  }
  const key = jwk as Partial<Record<string, unknown>> | undefined;
  if (typeof key !== 'object' || key === null || key.kty !== 'EC' || key.crv !== 'P-256' || typeof key.kid !== 'string' || typeof key.x !== 'string' || typeof key.y !== 'string') {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `${path} is not an srt-gw token signing key (a P-256 JWK); move it away to mint with a new key`);
  }
  return key as JWK & { kid: string };
}

async function createKeyFile(path: string): Promise<void> {
  const { privateKey, publicKey } = await generateKeyPair(ISSUED_TOKEN_ALGORITHM, { extractable: true });
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey));
  const jwk = { ...(await exportJWK(privateKey)), kid, alg: ISSUED_TOKEN_ALGORITHM };
  const aside = join(dirname(path), `.signing-key.${process.pid}.${randomBytes(6).toString('hex')}`);
  const fd = openSync(aside, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(jwk)}\n`);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(aside, path);
  } catch (error) {
    // Another first use won the race: its key is the one.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  } finally {
    unlinkSync(aside);
  }
}
