// Builds the jail's native helpers (native/build.sh, the system C compiler) once per test
// process and says where they are; a build failure throws with the compiler's own output.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD_SCRIPT = join(REPO_ROOT, 'native', 'build.sh');
const REDIRECTOR_PATH = join(REPO_ROOT, 'native', 'build', 'srt-gw-redirector');
const DNS_FORWARDER_PATH = join(REPO_ROOT, 'native', 'build', 'srt-gw-dns-forwarder');

let built = false;

/** Runs native/build.sh (once per test process); a failure throws with the compiler's output. */
function buildNative(): void {
  if (built) return;
  const result = spawnSync('sh', [BUILD_SCRIPT], { cwd: REPO_ROOT, encoding: 'utf8' });
  if (result.error) throw new Error(`cannot run ${BUILD_SCRIPT}: ${result.error.message}`, { cause: result.error });
  if (result.status !== 0) {
    const why = result.signal ? `signal ${result.signal}` : `exit ${result.status}`;
    throw new Error(`native/build.sh failed (${why}):\n${result.stderr}${result.stdout}`);
  }
  built = true;
}

/** Builds the native helpers (once) and returns the path of the srt-gw-redirector binary. */
export function buildRedirector(): string {
  buildNative();
  return REDIRECTOR_PATH;
}

/** Builds the native helpers (once) and returns the path of the srt-gw-dns-forwarder binary. */
export function buildDnsForwarder(): string {
  buildNative();
  return DNS_FORWARDER_PATH;
}
