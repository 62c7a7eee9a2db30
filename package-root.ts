// Where the srt-gw package is installed: the directory of its package.json. Files shipped beside
// the code (native/build, policies/presets) are found from here, so the same code works from the
// sources, from dist/**, and from the bundled command line (dist/bin).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function locatePackageRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'srt-gw') return dir;
      } catch {
        // not ours, or unreadable: keep looking upwards
      }
    }
    if (dirname(dir) === dir) throw new Error(`srt-gw: cannot find the srt-gw package above ${start}`);
  }
}

export const PACKAGE_ROOT = locatePackageRoot(dirname(fileURLToPath(import.meta.url)));
