// `srt-gw doctor`: prints the checks and exits 1 when one of them fails.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultCaDir } from '../ca/paths.js';
import { formatDoctorReport, runDoctor } from '../jail/doctor.js';

/** native/build of the installed package: dist/cli/doctor.js → ../../native/build. */
export const NATIVE_BUILD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build');

export async function doctor(caDir = defaultCaDir()): Promise<number> {
  const results = await runDoctor({ caDir, nativeBuildDir: NATIVE_BUILD_DIR });
  process.stdout.write(formatDoctorReport(results));
  return results.some((result) => result.status === 'fail') ? 1 : 0;
}
