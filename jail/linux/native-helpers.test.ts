import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, isSrtGwError } from '../../errors.js';
import { findNativeHelpers, NATIVE_HELPER_FILES } from './native-helpers.js';
import { scratchDirectories } from '../../test/support/scratch-directories.js';
import { errorOf } from '../../test/support/srt-gw-error.js';

const scratchDir = scratchDirectories('srt-gw-native-');

describe('findNativeHelpers', () => {
  it('refuses (never a weaker jail) when a helper is missing, naming it and what to install', () => {
    const dir = scratchDir();
    const error = errorOf(() => findNativeHelpers(dir));
    expect(isSrtGwError(error, ErrorCodes.JAIL_UNAVAILABLE)).toBe(true);
    expect((error as Error).message).toContain(join(dir, NATIVE_HELPER_FILES.init));
    expect((error as Error).message).toContain('apt-get install gcc libc6-dev libseccomp-dev');
    expect((error as Error).message).toContain('bash native/build.sh');
  });

  it('refuses a helper that is there but not executable', () => {
    const dir = scratchDir();
    for (const file of Object.values(NATIVE_HELPER_FILES)) {
      writeFileSync(join(dir, file), '#!/bin/sh\n');
      chmodSync(join(dir, file), 0o755);
    }
    chmodSync(join(dir, NATIVE_HELPER_FILES.dnsForwarder), 0o644);
    expect((errorOf(() => findNativeHelpers(dir)) as Error).message).toContain(NATIVE_HELPER_FILES.dnsForwarder);
  });

  it('finds all three when they are built', () => {
    const dir = scratchDir();
    for (const file of Object.values(NATIVE_HELPER_FILES)) {
      writeFileSync(join(dir, file), '#!/bin/sh\n');
      chmodSync(join(dir, file), 0o755);
    }
    expect(findNativeHelpers(dir)).toEqual({
      init: join(dir, 'srt-gw-jail-init'),
      redirector: join(dir, 'srt-gw-redirector'),
      dnsForwarder: join(dir, 'srt-gw-dns-forwarder'),
    });
  });
});
