// `srt-gw doctor`: prints the checks and exits 1 when one of them fails.
import { defaultCaDir } from '../ca/paths.js';
import { formatDoctorReport, runDoctor } from '../jail/doctor.js';
import { NATIVE_BUILD_DIR } from '../jail/linux/native-helpers.js';

export async function doctor(caDir = defaultCaDir()): Promise<number> {
  const results = await runDoctor({ caDir, nativeBuildDir: NATIVE_BUILD_DIR });
  process.stdout.write(formatDoctorReport(results));
  return results.some((result) => result.status === 'fail') ? 1 : 0;
}
