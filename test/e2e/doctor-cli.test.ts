// `srt-gw doctor` as a user runs it: on a machine with nothing on PATH it fails and names what
// to install; on the CI machine (where .ci/run installed everything) it passes.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';

const CLI = resolve(import.meta.dirname, '../../dist/bin/srt-gw.js');

function doctor(env: NodeJS.ProcessEnv): { status: number | null; stdout: string } {
  const caDir = mkdtempSync(join(tmpdir(), 'srt-gw-doctor-ca-'));
  try {
    const result = spawnSync(process.execPath, [CLI, 'doctor', '--ca-dir', caDir], { env, encoding: 'utf8', timeout: 30_000 });
    return { status: result.status, stdout: result.stdout };
  } finally {
    rmSync(caDir, { recursive: true, force: true });
  }
}

describe('srt-gw doctor', () => {
  it('with no tools on PATH it exits 1 and says what to install', () => {
    const { status, stdout } = doctor({ PATH: '/nonexistent' });
    expect(status).toBe(1);
    expect(stdout).toMatch(/^FAIL bubblewrap .*not installed\n +fix: apt-get install bubblewrap/m);
    expect(stdout).toMatch(/^FAIL nftables .*\n +fix: apt-get install nftables/m);
    expect(stdout).toMatch(/problem\(s\) stop srt-gw run here/);
  });

  const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('cc'));
  it.skipIf(skip !== null)('on a machine set up by scripts/install.sh every check passes', () => {
    const { status, stdout } = doctor(process.env);
    expect(stdout).not.toMatch(/^FAIL/m);
    // A real jail was started and ran `true`: the static checks are not the whole story.
    expect(stdout).toMatch(/^ok +jail smoke test +srt-gw run -- true works \(\d+ ms\)$/m);
    // Which mechanism keeps the command off host unix sockets, and the Landlock ABI it checked.
    expect(stdout).toMatch(/^ok +host unix sockets +refused unless created in the jail .* seccomp user-notification supervisor \(Landlock ABI \d+ /m);
    expect(status).toBe(0);
  });
});
