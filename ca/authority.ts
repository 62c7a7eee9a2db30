// The local CA: created on first use, loaded afterwards, refused when its files are unsafe or
// unusable. Creation is race-free across processes: each file appears only through link(2),
// which fails when the name exists, so concurrent starters all end up with the same CA.
import crypto from 'node:crypto';
import { chmodSync, constants as fsConstants, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { asn1, type Asn1 } from './asn1.js';
import { LeafIssuer, type LeafCertificate } from './leaf.js';
import { CA_CERT_FILE, CA_KEY_FILE } from './paths.js';
import {
  basicConstraints,
  distinguishedName,
  fromTrustedDer,
  keyIdentifierOf,
  KeyUsageBits,
  keyUsage,
  Oids,
  randomSerial,
  signCertificate,
  signerFor,
  subjectKeyIdentifier,
  subjectPublicKeyInfo,
  toPem,
} from './x509-builder.js';


/** CA certificates are long-lived: re-trusting a new CA everywhere is the expensive part. */
export const CA_LIFETIME_MS = 10 * 365 * 24 * 60 * 60 * 1000;
const CA_BACKDATE_MS = 24 * 60 * 60 * 1000;
/** Temporary files of a creation that crashed are swept after this long. */
const STALE_TEMP_MS = 60 * 1000;
const TEMP_PREFIX = '.srt-gw-ca-';

export class CertificateAuthority {
  readonly certPath: string;
  /** SHA-256 fingerprint, colon-separated upper-case hex (as openssl and node print it). */
  readonly fingerprint256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  private readonly leaves: LeafIssuer;

  /** Use loadOrCreateCertificateAuthority: this trusts that the key matches and the files were checked. */
  constructor(
    readonly dir: string,
    readonly certPem: string,
    certificate: crypto.X509Certificate,
    key: crypto.KeyObject,
  ) {
    this.certPath = path.join(dir, CA_CERT_FILE);
    this.fingerprint256 = certificate.fingerprint256;
    const parsed = readCaCertificate(certificate);
    this.notBefore = parsed.notBefore;
    this.notAfter = parsed.notAfter;
    this.leaves = new LeafIssuer({
      issuerName: parsed.subject,
      issuerKeyId: parsed.subjectKeyId,
      issuerNotAfter: parsed.notAfter,
      signer: signerFor(key),
    });
  }

  /** A leaf for `host` (normalised DNS name or IP literal), signed now; throws for anything else. */
  issueLeafCertificate(host: string): LeafCertificate {
    return this.leaves.issue(host);
  }
}

/**
 * Loads the CA in `dir`, creating the directory (0700), `ca-key.pem` (0600) and `ca.pem` first
 * when they are absent. Throws SrtGwError CA_INVALID, with the command that fixes it, when the
 * directory is group/world-writable, the key is readable by others, or the files are unusable.
 */
export async function loadOrCreateCertificateAuthority(dir: string): Promise<CertificateAuthority> {
  const caDir = path.resolve(dir);
  // Loading reads with synchronous calls: a dozen small reads, each a thread-pool round trip when
  // asynchronous, were ~10 ms of `srt-gw run`'s start-up on a busy machine (bench/jail.mjs).
  ensureDirectory(caDir);
  sweepStaleTemporaries(caDir);
  // Each pass either loads, or creates one missing file and looks again. link(2) fails with
  // EEXIST for the loser of a race, who then loads what the winner linked.
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const certExists = exists(path.join(caDir, CA_CERT_FILE));
    const keyExists = exists(path.join(caDir, CA_KEY_FILE));
    if (certExists && keyExists) return loadCertificateAuthority(caDir);
    if (certExists) {
      throw caInvalid(`${path.join(caDir, CA_CERT_FILE)} exists but ${CA_KEY_FILE} is missing; restore the key, or remove ${path.join(caDir, CA_CERT_FILE)} to create a new CA (clients must then trust the new one)`);
    }
    if (!keyExists) {
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      if (!(await linkNewFile(caDir, CA_KEY_FILE, keyPem, 0o600))) continue;
    }
    // The key is there (ours, or a racing process's, or left by a crash before its certificate):
    // self-sign a certificate for it. Whoever links ca.pem first wins; everyone loads that one.
    const key = readCaKey(caDir);
    await linkNewFile(caDir, CA_CERT_FILE, createCaCertificatePem(key), 0o644);
  }
  throw caInvalid(`could not create the CA in ${caDir}: its files keep changing; is another tool writing there?`);
}

