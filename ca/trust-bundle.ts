// The CA bundle the jail installs for the sandboxed command: the system's CAs (so tools that
// read one bundle keep working) plus the srt-gw CA certificate. Never the key.
import { readFileSync } from 'node:fs';

export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
/** The macOS system CA bundle (LibreSSL's), for the trust bundle's system part there. */
export const MACOS_SYSTEM_CA_BUNDLE = '/etc/ssl/cert.pem';

/**
 * System CAs from `systemBundlePath` (skipped when the file does not exist) followed by
 * `caCertPem`. Throws when `caCertPem` is not a PEM certificate or carries a private key.
 */
export function buildTrustBundle(caCertPem: string, systemBundlePath: string = SYSTEM_CA_BUNDLE): string {
  // SECURITY: the bundle is copied into the sandbox; a key in it would let the command mint
  // certificates every jailed client trusts — ca/trust-bundle.test.ts "refuses a private key"
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(caCertPem)) {
    throw new TypeError('buildTrustBundle: the CA PEM contains a private key; pass the certificate only');
  }
  if (!caCertPem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new TypeError('buildTrustBundle: the CA PEM contains no certificate');
  }
  let system = '';
  try {
    system = readFileSync(systemBundlePath, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const parts = [system, caCertPem].map((part) => part.trim()).filter((part) => part !== '');
  return parts.join('\n') + '\n';
}
