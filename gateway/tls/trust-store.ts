// The CAs the gateway trusts for upstream certificates: the system store (not node's bundled
// Mozilla list, so an enterprise root installed on the host works) plus --upstream-ca files.
import { existsSync, readFileSync } from 'node:fs';
import { ErrorCodes, SrtGwError } from '../../errors.js';

const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Alpine
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL
  '/etc/ssl/cert.pem', // macOS, BSD
];

export function loadUpstreamTrust(extraCaFiles: readonly string[] = []): string[] {
  const bundle = SYSTEM_BUNDLES.find((path) => existsSync(path));
  const trusted = bundle ? [readFileSync(bundle, 'utf8')] : [...process.getBuiltinModule('node:tls').rootCertificates];
  for (const file of extraCaFiles) {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (error) {
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--upstream-ca ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`, { cause: error });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--upstream-ca ${file}: no PEM certificate in it`);
    }
    trusted.push(pem);
  }
  return trusted;
}
