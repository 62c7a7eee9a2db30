// `srt-gw doctor`: checks what `srt-gw run` needs on this machine and says exactly what to
// install or change. Each check is a row in a table; a failed check never stops the others.
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { CA_CERT_FILE, CA_KEY_FILE } from '../ca/paths.js';
import { buildTrustBundle } from '../ca/trust-bundle.js';
import { resolveFilesystemRules } from './filesystem-rules.js';
import { CA_BUNDLE_VARIABLES } from './jail-environment.js';
import { findNativeHelpers, NATIVE_BUILD_HINT } from './linux/native-helpers.js';
import { MACOS_SYSTEM_CA_BUNDLE, SANDBOX_EXEC } from './macos/macos-jail.js';
import { seatbeltProfile } from './macos/seatbelt-profile.js';

const run = promisify(execFile);

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** What was found, or what is wrong. */
  detail: string;
  /** What to do about it (for warn and fail). */
  fix?: string;
}

export interface DoctorOptions {
  caDir: string;
  /** Where the native helpers are built (native/build in the package). */
  nativeBuildDir: string;
  platform?: NodeJS.Platform;
  /** Do not start a real jail (unit tests of the other checks). */
  skipJailSmokeTest?: boolean;
  /** Root of /proc/sys, replaceable for tests of the sysctl logic. */
  procSys?: string;
  /** macOS: sandbox-exec, replaceable for tests of the darwin checks on other platforms. */
  sandboxExec?: string;
  /** macOS: the system CA bundle the trust bundle starts with. */
  macosSystemCaBundle?: string;
  /** macOS: the `log` program the jail reads Seatbelt's denials with. */
  logCommand?: string;
}

interface Check {
  name: string;
  platforms: NodeJS.Platform[];
  run(options: Required<DoctorOptions>): Promise<Omit<CheckResult, 'name'>>;
}

async function commandOutput(command: string, args: string[]): Promise<{ ok: true; stdout: string } | { ok: false; error: string }> {
  try {
    const { stdout, stderr } = await run(command, args, { timeout: 10_000 });
    return { ok: true, stdout: (stdout || stderr).trim() };
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: string };
    return { ok: false, error: failure.code === 'ENOENT' ? 'not installed' : (failure.stderr || failure.message).trim().split('\n')[0] ?? 'failed' };
  }
}

function readSysctl(procSys: string, name: string): string | null {
  try {
    return readFileSync(join(procSys, name), 'utf8').trim();
  } catch {
    return null;
  }
}

