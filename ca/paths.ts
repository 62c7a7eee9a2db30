// Where the local CA lives on disk. The directory holds only the CA certificate and its key; it
// is never mounted into the jail (the jail gets the certificate through the trust bundle).
import os from 'node:os';
import path from 'node:path';

/** The CA certificate (public; what clients trust). */
export const CA_CERT_FILE = 'ca.pem';
/** The CA private key (mode 0600; never leaves the host). */
export const CA_KEY_FILE = 'ca-key.pem';

/** `$SRT_GW_CA_DIR`, else `~/.config/srt-gw/ca`. */
export function defaultCaDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.SRT_GW_CA_DIR;
  if (fromEnv !== undefined && fromEnv !== '') return path.resolve(fromEnv);
  return path.join(os.homedir(), '.config', 'srt-gw', 'ca');
}