/** A self-signed CA certificate for `key`: CN "srt-gw local CA <id>", 10 years, pathlen 0. */
export function createCaCertificatePem(key: crypto.KeyObject, now: Date = new Date()): string {
  const publicKey = crypto.createPublicKey(key);
  const name = distinguishedName([
    [Oids.commonName, `srt-gw local CA ${crypto.randomBytes(4).toString('hex')}`],
    [Oids.organizationName, 'srt-gw'],
  ]);
  const der = signCertificate(
    {
      serial: randomSerial(),
      issuer: name,
      subject: name,
      notBefore: new Date(now.getTime() - CA_BACKDATE_MS),
      notAfter: new Date(now.getTime() + CA_LIFETIME_MS),
      subjectPublicKeyInfo: subjectPublicKeyInfo(publicKey),
      extensions: [
        basicConstraints(true, 0),
        keyUsage([KeyUsageBits.keyCertSign, KeyUsageBits.cRLSign]),
        subjectKeyIdentifier(keyIdentifierOf(publicKey)),
      ],
    },
    signerFor(key),
  );
  return toPem(der);
}

function loadCertificateAuthority(dir: string): CertificateAuthority {
  const key = readCaKey(dir);
  const certPath = path.join(dir, CA_CERT_FILE);
  const certStat = statFile(certPath);
  if ((certStat.mode & 0o022) !== 0) {
    throw caInvalid(`${CA_CERT_FILE} is writable by group/others (mode ${octal(certStat.mode)}); run: chmod 644 ${certPath}`);
  }
  const certPem = readCaFile(certPath);
  let certificate: crypto.X509Certificate;
  try {
    certificate = new crypto.X509Certificate(certPem);
  } catch (error) {
    throw caInvalid(`${certPath} is not a PEM certificate (${(error as Error).message}); restore it, or remove ${CA_CERT_FILE} and ${CA_KEY_FILE} in ${dir} to create a new CA`, error);
  }
  if (!certificate.ca) throw caInvalid(`${certPath} is not a CA certificate (basicConstraints CA:TRUE missing)`);
  if (!certificate.checkPrivateKey(key)) {
    throw caInvalid(`${CA_CERT_FILE} and ${CA_KEY_FILE} in ${dir} do not match (the key did not make this certificate); restore the matching pair, or remove both to create a new CA`);
  }
  if (!certificate.checkIssued(certificate) || !certificate.verify(certificate.publicKey)) {
    throw caInvalid(`${certPath} is not self-signed; srt-gw needs a root CA it can hand to clients as a trust anchor`);
  }
  const authority = new CertificateAuthority(dir, certPem, certificate, key);
  // Fail at startup, not at the first handshake, if leaves would not chain to this certificate
  // (an issuer name that did not survive re-encoding, a signer mismatch).
  const probe = new crypto.X509Certificate(authority.issueLeafCertificate('probe.srt-gw.invalid').certPem);
  if (!probe.checkIssued(certificate) || !probe.verify(certificate.publicKey)) {
    throw caInvalid(`leaves signed with ${path.join(dir, CA_KEY_FILE)} do not verify against ${certPath}; replace the CA (remove both files to create a new one)`);
  }
  const now = Date.now();
  if (authority.notAfter.getTime() <= now) {
    throw caInvalid(`the CA certificate ${certPath} expired on ${authority.notAfter.toISOString()}; remove ${CA_CERT_FILE} and ${CA_KEY_FILE} in ${dir} to create a new CA (clients must then trust the new one)`);
  }
  if (authority.notBefore.getTime() > now) {
    throw caInvalid(`the CA certificate ${certPath} is not valid until ${authority.notBefore.toISOString()}; check the system clock`);
  }
  return authority;
}

function readCaKey(dir: string): crypto.KeyObject {
  const keyPath = path.join(dir, CA_KEY_FILE);
  const keyStat = statFile(keyPath);
  // SECURITY: the CA key signs a certificate for any host; anyone who reads it can intercept
  // every client that trusts the CA — ca/authority.test.ts "refuses a key readable by others"
  if ((keyStat.mode & 0o044) !== 0) {
    throw caInvalid(`${CA_KEY_FILE} is readable by group/others (mode ${octal(keyStat.mode)}); run: chmod 600 ${keyPath}`);
  }
  if ((keyStat.mode & 0o022) !== 0) {
    throw caInvalid(`${CA_KEY_FILE} is writable by group/others (mode ${octal(keyStat.mode)}); run: chmod 600 ${keyPath}`);
  }
  const keyPem = readCaFile(keyPath);
  try {
    const key = crypto.createPrivateKey(keyPem);
    signerFor(key);
    return key;
  } catch (error) {
    throw caInvalid(`${keyPath} is not a usable unencrypted PEM private key (${(error as Error).message}); restore it, or remove ${CA_CERT_FILE} and ${CA_KEY_FILE} in ${dir} to create a new CA`, error);
  }
}

function ensureDirectory(dir: string): void {
  let dirStat;
  try {
    const created = mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) chmodSync(dir, 0o700); // the umask may have taken bits off; never adds any
    dirStat = statSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw caInvalid(`${dir} is not a directory; give --ca-dir (or SRT_GW_CA_DIR) a directory`, error);
    throw caInvalid(`cannot use ${dir} as the CA directory (${code ?? (error as Error).message}); give --ca-dir (or SRT_GW_CA_DIR) a directory you own`, error);
  }
  if (!dirStat.isDirectory()) throw caInvalid(`${dir} is not a directory; give --ca-dir (or SRT_GW_CA_DIR) a directory`);
  // SECURITY: whoever can write the directory can swap ca.pem/ca-key.pem for their own and so
  // control what the gateway's leaves chain to — ca/authority.test.ts "refuses a writable dir"
  if ((dirStat.mode & 0o022) !== 0) {
    throw caInvalid(`the CA directory ${dir} is writable by group/others (mode ${octal(dirStat.mode)}); run: chmod 700 ${dir}`);
  }
}

