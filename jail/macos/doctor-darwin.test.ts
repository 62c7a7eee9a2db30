// `srt-gw doctor`'s macOS checks, run on any platform with stand-ins for sandbox-exec and log.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CA_CERT_FILE } from '../../ca/paths.js';
import { runDoctor, type CheckResult, type DoctorOptions } from '../doctor.js';

const ROOT = mkdtempSync(join(tmpdir(), 'srt-gw-doctor-darwin-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

function script(name: string, text: string): string {
  const path = join(ROOT, name);
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

const FAKE_SANDBOX_EXEC = script('sandbox-exec', '#!/bin/sh\ntest "$1" = "-p" || exit 64\ncase "$2" in *"(deny default"*) ;; *) exit 65 ;; esac\nshift 2\ntest "$1" = "--" && shift\nexec "$@"\n');
const REFUSING_SANDBOX_EXEC = script('sandbox-exec-refusing', '#!/bin/sh\necho "sandbox-exec: unknown operation" >&2\nexit 65\n');
const FAKE_LOG = script('log', '#!/bin/sh\nexit 0\n');
const PEM = (label: string) => `-----BEGIN CERTIFICATE-----\n${label}\n-----END CERTIFICATE-----\n`;
const SYSTEM_BUNDLE = join(ROOT, 'cert.pem');
writeFileSync(SYSTEM_BUNDLE, PEM('system-1') + PEM('system-2'));

function caDirWith(cert?: string): string {
  const dir = mkdtempSync(join(ROOT, 'ca-'));
  if (cert !== undefined) writeFileSync(join(dir, CA_CERT_FILE), cert);
  return dir;
}

async function darwinChecks(options: Partial<DoctorOptions> = {}): Promise<Map<string, CheckResult>> {
  const results = await runDoctor({
    caDir: caDirWith(),
    nativeBuildDir: join(ROOT, 'no-native-build'),
    platform: 'darwin',
    sandboxExec: FAKE_SANDBOX_EXEC,
    macosSystemCaBundle: SYSTEM_BUNDLE,
    logCommand: FAKE_LOG,
    ...options,
  });
  return new Map(results.map((result) => [result.name, result]));
}

describe('srt-gw doctor on macOS', () => {
  it('runs the darwin checks and none of the Linux ones', async () => {
    const names = [...(await darwinChecks()).keys()];
    expect(names).toEqual(expect.arrayContaining(['node', 'sandbox-exec', 'CA trust (macOS)', 'violation log', 'local CA']));
    for (const linuxOnly of ['bubblewrap', 'user namespaces', 'nftables', 'C compiler', 'native helpers']) expect(names).not.toContain(linuxOnly);
  });

  it('sandbox-exec: ok when it runs srt-gw\'s own profile', async () => {
    expect((await darwinChecks()).get('sandbox-exec')).toMatchObject({ status: 'ok', detail: expect.stringContaining("runs srt-gw's generated Seatbelt profile") });
  });

  it('sandbox-exec: fail when it is missing, with what to check', async () => {
    const result = (await darwinChecks({ sandboxExec: join(ROOT, 'none') })).get('sandbox-exec');
    expect(result).toMatchObject({ status: 'fail', fix: expect.stringContaining('ships with every macOS') });
  });

  it('sandbox-exec: fail when it refuses the generated profile, with its message', async () => {
    const result = (await darwinChecks({ sandboxExec: REFUSING_SANDBOX_EXEC })).get('sandbox-exec');
    expect(result).toMatchObject({ status: 'fail', detail: expect.stringContaining('unknown operation') });
  });

  it('CA trust: no keychain step, whether or not the CA exists yet', async () => {
    const before = (await darwinChecks()).get('CA trust (macOS)')!;
    expect(before.status).toBe('ok');
    expect(before.detail).toContain('no keychain change (security add-trusted-cert) is needed');
    const after = (await darwinChecks({ caDir: caDirWith(PEM('srt-gw-ca')) })).get('CA trust (macOS)')!;
    expect(after.status).toBe('ok');
    expect(after.detail).toContain(`2 system CAs from ${SYSTEM_BUNDLE} + the srt-gw CA`);
    expect(after.detail).toContain('SSL_CERT_FILE');
  });

  it('CA trust: warn when the system bundle is missing, fail when the bundle cannot be built', async () => {
    const missing = (await darwinChecks({ caDir: caDirWith(PEM('srt-gw-ca')), macosSystemCaBundle: join(ROOT, 'none.pem') })).get('CA trust (macOS)')!;
    expect(missing.status).toBe('warn');
    const broken = (await darwinChecks({ caDir: caDirWith('not a certificate') })).get('CA trust (macOS)')!;
    expect(broken.status).toBe('fail');
    expect(broken.fix).toContain('srt-gw ca init');
  });

  it('violation log: a warning, not a failure, when `log` is missing', async () => {
    expect((await darwinChecks()).get('violation log')?.status).toBe('ok');
    expect((await darwinChecks({ logCommand: join(ROOT, 'none') })).get('violation log')?.status).toBe('warn');
  });

  it('the Linux run is unchanged by the darwin options', async () => {
    mkdirSync(join(ROOT, 'proc-sys'), { recursive: true });
    const results = await runDoctor({ caDir: caDirWith(), nativeBuildDir: join(ROOT, 'x'), platform: 'linux', procSys: join(ROOT, 'proc-sys') });
    expect(results.map((result) => result.name)).not.toContain('sandbox-exec');
  });
});
