import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../test/support/capabilities.js';
import { formatDoctorReport, runDoctor, type CheckResult } from './doctor.js';
import { NATIVE_HELPER_FILES } from './linux/native-helpers.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-doctor-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function procSysWith(values: Record<string, string>): string {
  const root = tempDir();
  for (const [name, value] of Object.entries(values)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), `${value}\n`);
  }
  return root;
}

async function check(name: string, options: { procSys?: string; caDir?: string; nativeBuildDir?: string }): Promise<CheckResult> {
  const results = await runDoctor({ caDir: options.caDir ?? tempDir(), nativeBuildDir: options.nativeBuildDir ?? tempDir(), procSys: options.procSys ?? tempDir(), platform: 'linux' });
  const result = results.find((r) => r.name === name);
  if (!result) throw new Error(`no check named ${name}`);
  return result;
}

describe('srt-gw doctor checks', () => {
  it.each([
    [{ 'user/max_user_namespaces': '0' }, 'fail', /max_user_namespaces=15000/],
    [{ 'kernel/unprivileged_userns_clone': '0' }, 'fail', /unprivileged_userns_clone=1/],
    [{ 'kernel/apparmor_restrict_unprivileged_userns': '1' }, 'warn', /AppArmor|apparmor_restrict_unprivileged_userns=0/],
  ])('sysctls %j → %s with the fix named', async (sysctls, status, fix) => {
    const result = await check('user namespaces', { procSys: procSysWith(sysctls) });
    expect(result.status).toBe(status);
    expect(result.fix).toMatch(fix);
  });

  it('a CA key readable by others fails with the chmod to run', async () => {
    const caDir = tempDir();
    writeFileSync(join(caDir, 'ca.pem'), 'x');
    writeFileSync(join(caDir, 'ca-key.pem'), 'x', { mode: 0o644 });
    const result = await check('local CA', { caDir });
    expect(result).toMatchObject({ status: 'fail', fix: `chmod 600 ${join(caDir, 'ca-key.pem')}` });
  });

  it('no CA yet is only a warning (serve and run create it)', async () => {
    expect((await check('local CA', {})).status).toBe('warn');
  });

  it('a missing native helper fails and says how to build it', async () => {
    const result = await check('native helpers', { nativeBuildDir: tempDir() });
    expect(result.status).toBe('fail');
    expect(result.fix).toMatch(/native\/build\.sh/);
  });

  it('on macOS the platform-neutral checks and the Seatbelt ones run (jail/macos/doctor-darwin.test.ts)', async () => {
    const names = (await runDoctor({ caDir: tempDir(), nativeBuildDir: tempDir(), platform: 'darwin' })).map((r) => r.name);
    expect(names).toEqual(['node', 'local CA', 'sandbox-exec', 'CA trust (macOS)', 'violation log']);
  });

  it('the report marks failures and ends with a verdict', () => {
    const text = formatDoctorReport([
      { name: 'node', status: 'ok', detail: 'Node.js 20' },
      { name: 'bubblewrap', status: 'fail', detail: 'bwrap: not installed', fix: 'apt-get install bubblewrap' },
    ]);
    expect(text).toBe(
      'ok   node        Node.js 20\nFAIL bubblewrap  bwrap: not installed\n       fix: apt-get install bubblewrap\n1 problem(s) stop srt-gw run here; fix them as shown.\n',
    );
  });
});

describe('jail smoke test', () => {
  const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'));
  it.skipIf(skip !== null)('a jail that cannot start fails the check with the step it names', async () => {
    // Helpers that exist but whose init fails the way a real setup failure does (exit 125).
    const nativeBuildDir = tempDir();
    for (const file of Object.values(NATIVE_HELPER_FILES)) {
      writeFileSync(join(nativeBuildDir, file), '#!/bin/sh\necho "srt-gw-jail-init: nft -f rules failed (status 1)" >&2\nexit 125\n', { mode: 0o755 });
    }
    const results = await runDoctor({ caDir: tempDir(), nativeBuildDir, procSys: tempDir(), platform: 'linux' });
    expect(results.find((result) => result.name === 'jail smoke test')).toMatchObject({
      status: 'fail',
      detail: 'srt-gw run -- true failed: srt-gw-jail-init: nft -f rules failed (status 1)',
    });
  });
});
