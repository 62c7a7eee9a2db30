import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCodes, isSrtGwError } from '../errors.js';
import { capabilityGate, missingCommand } from '../test/support/capabilities.js';
import { createCaCertificatePem, loadOrCreateCertificateAuthority } from './authority.js';

const repoRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
let work: string;

beforeEach(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'srt-gw-ca-test-'));
});
afterEach(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

function mode(file: string): number {
  return fs.statSync(file).mode & 0o777;
}

async function caError(dir: string): Promise<{ code: string; message: string }> {
  try {
    await loadOrCreateCertificateAuthority(dir);
  } catch (error) {
    if (isSrtGwError(error)) return { code: error.code, message: error.message };
    throw error;
  }
  throw new Error('expected loadOrCreateCertificateAuthority to refuse');
}

function writeCa(dir: string, keyPem: string, certPem: string): void {
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'ca-key.pem'), keyPem, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'ca.pem'), certPem, { mode: 0o644 });
}

function newKey(): crypto.KeyObject {
  return crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
}

function pkcs8(key: crypto.KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

describe('loadOrCreateCertificateAuthority', () => {
  it('creates the directory 0700, the key 0600 and a self-signed P-256 CA', async () => {
    const dir = path.join(work, 'nested', 'ca');
    const ca = await loadOrCreateCertificateAuthority(dir);

    expect(mode(dir)).toBe(0o700);
    expect(mode(path.join(dir, 'ca-key.pem'))).toBe(0o600);
    expect(fs.readdirSync(dir).sort()).toEqual(['ca-key.pem', 'ca.pem']);
    expect(ca.dir).toBe(dir);
    expect(ca.certPath).toBe(path.join(dir, 'ca.pem'));
    expect(ca.certPem).toBe(fs.readFileSync(ca.certPath, 'utf8'));

    const cert = new crypto.X509Certificate(ca.certPem);
    expect(cert.fingerprint256).toBe(ca.fingerprint256);
    expect(cert.ca).toBe(true);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.subject).toMatch(/^CN=srt-gw local CA [0-9a-f]{8}\nO=srt-gw$/);
    expect(cert.checkPrivateKey(crypto.createPrivateKey(fs.readFileSync(path.join(dir, 'ca-key.pem'))))).toBe(true);

    const serial = Buffer.from(cert.serialNumber, 'hex');
    expect(serial.length).toBe(16);
    expect(serial[0]! & 0x80).toBe(0);
    const years = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / (365 * 24 * 3600 * 1000);
    expect(years).toBeGreaterThan(10);
    expect(years).toBeLessThan(10.1);
  });

  it('loads the same CA on the second call', async () => {
    const first = await loadOrCreateCertificateAuthority(work);
    const second = await loadOrCreateCertificateAuthority(work);
    expect(second.fingerprint256).toBe(first.fingerprint256);
    expect(second.certPem).toBe(first.certPem);
  });

  it('accepts an existing 0755 directory (not writable by others)', async () => {
    fs.chmodSync(work, 0o755);
    await expect(loadOrCreateCertificateAuthority(work)).resolves.toBeDefined();
  });

  it('ends with one CA when four processes start at once on an empty directory', async () => {
    const runner = transpileCaForChildProcesses();
    for (let round = 0; round < 2; round += 1) {
      const dir = path.join(work, `race-${round}`);
      const startAt = Date.now() + 1500; // every child has loaded its modules by then
      const outputs = await Promise.all(Array.from({ length: 4 }, () => runNode(runner, [dir, String(startAt)])));
      const fingerprints = new Set(outputs.map((output) => output.trim()));
      expect(fingerprints.size, outputs.join('\n')).toBe(1);
      expect([...fingerprints][0]).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      expect(fs.readdirSync(dir).sort()).toEqual(['ca-key.pem', 'ca.pem']);
      const loaded = await loadOrCreateCertificateAuthority(dir);
      expect(loaded.fingerprint256).toBe([...fingerprints][0]);
    }
  }, 30_000);

  it('completes a creation that crashed after the key: certifies the existing key', async () => {
    const key = newKey();
    fs.writeFileSync(path.join(work, 'ca-key.pem'), pkcs8(key), { mode: 0o600 });
    fs.chmodSync(work, 0o700);
    const ca = await loadOrCreateCertificateAuthority(work);
    expect(new crypto.X509Certificate(ca.certPem).checkPrivateKey(key)).toBe(true);
  });

  it('sweeps temporary files left by a crashed creation', async () => {
    const leftover = path.join(work, '.srt-gw-ca-123-abc-ca-key.pem');
    fs.writeFileSync(leftover, 'partial', { mode: 0o600 });
    const old = new Date(Date.now() - 10 * 60 * 1000);
    fs.utimesSync(leftover, old, old);
    await loadOrCreateCertificateAuthority(work);
    expect(fs.existsSync(leftover)).toBe(false);
  });

  it('loads an imported RSA CA and signs leaves with sha256WithRSAEncryption', async () => {
    const dir = path.join(work, 'rsa-ca');
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeCa(dir, pkcs8(privateKey), createCaCertificatePem(privateKey));
    const ca = await loadOrCreateCertificateAuthority(dir);
    const caCert = new crypto.X509Certificate(ca.certPem);
    const leaf = new crypto.X509Certificate(ca.issueLeafCertificate('api.example.test').certPem);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
  });

  describe('refuses', () => {
    it('a key readable by others', async () => {
      await loadOrCreateCertificateAuthority(work);
      const keyPath = path.join(work, 'ca-key.pem');
      fs.chmodSync(keyPath, 0o644);
      expect(await caError(work)).toEqual({
        code: ErrorCodes.CA_INVALID,
        message: `ca-key.pem is readable by group/others (mode 0644); run: chmod 600 ${keyPath}`,
      });
    });

    it('a key writable by group', async () => {
      await loadOrCreateCertificateAuthority(work);
      const keyPath = path.join(work, 'ca-key.pem');
      fs.chmodSync(keyPath, 0o620);
      expect((await caError(work)).message).toBe(`ca-key.pem is writable by group/others (mode 0620); run: chmod 600 ${keyPath}`);
    });

    it('a group/world-writable directory, before creating anything in it', async () => {
      fs.chmodSync(work, 0o777);
      expect(await caError(work)).toEqual({
        code: ErrorCodes.CA_INVALID,
        message: `the CA directory ${work} is writable by group/others (mode 0777); run: chmod 700 ${work}`,
      });
      expect(fs.readdirSync(work)).toEqual([]);
    });

    it('a file where the directory should be (--ca-dir /etc/passwd), with a message and no stack', async () => {
      const file = path.join(work, 'passwd');
      fs.writeFileSync(file, 'root:x:0:0::/root:/bin/sh\n');
      expect(await caError(file)).toEqual({
        code: ErrorCodes.CA_INVALID,
        message: `${file} is not a directory; give --ca-dir (or SRT_GW_CA_DIR) a directory`,
      });
    });

    it('a directory below a file', async () => {
      fs.writeFileSync(path.join(work, 'file'), '');
      expect((await caError(path.join(work, 'file', 'ca'))).message).toMatch(/is not a directory; give --ca-dir/);
    });

    it('a certificate and key that do not match', async () => {
      const dir = path.join(work, 'ca');
      writeCa(dir, pkcs8(newKey()), createCaCertificatePem(newKey()));
      const error = await caError(dir);
      expect(error.code).toBe(ErrorCodes.CA_INVALID);
      expect(error.message).toBe(`ca.pem and ca-key.pem in ${dir} do not match (the key did not make this certificate); restore the matching pair, or remove both to create a new CA`);
    });

    it('an expired CA', async () => {
      const dir = path.join(work, 'ca');
      const key = newKey();
      const elevenYearsAgo = new Date(Date.now() - 11 * 365 * 24 * 3600 * 1000);
      writeCa(dir, pkcs8(key), createCaCertificatePem(key, elevenYearsAgo));
      const error = await caError(dir);
      expect(error.code).toBe(ErrorCodes.CA_INVALID);
      expect(error.message).toMatch(new RegExp(`^the CA certificate ${escape(path.join(dir, 'ca.pem'))} expired on \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z; remove ca\\.pem and ca-key\\.pem in ${escape(dir)} to create a new CA`));
    });

    it('a CA that is not valid yet (and encodes dates from 2050 as GeneralizedTime)', async () => {
      const dir = path.join(work, 'ca');
      const key = newKey();
      const certPem = createCaCertificatePem(key, new Date('2045-06-01T12:00:00Z'));
      expect(new crypto.X509Certificate(certPem).validTo).toBe('May 30 12:00:00 2055 GMT');
      writeCa(dir, pkcs8(key), certPem);
      expect((await caError(dir)).message).toBe(`the CA certificate ${path.join(dir, 'ca.pem')} is not valid until 2045-05-31T12:00:00.000Z; check the system clock`);
    });

    it('a certificate without its key', async () => {
      const dir = path.join(work, 'ca');
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.writeFileSync(path.join(dir, 'ca.pem'), createCaCertificatePem(newKey()));
      expect((await caError(dir)).message).toMatch(/exists but ca-key\.pem is missing; restore the key, or remove .*ca\.pem to create a new CA/);
    });

    it('a corrupt key', async () => {
      const dir = path.join(work, 'ca');
      writeCa(dir, 'not a key\n', createCaCertificatePem(newKey()));
      expect((await caError(dir)).message).toMatch(/ca-key\.pem is not a usable unencrypted PEM private key/);
    });

    it('a certificate that is not a CA', async () => {
      const dir = path.join(work, 'ca');
      const ca = await loadOrCreateCertificateAuthority(dir);
      const leaf = ca.issueLeafCertificate('api.example.test');
      fs.writeFileSync(path.join(dir, 'ca.pem'), leaf.certPem);
      expect((await caError(dir)).message).toMatch(/is not a CA certificate/);
    });
  });

  it.skipIf(capabilityGate(missingCommand('openssl')) !== null)('produces a CA certificate openssl reads as intended', async () => {
    const ca = await loadOrCreateCertificateAuthority(work);
    const text = execFileSync('openssl', ['x509', '-in', ca.certPath, '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toContain('Version: 3 (0x2)');
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toContain('ASN1 OID: prime256v1');
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).toMatch(/Subject: CN ?= ?srt-gw local CA [0-9a-f]{8}, O ?= ?srt-gw/);
    const verified = execFileSync('openssl', ['verify', '-CAfile', ca.certPath, ca.certPath], { encoding: 'utf8' });
    expect(verified.trim()).toBe(`${ca.certPath}: OK`);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Node 20 cannot run TypeScript, so the race test transpiles ca/ and errors.ts into a temporary
 * ESM tree (imports already carry .js) that resolves node-forge through a node_modules link.
 */
function transpileCaForChildProcesses(): string {
  const out = path.join(work, 'runner');
  fs.mkdirSync(path.join(out, 'ca'), { recursive: true });
  fs.writeFileSync(path.join(out, 'package.json'), '{"type":"module"}\n');
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(out, 'node_modules'));
  const sources = ['errors.ts', ...fs.readdirSync(path.join(repoRoot, 'ca')).filter((f) => f.endsWith('.ts') && !f.includes('.test.') && !f.includes('.bench.')).map((f) => `ca/${f}`)];
  for (const source of sources) {
    const { outputText } = ts.transpileModule(fs.readFileSync(path.join(repoRoot, source), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    fs.writeFileSync(path.join(out, source.replace(/\.ts$/, '.js')), outputText);
  }
  const child = path.join(out, 'race-child.js');
  fs.writeFileSync(
    child,
    [
      "import { loadOrCreateCertificateAuthority } from './ca/authority.js';",
      'const [dir, startAt] = process.argv.slice(2);',
      'while (Date.now() < Number(startAt)) { /* start together */ }',
      'const ca = await loadOrCreateCertificateAuthority(dir);',
      'process.stdout.write(ca.fingerprint256);',
    ].join('\n'),
  );
  return child;
}

function runNode(script: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`child exited ${code}: ${stderr}`))));
  });
}