const CHECKS: Check[] = [
  {
    name: 'node',
    platforms: ['linux', 'darwin'],
    async run() {
      const major = Number(process.versions.node.split('.')[0]);
      return major >= 20
        ? { status: 'ok', detail: `Node.js ${process.versions.node}` }
        : { status: 'fail', detail: `Node.js ${process.versions.node}`, fix: 'install Node.js 20 or newer' };
    },
  },
  {
    name: 'bubblewrap',
    platforms: ['linux'],
    async run() {
      const version = await commandOutput('bwrap', ['--version']);
      if (!version.ok) return { status: 'fail', detail: `bwrap: ${version.error}`, fix: 'apt-get install bubblewrap (Fedora: dnf install bubblewrap)' };
      return { status: 'ok', detail: version.stdout };
    },
  },
  {
    name: 'user namespaces',
    platforms: ['linux'],
    async run(options) {
      const maxNamespaces = readSysctl(options.procSys, 'user/max_user_namespaces');
      if (maxNamespaces === '0') {
        return { status: 'fail', detail: 'user.max_user_namespaces is 0', fix: 'sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d/)' };
      }
      if (readSysctl(options.procSys, 'kernel/unprivileged_userns_clone') === '0') {
        return { status: 'fail', detail: 'kernel.unprivileged_userns_clone is 0', fix: 'sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d/)' };
      }
      if (readSysctl(options.procSys, 'kernel/apparmor_restrict_unprivileged_userns') === '1') {
        return {
          status: 'warn',
          detail: 'AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+)',
          fix: 'allow bwrap with an AppArmor profile (see README), or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0',
        };
      }
      const probe = await commandOutput('bwrap', ['--unshare-net', '--ro-bind', '/', '/', '--dev', '/dev', 'true']);
      if (!probe.ok) return { status: 'fail', detail: `bwrap cannot create a network namespace: ${probe.error}`, fix: 'enable unprivileged user namespaces for bwrap (see the sysctls above)' };
      return { status: 'ok', detail: 'bwrap can create user and network namespaces' };
    },
  },
  {
    name: 'nftables',
    platforms: ['linux'],
    async run() {
      const version = await commandOutput('nft', ['--version']);
      if (!version.ok) return { status: 'fail', detail: `nft: ${version.error}`, fix: 'apt-get install nftables' };
      const probe = await commandOutput('unshare', ['-Urn', 'nft', 'list', 'tables']);
      if (!probe.ok) return { status: 'fail', detail: `nft does not work inside a user namespace: ${probe.error}`, fix: 'check that the kernel has nf_tables and user namespaces enabled' };
      return { status: 'ok', detail: version.stdout };
    },
  },
  {
    name: 'C compiler',
    platforms: ['linux'],
    async run() {
      const version = await commandOutput('cc', ['--version']);
      if (!version.ok) return { status: 'fail', detail: `cc: ${version.error}`, fix: 'apt-get install gcc libc6-dev (needed once, to build the native helpers)' };
      return { status: 'ok', detail: version.stdout.split('\n')[0] ?? 'cc' };
    },
  },
  {
    name: 'native helpers',
    platforms: ['linux'],
    async run(options) {
      try {
        const helpers = findNativeHelpers(options.nativeBuildDir);
        return { status: 'ok', detail: `${Object.values(helpers).length} helpers in ${options.nativeBuildDir}` };
      } catch (error) {
        return { status: 'fail', detail: (error as Error).message.split(';')[0] ?? 'not built', fix: NATIVE_BUILD_HINT };
      }
    },
  },
  {
    // Which mechanism keeps the command off host unix sockets (native/unix-socket-supervisor.c):
    // Landlock has no right for unix socket paths up to ABI 7, so a seccomp supervisor does it.
    name: 'host unix sockets',
    platforms: ['linux'],
    async run(options) {
      let init: string;
      try {
        init = findNativeHelpers(options.nativeBuildDir).init;
      } catch {
        return { status: 'fail', detail: 'the jail init is not built', fix: NATIVE_BUILD_HINT };
      }
      const probe = await run(init, ['--probe-unix-sockets'], { timeout: 10_000 }).then(
        ({ stdout }) => ({ ok: true, stdout }),
        (error: { stdout?: string; message: string }) => ({ ok: false, stdout: error.stdout ?? error.message }),
      );
      const landlock = /^landlock-abi (\S+)$/m.exec(probe.stdout)?.[1] ?? 'unknown';
      const verdict = /^unix-sockets (.*)$/m.exec(probe.stdout)?.[1] ?? probe.stdout.trim().split('\n')[0] ?? 'no answer';
      if (!probe.ok || verdict !== 'seccomp-user-notification') {
        return { status: 'fail', detail: verdict, fix: 'srt-gw run needs Linux 5.6 or later (seccomp user notification, pidfd_getfd, openat2) and libseccomp 2.5' };
      }
      return {
        status: 'ok',
        detail: `refused unless created in the jail or in jail.allowUnixSockets, by a seccomp user-notification supervisor (Landlock ABI ${landlock} has no unix socket path right)`,
      };
    },
  },
  {
    // The static checks above cannot see everything (an AppArmor profile, a seccomp policy of a
    // container, a kernel without nf_tables NAT): start a real jail once and report how it ends.
    name: 'jail smoke test',
    platforms: ['linux'],
    async run(options) {
      if (options.skipJailSmokeTest) return { status: 'ok', detail: 'skipped' };
      try {
        findNativeHelpers(options.nativeBuildDir);
      } catch {
        return { status: 'fail', detail: 'not run: the native helpers are missing (see above)', fix: NATIVE_BUILD_HINT };
      }
      const { runInJail } = await import('./run-in-jail.js');
      const { LinuxJail } = await import('./linux/linux-jail.js');
      const scratch = mkdtempSync(join(tmpdir(), 'srt-gw-doctor-'));
      let stderr = '';
      const captured: { stderr: NodeJS.ReadableStream | null } = { stderr: null };
      const started = performance.now();
      try {
        const result = await runInJail({
          command: 'true',
          policy: { version: 1, rules: [] },
          cwd: scratch,
          caDir: join(scratch, 'ca'),
          stdio: ['ignore', 'ignore', 'pipe'],
          jail: new LinuxJail(options.nativeBuildDir),
          onStart: ({ process: jailed }) => {
            captured.stderr = jailed.child.stderr;
            captured.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          },
        });
        // A jail that failed while the gateway was starting wrote its message before onStart;
        // it is still buffered in the pipe and arrives once read to the end.
        if (captured.stderr) await finished(captured.stderr).catch(() => undefined);
        const ms = Math.round(performance.now() - started);
        if (result.exitCode === 0) return { status: 'ok', detail: `srt-gw run -- true works (${ms} ms)` };
        const why = stderr.trim().split('\n').slice(-2).join(' / ') || `exit status ${result.exitCode}`;
        return { status: 'fail', detail: `srt-gw run -- true failed: ${why}`, fix: 'fix what the checks above report; the message names the step that failed' };
      } catch (error) {
        return { status: 'fail', detail: `srt-gw run -- true failed: ${(error as Error).message}`, fix: 'fix what the checks above report' };
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'local CA',
    platforms: ['linux', 'darwin'],
    async run(options) {
      const certPath = join(options.caDir, CA_CERT_FILE);
      const keyPath = join(options.caDir, CA_KEY_FILE);
      if (!existsSync(certPath) || !existsSync(keyPath)) {
        return { status: 'warn', detail: `no CA in ${options.caDir} yet`, fix: 'it is created on first use; or run: srt-gw ca init' };
      }
      const mode = statSync(keyPath).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        return { status: 'fail', detail: `${keyPath} is readable by others (mode 0${mode.toString(8)})`, fix: `chmod 600 ${keyPath}` };
      }
      return { status: 'ok', detail: certPath };
    },
  },
  // macOS: the Seatbelt jail (jail/macos). Linux checks above are untouched by these.
  {
    name: 'sandbox-exec',
    platforms: ['darwin'],
    async run(options) {
      try {
        accessSync(options.sandboxExec, constants.X_OK);
      } catch {
        return { status: 'fail', detail: `${options.sandboxExec} is missing`, fix: 'sandbox-exec ships with every macOS release; check that this is a standard macOS install (it is not available in macOS containers)' };
      }
      // Compile srt-gw's own profile, not a toy one: what fails here would fail every srt-gw run.
      let profile: string;
      try {
        const rules = resolveFilesystemRules(undefined, { home: homedir(), cwd: tmpdir(), alwaysHidden: [options.caDir], alwaysReadOnly: [], platform: 'darwin' });
        profile = seatbeltProfile(rules, { proxyPort: 9, logTag: 'srt-gw-doctor' });
      } catch (error) {
        return { status: 'fail', detail: `srt-gw cannot build its Seatbelt profile here: ${(error as Error).message}`, fix: 'the message says which path is the problem' };
      }
      const probe = await commandOutput(options.sandboxExec, ['-p', profile, '--', '/usr/bin/true']);
      if (!probe.ok) return { status: 'fail', detail: `sandbox-exec refused srt-gw's profile: ${probe.error}`, fix: 'report it with your macOS version (sw_vers); srt-gw run cannot work until it is fixed' };
      return { status: 'ok', detail: `${options.sandboxExec} runs srt-gw's generated Seatbelt profile` };
    },
  },
  {
    name: 'CA trust (macOS)',
    platforms: ['darwin'],
    async run(options) {
      // Nothing goes into the keychain: jailed clients get the bundle through CA variables. Adding
      // the CA with `security add-trusted-cert` would make every program on the Mac trust it.
      const how = `jailed clients trust the srt-gw CA through ${CA_BUNDLE_VARIABLES.slice(0, 4).join(', ')} and ${CA_BUNDLE_VARIABLES.length - 4} more variables; no keychain change (security add-trusted-cert) is needed or wanted`;
      const certPath = join(options.caDir, CA_CERT_FILE);
      if (!existsSync(certPath)) return { status: 'ok', detail: `no CA yet (created on first use); ${how}` };
      let bundle: string;
      try {
        bundle = buildTrustBundle(readFileSync(certPath, 'utf8'), options.macosSystemCaBundle);
      } catch (error) {
        return { status: 'fail', detail: `the trust bundle cannot be built from ${certPath}: ${(error as Error).message}`, fix: `move ${options.caDir} aside and let srt-gw create a new CA (or run: srt-gw ca init)` };
      }
      const certificates = bundle.split('-----BEGIN CERTIFICATE-----').length - 1;
      if (certificates < 2) {
        return {
          status: 'warn',
          detail: `the trust bundle holds only the srt-gw CA: ${options.macosSystemCaBundle} is missing; ${how}`,
          fix: 'fine while every connection goes through the gateway; a tcp passthrough rule needs the system CAs in the bundle',
        };
      }
      return { status: 'ok', detail: `trust bundle: ${certificates - 1} system CAs from ${options.macosSystemCaBundle} + the srt-gw CA; ${how}. Programs that verify TLS only with the keychain (Go, Swift) fail TLS in the jail: docs/macos.md` };
    },
  },
  {
    name: 'violation log',
    platforms: ['darwin'],
    async run(options) {
      try {
        accessSync(options.logCommand, constants.X_OK);
      } catch {
        return { status: 'warn', detail: `${options.logCommand} is missing`, fix: 'srt-gw run still works; the denial summary then lists only what the gateway refused, not what Seatbelt refused' };
      }
      return { status: 'ok', detail: `Seatbelt's denials are read with ${options.logCommand} stream (unverified on real macOS: docs/macos.md)` };
    },
  },
];

export async function runDoctor(options: DoctorOptions): Promise<CheckResult[]> {
  const resolved: Required<DoctorOptions> = {
    platform: process.platform,
    procSys: '/proc/sys',
    skipJailSmokeTest: false,
    sandboxExec: SANDBOX_EXEC,
    macosSystemCaBundle: MACOS_SYSTEM_CA_BUNDLE,
    logCommand: '/usr/bin/log',
    ...options,
  };
  const applicable = CHECKS.filter((check) => check.platforms.includes(resolved.platform));
  return Promise.all(applicable.map(async (check) => ({ name: check.name, ...(await check.run(resolved)) })));
}

export function formatDoctorReport(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((result) => result.name.length));
  const lines = results.map((result) => {
    const mark = result.status === 'ok' ? 'ok  ' : result.status === 'warn' ? 'warn' : 'FAIL';
    const fix = result.fix ? `\n       fix: ${result.fix}` : '';
    return `${mark} ${result.name.padEnd(width)}  ${result.detail}${fix}`;
  });
  const failed = results.filter((result) => result.status === 'fail').length;
  lines.push(failed === 0 ? 'srt-gw run can work on this machine.' : `${failed} problem(s) stop srt-gw run here; fix them as shown.`);
  return lines.join('\n') + '\n';
}