/**
 * Writes `contents` to a temporary file in `dir` (created exclusively with `mode`, synced), then
 * links it to `name`. Returns false when `name` already existed: another process won the race.
 */
async function linkNewFile(dir: string, name: string, contents: string, mode: number): Promise<boolean> {
  const temporary = path.join(dir, `${TEMP_PREFIX}${process.pid}-${crypto.randomBytes(6).toString('hex')}-${name}`);
  let handle;
  try {
    handle = await fs.open(temporary, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, mode);
  } catch (error) {
    throw caInvalid(
      `cannot create the CA in ${dir} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give --ca-dir (or SRT_GW_CA_DIR) a directory you own`,
      error,
    );
  }
  try {
    try {
      await handle.writeFile(contents);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.link(temporary, path.join(dir, name));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw caInvalid(`cannot write ${path.join(dir, name)} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, error);
  } finally {
    await fs.rm(temporary, { force: true });
  }
}

/** Removes temporary files of a creation that crashed between write and link. */
function sweepStaleTemporaries(dir: string): void {
  const now = Date.now();
  for (const entry of readdirSync(dir)) {
    if (!entry.startsWith(TEMP_PREFIX)) continue;
    const entryPath = path.join(dir, entry);
    try {
      const entryStat = lstatSync(entryPath);
      if (now - entryStat.mtimeMs > STALE_TEMP_MS) rmSync(entryPath, { force: true });
    } catch {
      // another process swept it first
    }
  }
}

interface CaCertificateFields {
  subject: Asn1;
  subjectKeyId: Buffer | undefined;
  notBefore: Date;
  notAfter: Date;
}

/**
 * The fields leaf issuance copies from the CA certificate. Runs only on a certificate node's
 * X509Certificate already parsed, read from the owner-only CA directory; never on network input.
 */
function readCaCertificate(certificate: crypto.X509Certificate): CaCertificateFields {
  const tbs = (fromTrustedDer(certificate.raw).value as Asn1[])[0]!;
  const fields = tbs.value as Asn1[];
  // TBSCertificate: [0] version (optional), serial, signature, issuer, validity, subject, spki, ...
  const offset = fields[0]!.tagClass === asn1.Class.CONTEXT_SPECIFIC ? 1 : 0;
  const validity = fields[offset + 3]!.value as Asn1[];
  const subject = fields[offset + 4]!;
  return {
    subject,
    subjectKeyId: subjectKeyIdOf(fields),
    notBefore: timeOf(validity[0]!),
    notAfter: timeOf(validity[1]!),
  };
}

function timeOf(node: Asn1): Date {
  const text = node.value as string;
  return node.type === asn1.Type.UTCTIME ? asn1.utcTimeToDate(text) : asn1.generalizedTimeToDate(text);
}

function subjectKeyIdOf(tbsFields: Asn1[]): Buffer | undefined {
  const wrapper = tbsFields.find((field) => field.tagClass === asn1.Class.CONTEXT_SPECIFIC && (field.type as number) === 3);
  const extensions = ((wrapper?.value as Asn1[] | undefined)?.[0]?.value ?? []) as Asn1[];
  const skiOid = asn1.oidToDer(Oids.subjectKeyIdentifier).getBytes();
  for (const extension of extensions) {
    const parts = extension.value as Asn1[];
    if (parts[0]?.value !== skiOid) continue;
    const extnValue = parts[parts.length - 1]!.value as string;
    const keyId = fromTrustedDer(Buffer.from(extnValue, 'binary'));
    return Buffer.from(keyId.value as string, 'binary');
  }
  return undefined;
}

function statFile(filePath: string) {
  try {
    const fileStat = statSync(filePath);
    if (!fileStat.isFile()) throw caInvalid(`${filePath} is not a regular file`);
    return fileStat;
  } catch (error) {
    if (error instanceof SrtGwError) throw error;
    throw caInvalid(`cannot read ${filePath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, error);
  }
}

function exists(filePath: string): boolean {
  try {
    lstatSync(filePath);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw caInvalid(`cannot read ${filePath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, error);
  }
}

function readCaFile(filePath: string): string {
  try {
    return readFileSync(filePath, 'utf8');
  } catch (error) {
    throw caInvalid(`cannot read ${filePath} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); srt-gw runs as the user who owns the CA: check the file's owner and mode (chmod 600 for the key)`, error);
  }
}

function octal(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

function caInvalid(message: string, cause?: unknown): SrtGwError {
  return new SrtGwError(ErrorCodes.CA_INVALID, message, cause === undefined ? undefined : { cause });
}
