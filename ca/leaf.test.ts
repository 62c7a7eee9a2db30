import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../test/support/capabilities.js';
import { loadOrCreateCertificateAuthority, type CertificateAuthority } from './authority.js';
import { isValidLeafHost, LEAF_BACKDATE_MS, LEAF_LIFETIME_MS } from './leaf.js';

let work: string;
let ca: CertificateAuthority;
let caCert: crypto.X509Certificate;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'srt-gw-leaf-test-'));
  ca = await loadOrCreateCertificateAuthority(path.join(work, 'ca'));
  caCert = new crypto.X509Certificate(ca.certPem);
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

const noOpenssl = capabilityGate(missingCommand('openssl')) !== null;

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('issueLeafCertificate', () => {
  it('issues a leaf that node verifies against the CA', () => {
    const leaf = ca.issueLeafCertificate('api.example.test');
    const cert = new crypto.X509Certificate(leaf.certPem);
    expect(leaf.host).toBe('api.example.test');
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.issuer).toBe(caCert.subject);
    expect(cert.subject).toBe('CN=api.example.test');
    expect(cert.subjectAltName).toBe('DNS:api.example.test');
    expect(cert.checkHost('api.example.test')).toBe('api.example.test');
    expect(cert.checkHost('other.example.test')).toBeUndefined();
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // node names the EKU list keyUsage
    expect(cert.checkPrivateKey(crypto.createPrivateKey(leaf.keyPem))).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
  });

  it('backdates notBefore by an hour and expires in seven days', () => {
    const before = Date.now();
    const leaf = ca.issueLeafCertificate('time.example.test');
    const cert = new crypto.X509Certificate(leaf.certPem);
    const notBefore = Date.parse(cert.validFrom);
    const notAfter = Date.parse(cert.validTo);
    expect(notAfter).toBe(leaf.notAfter.getTime());
    expect(Math.abs(notBefore - (before - LEAF_BACKDATE_MS))).toBeLessThan(2000);
    expect(Math.abs(notAfter - (before + LEAF_LIFETIME_MS))).toBeLessThan(2000);
    expect(LEAF_BACKDATE_MS).toBe(3600_000);
    expect(LEAF_LIFETIME_MS).toBe(7 * 24 * 3600_000);
  });

  it('shares one key between leaves but gives each a fresh positive serial', () => {
    const a = ca.issueLeafCertificate('a.example.test');
    const b = ca.issueLeafCertificate('b.example.test');
    expect(a.keyPem).toBe(b.keyPem);
    const serialA = new crypto.X509Certificate(a.certPem).serialNumber;
    const serialB = new crypto.X509Certificate(b.certPem).serialNumber;
    expect(serialA).not.toBe(serialB);
    expect(parseInt(serialA.slice(0, 2), 16) & 0x80).toBe(0);
  });

  it('puts IP literals in an iPAddress SAN', () => {
    const v4 = new crypto.X509Certificate(ca.issueLeafCertificate('127.0.0.1').certPem);
    expect(v4.subjectAltName).toBe('IP Address:127.0.0.1');
    expect(v4.checkIP('127.0.0.1')).toBe('127.0.0.1');
    const v6 = new crypto.X509Certificate(ca.issueLeafCertificate('::1').certPem);
    expect(v6.subjectAltName).toBe('IP Address:0:0:0:0:0:0:0:1');
    expect(v6.checkIP('::1')).toBe('::1');
    const mapped = new crypto.X509Certificate(ca.issueLeafCertificate('2001:db8::ffff:192.0.2.1').certPem);
    expect(mapped.checkIP('2001:db8::ffff:c000:201')).toBe('2001:db8::ffff:c000:201');
  });

  it('truncates a long CN to 64 characters and keeps the full name in the SAN', () => {
    const host = `${'a'.repeat(60)}.example.test`;
    const cert = new crypto.X509Certificate(ca.issueLeafCertificate(host).certPem);
    expect(cert.subject).toBe(`CN=${host.slice(0, 64)}`);
    expect(cert.subjectAltName).toBe(`DNS:${host}`);
  });

  it.each([
    ['traversal', '../x'],
    ['space', 'a b'],
    ['empty', ''],
    ['upper case (not normalised)', 'API.example.test'],
    ['trailing dot (not normalised)', 'example.test.'],
    ['wildcard', '*.example.test'],
    ['empty label', 'a..b'],
    ['leading hyphen', '-a.example.test'],
    ['label over 63 characters', `${'a'.repeat(64)}.test`],
    ['name over 253 characters', `${'a'.repeat(60)}.`.repeat(5) + 'test'],
    ['numeric last label', '1.2.3'],
    ['bracketed IPv6', '[::1]'],
    ['IPv6 zone id', 'fe80::1%eth0'],
    ['port', 'example.test:443'],
    ['NUL byte', 'a\u0000b.test'],
    ['non-ASCII (not punycode)', 'bücher.example'],
  ])('rejects a host with %s', (_name, host) => {
    expect(isValidLeafHost(host)).toBe(false);
    expect(() => ca.issueLeafCertificate(host)).toThrow(/^cannot issue a leaf certificate: /);
  });

  it.each([['localhost'], ['xn--bcher-kva.example'], ['_dmarc.example.test'], ['a-b.c1.example']])('accepts %s', (host) => {
    expect(isValidLeafHost(host)).toBe(true);
  });

  it.skipIf(noOpenssl)('issues leaves that openssl verifies for their name or address', () => {
    const caPath = path.join(work, 'openssl-ca.pem');
    fs.writeFileSync(caPath, ca.certPem);
    const cases: Array<[host: string, check: string[]]> = [
      ['api.example.test', ['-verify_hostname', 'api.example.test']],
      ['127.0.0.1', ['-verify_ip', '127.0.0.1']],
      ['::1', ['-verify_ip', '::1']],
    ];
    for (const [host, check] of cases) {
      const leafPath = path.join(work, `leaf-${host.replace(/:/g, '_')}.pem`);
      fs.writeFileSync(leafPath, ca.issueLeafCertificate(host).certPem);
      expect(openssl(['verify', '-CAfile', caPath, leafPath]).trim()).toBe(`${leafPath}: OK`);
      expect(openssl(['verify', '-CAfile', caPath, '-purpose', 'sslserver', '-x509_strict', ...check, leafPath]).trim()).toBe(`${leafPath}: OK`);
    }
    const text = openssl(['x509', '-in', path.join(work, 'leaf-api.example.test.pem'), '-noout', '-text']);
    expect(text).toContain('Signature Algorithm: ecdsa-with-SHA256');
    expect(text).toMatch(/X509v3 Subject Alternative Name: \s+DNS:api\.example\.test\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage: \s+TLS Web Server Authentication\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE\n/);
    expect(text).toContain('X509v3 Authority Key Identifier');
  });

  it.skipIf(noOpenssl)('fails openssl verification against another CA', async () => {
    const other = await loadOrCreateCertificateAuthority(path.join(work, 'other-ca'));
    const leafPath = path.join(work, 'foreign-leaf.pem');
    fs.writeFileSync(leafPath, other.issueLeafCertificate('api.example.test').certPem);
    const caPath = path.join(work, 'openssl-ca.pem');
    fs.writeFileSync(caPath, ca.certPem);
    expect(() => openssl(['verify', '-CAfile', caPath, leafPath])).toThrow();
  });
});
