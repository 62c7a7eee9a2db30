// Where the jail's C helpers are (built at install into native/build) and what to say when they
// are not: srt-gw run never falls back to a weaker jail without them.
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { PACKAGE_ROOT } from '../../package-root.js';

/** native/build of the installed package. */
export const NATIVE_BUILD_DIR = join(PACKAGE_ROOT, 'native', 'build');

export const NATIVE_HELPER_FILES = {
  init: 'srt-gw-jail-init',
  redirector: 'srt-gw-redirector',
  dnsForwarder: 'srt-gw-dns-forwarder',
} as const;

export type NativeHelpers = { readonly [K in keyof typeof NATIVE_HELPER_FILES]: string };

export const NATIVE_BUILD_HINT =
  'build them with: bash native/build.sh in the srt-gw package (it needs a C compiler and libseccomp: apt-get install gcc libc6-dev libseccomp-dev), or reinstall srt-gw';

/** The helpers' paths; throws JAIL_UNAVAILABLE naming the first one missing and how to build it. */
export function findNativeHelpers(buildDir: string = NATIVE_BUILD_DIR): NativeHelpers {
  const found: Partial<Record<keyof typeof NATIVE_HELPER_FILES, string>> = {};
  for (const [key, file] of Object.entries(NATIVE_HELPER_FILES) as [keyof typeof NATIVE_HELPER_FILES, string][]) {
    const path = join(buildDir, file);
    try {
      accessSync(path, constants.X_OK);
    } catch {
      throw new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `the jail's native helper ${path} is missing; ${NATIVE_BUILD_HINT}`);
    }
    found[key] = path;
  }
  return found as NativeHelpers;
}
