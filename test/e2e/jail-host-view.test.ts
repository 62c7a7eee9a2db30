// What the jail shows of the host beyond files: its own network namespace's sysfs (only lo under
// /sys/class/net, not the host's interfaces) and an empty /proc/kallsyms (no kernel symbol list),
// while what programs read to size themselves (/sys/devices/system/cpu) is still there.
import { mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, srtGwRun } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'));

describe.skipIf(skip !== null)("the host's view from inside the jail", () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-host-view-')));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('/sys/class/net holds only lo, /proc/kallsyms is empty, the CPUs are still listed', async () => {
    ensureBuilt();
    const result = await srtGwRun({
      flags: ['-q', '--ca-dir', join(dir, 'ca')],
      command: ['sh', '-c', 'echo "net=$(ls /sys/class/net | tr "\\n" " ")"; echo "kallsyms=$(wc -c < /proc/kallsyms)"; echo "cpus=$(ls /sys/devices/system/cpu | grep -c "^cpu[0-9]")"'],
      cwd: dir,
      env: jailTestEnv({ HOME: join(dir, 'home'), XDG_STATE_HOME: join(dir, 'state') }),
    });
    expect(result.code, result.stderr).toBe(0);
    // The host has more than lo here (the test machine's own interfaces), the jail does not.
    expect(readdirSync('/sys/class/net').length).toBeGreaterThan(0);
    expect(result.stdout).toContain('net=lo \n');
    expect(result.stdout).toContain('kallsyms=0\n');
    expect(result.stdout).toMatch(/^cpus=[1-9][0-9]*$/m);
  });
});
