import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateCertificateAuthority, type CertificateAuthority } from './authority.js';
import { buildTrustBundle } from './trust-bundle.js';

let work: string;
let ca: CertificateAuthority;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'srt-gw-trust-bundle-test-'));
  ca = await loadOrCreateCertificateAuthority(path.join(work, 'ca'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

function certificateCount(pem: string): number {
  return pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
}

describe('buildTrustBundle', () => {
  it('appends the srt-gw CA to the system bundle', () => {
    const other = path.join(work, 'system.crt');
    fs.writeFileSync(other, '# system roots\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----');
    const bundle = buildTrustBundle(ca.certPem, other);
    expect(bundle.startsWith('# system roots\n-----BEGIN CERTIFICATE-----')).toBe(true);
    expect(bundle.endsWith(ca.certPem)).toBe(true);
    expect(bundle).toContain('-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----');
    expect(certificateCount(bundle)).toBe(2);
  });

  it('is the CA alone when the system bundle does not exist', () => {
    expect(buildTrustBundle(ca.certPem, path.join(work, 'missing.crt'))).toBe(ca.certPem);
  });

  it.skipIf(!fs.existsSync('/etc/ssl/certs/ca-certificates.crt'))('reads the Debian system bundle by default', () => {
    const system = fs.readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8');
    expect(certificateCount(buildTrustBundle(ca.certPem))).toBe(certificateCount(system) + 1);
  });

  it('never includes the CA key', () => {
    const bundle = buildTrustBundle(ca.certPem, path.join(work, 'missing.crt'));
    const key = fs.readFileSync(path.join(ca.dir, 'ca-key.pem'), 'utf8');
    expect(bundle).not.toContain('PRIVATE KEY');
    expect(bundle).not.toContain(key.split('\n')[1]);
  });

  it('refuses a private key passed in place of the certificate', () => {
    const key = fs.readFileSync(path.join(ca.dir, 'ca-key.pem'), 'utf8');
    expect(() => buildTrustBundle(ca.certPem + key)).toThrow(/contains a private key/);
    expect(() => buildTrustBundle('')).toThrow(/no certificate/);
  });
});
