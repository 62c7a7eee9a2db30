// `srt-gw ca init` and `srt-gw ca path`.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadOrCreateCertificateAuthority } from '../ca/index.js';
import { CA_CERT_FILE, defaultCaDir } from '../ca/paths.js';
import { ErrorCodes, SrtGwError } from '../errors.js';

export async function initCa(dir = defaultCaDir()): Promise<void> {
  const ca = await loadOrCreateCertificateAuthority(dir);
  process.stdout.write(`${ca.certPath}\n`);
  process.stderr.write(`srt-gw: CA ready (SHA-256 ${ca.fingerprint256}); trust ${ca.certPath} in clients that go through the gateway\n`);
}

export async function printCaPath(dir = defaultCaDir()): Promise<void> {
  const path = join(dir, CA_CERT_FILE);
  if (!existsSync(path)) throw new SrtGwError(ErrorCodes.CA_INVALID, `no CA in ${dir} yet; run: srt-gw ca init${dir === defaultCaDir() ? '' : ` --ca-dir ${dir}`}`);
  process.stdout.write(`${path}\n`);
}
