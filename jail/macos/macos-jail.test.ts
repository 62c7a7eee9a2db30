// MacosJail without a Mac: the sandbox-exec command line it builds, its availability checks, and
// its process handling (exit status, signals, stdio, session) with a stand-in sandbox-exec that
// runs the command unconfined. What Seatbelt itself does is test/e2e/jail-macos.test.ts's job.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { homedir } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { parsePolicy } from '../../policies/loader.js';
import { filesystemAccess, resolveFilesystemRules } from '../filesystem-rules.js';
import type { JailSpawnOptions } from '../jail.js';
import { CA_BUNDLE_VARIABLES, jailEnvironment } from '../jail-environment.js';
import { RunDirectory } from '../run-directory.js';
import { runInJail } from '../run-in-jail.js';
import { MacosJail, sandboxExecCommand, type MacosJailedProcess } from './macos-jail.js';
import { errorOf } from '../../test/support/srt-gw-error.js';

const ROOT = realpathSync(mkdtempSync('/var/tmp/srt-gw-macos-jail-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));
const HOME = join(ROOT, 'home');
const PROJECT = join(HOME, 'project');
mkdirSync(join(PROJECT, '.git'), { recursive: true });
const runDirectory = RunDirectory.create(ROOT);
afterAll(() => runDirectory.dispose());
const caBundle = runDirectory.writeJailFile('ca-bundle.pem', '-----BEGIN CERTIFICATE-----\n');
const filesystem = resolveFilesystemRules(undefined, { home: HOME, cwd: PROJECT, alwaysHidden: [join(HOME, '.config/srt-gw/ca')], alwaysReadOnly: [], platform: 'darwin' });

function spawnOptions(command: string, args: string[], overrides: Partial<JailSpawnOptions> = {}): JailSpawnOptions {
  return {
    command,
    args,
    cwd: PROJECT,
    env: jailEnvironment({ PATH: process.env.PATH ?? '/usr/bin:/bin', HTTPS_PROXY: 'http://corp.proxy:3128' }, ''),
    filesystem,
    caBundle,
    runDirectory,
    gateway: { acceptRedirected: () => undefined, dnsSocket: '/unused', proxyAddress: { host: '127.0.0.1', port: 41234 } },
    ...overrides,
  };
}

function script(name: string, text: string): string {
  const path = join(ROOT, name);
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

/** Runs `-p PROFILE -- command args` unconfined: what sandbox-exec does, minus Seatbelt. */
const FAKE_SANDBOX_EXEC = script('sandbox-exec', '#!/bin/sh\ntest "$1" = "-p" || { echo "sandbox-exec: usage" >&2; exit 64; }\nshift 2\ntest "$1" = "--" && shift\nexec "$@"\n');
/** FAKE_SANDBOX_EXEC that first writes the profile it was given to RECORDED_PROFILE. */
const RECORDING_SANDBOX_EXEC = script('sandbox-exec-recording', '#!/bin/sh\ntest "$1" = "-p" || exit 64\nprintf "%s" "$2" > "$0.profile"\nshift 2\ntest "$1" = "--" && shift\nexec "$@"\n');
const RECORDED_PROFILE = `${RECORDING_SANDBOX_EXEC}.profile`;
const LOCAL_BINDING_RULE = '(allow network-bind (local ip "localhost:*"))';
/** Refuses every profile, as sandbox-exec does one it cannot compile. */
const REFUSING_SANDBOX_EXEC = script('sandbox-exec-refusing', '#!/bin/sh\necho "sandbox-exec: unbound variable: hots" >&2\nexit 65\n');

/** The fixture's /var/tmp path as macOS spells it (already so on a Mac, where the fixture root is realpath'd). */
function onMacos(path: string): string {
  return path.startsWith('/private/') ? path : `/private${path}`;
}


describe('sandboxExecCommand', () => {
  const tmpDir = join(runDirectory.path, 'tmp');
  const command = sandboxExecCommand(spawnOptions('curl', ['--', '-p', 'x']), { sandboxExec: '/usr/bin/sandbox-exec', tmpDir, logTag: 'srt-gw-test' });

  it('runs sandbox-exec with the profile, then "--", then the command and its arguments untouched', () => {
    expect(command.file).toBe('/usr/bin/sandbox-exec');
    expect(command.args).toEqual(['-p', command.profile, '--', 'curl', '--', '-p', 'x']);
    expect(command.profile).toContain('(allow network-outbound (remote ip "localhost:41234"))');
    expect(command.profile).toContain('(deny default (with message "srt-gw-test"))');
  });

  it('replaces the caller\'s proxy with the gateway and names the bundle at its host path', () => {
    expect(command.env.HTTPS_PROXY).toBe('http://127.0.0.1:41234');
    expect(command.env.https_proxy).toBe('http://127.0.0.1:41234');
    for (const name of CA_BUNDLE_VARIABLES) expect(command.env[name], name).toBe(caBundle);
    expect(command.env.SRT_GW_JAIL).toBe('1');
    expect(command.env.PATH).toBeDefined();
  });

  it('gives the command its own TMPDIR, writable in the profile', () => {
    expect(command.env.TMPDIR).toBe(`${onMacos(tmpDir)}/`);
    expect(command.profile).toContain(`(allow file-read* file-write* (subpath "${onMacos(tmpDir)}"))`);
  });

  it('lets the command listen on loopback only when asked', () => {
    expect(command.profile).not.toContain('network-bind');
    const binding = sandboxExecCommand(spawnOptions('true', [], { allowLocalBinding: true }), { sandboxExec: '/x', tmpDir, logTag: 'srt-gw-test' });
    expect(binding.profile).toContain(LOCAL_BINDING_RULE);
  });

  it('hides the macOS credential stores (the darwin filesystem defaults)', () => {
    expect(filesystemAccess(filesystem, join(HOME, 'Library/Keychains/login.keychain-db')).access).toBe('hidden');
    expect(command.profile).toContain(`(deny file-read* file-write* (subpath "${onMacos(join(HOME, 'Library/Keychains'))}") (with message "srt-gw-test"))`);
  });

  it.each([['0.0.0.0'], ['192.168.1.5'], ['gateway.internal']])('refuses a gateway proxy listening on %s (the profile can only allow loopback)', (host) => {
    const options = spawnOptions('true', [], { gateway: { acceptRedirected: () => undefined, dnsSocket: '', proxyAddress: { host, port: 8080 } } });
    expect(errorOf(() => sandboxExecCommand(options, { sandboxExec: '/x', tmpDir, logTag: 'srt-gw-test' })).code).toBe(ErrorCodes.CONFIG_INVALID);
  });
});

describe('MacosJail.checkAvailable', () => {
  it('is constructible anywhere and says where it runs', () => {
    const jail = new MacosJail({ platform: 'linux' });
    expect(jail.platform).toBe('darwin');
    const error = errorOf(() => jail.checkAvailable());
    expect(error.code).toBe(ErrorCodes.JAIL_UNAVAILABLE);
    expect(error.message).toContain('only on macOS, and this is linux');
  });

  it('on macOS, a missing sandbox-exec is JAIL_UNAVAILABLE with what to check', () => {
    const error = errorOf(() => new MacosJail({ platform: 'darwin', sandboxExec: join(ROOT, 'no-such-sandbox-exec') }).checkAvailable());
    expect(error.code).toBe(ErrorCodes.JAIL_UNAVAILABLE);
    expect(error.message).toMatch(/missing or not executable.*srt-gw doctor/);
  });

  it('on macOS with sandbox-exec present, it is available', () => {
    expect(() => new MacosJail({ platform: 'darwin', sandboxExec: FAKE_SANDBOX_EXEC }).checkAvailable()).not.toThrow();
  });

  it('refuses writeMode overlay (reviewed writes) with what to use instead, before anything runs', () => {
    const jail = new MacosJail({ platform: 'darwin', sandboxExec: FAKE_SANDBOX_EXEC, reportViolations: false });
    const overlay = { roots: [PROJECT], layersDir: join(ROOT, 'layers') };
    for (const attempt of [() => jail.prepare({ ...spawnOptions('true', []), overlay }), () => jail.spawn({ ...spawnOptions('true', []), overlay })]) {
      const error = errorOf(attempt);
      expect(error.code).toBe(ErrorCodes.JAIL_UNAVAILABLE);
      expect(error.message).toMatch(/writeMode overlay.*Linux jail.*use writeMode direct on macOS/);
    }
  });
});

describe('MacosJail.spawn (a stand-in sandbox-exec)', () => {
  const jail = new MacosJail({ platform: 'darwin', sandboxExec: FAKE_SANDBOX_EXEC, reportViolations: false });

  async function run(args: string[], stdio: JailSpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe'], onStart?: (jailed: MacosJailedProcess) => void) {
    const jailed = jail.spawn(spawnOptions('/bin/sh', ['-c', ...args], { stdio }));
    let stdout = '';
    jailed.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    onStart?.(jailed);
    const code = await jailed.exited;
    return { code, stdout, jailed };
  }

  it('passes the command\'s exit status through', async () => {
    expect((await run(['exit 7'])).code).toBe(7);
  });

  it('reports death by a signal as 128+N', async () => {
    expect((await run(['kill -TERM $$'])).code).toBe(128 + 15);
  });

  it('starts the command in its cwd with the proxy, bundle and TMPDIR variables', async () => {
    const { stdout } = await run(['printf "%s|%s|%s|%s" "$PWD" "$HTTPS_PROXY" "$SSL_CERT_FILE" "$TMPDIR"']);
    const [cwd, proxy, bundle, tmp] = stdout.split('|');
    expect(cwd).toBe(PROJECT);
    expect(proxy).toBe('http://127.0.0.1:41234');
    expect(bundle).toBe(caBundle);
    expect(tmp).toBe(`${onMacos(join(runDirectory.path, 'tmp'))}/`);
    expect(statSync(join(runDirectory.path, 'tmp')).mode & 0o777).toBe(0o700);
    expect(jail.caBundlePathInJail).toBe(caBundle);
  });

  it.runIf(existsSync('/proc/self/stat'))('runs the command in a session of its own (no controlling terminal to push keystrokes into)', async () => {
    const { stdout } = await run(['echo $$; cut -d" " -f6 /proc/$$/stat']);
    const [pid, session] = stdout.trim().split('\n');
    expect(session).toBe(pid);
  });

  it('signal() reaches the command and its children', async () => {
    const { code, stdout } = await run(['trap "echo got-int; exit 3" INT; echo ready; while :; do sleep 0.05; done'], ['ignore', 'pipe', 'pipe'], (jailed) => {
      jailed.child.stdout!.on('data', (chunk: string) => {
        if (chunk.includes('ready')) jailed.signal('SIGINT');
      });
    });
    expect(code).toBe(3);
    expect(stdout).toContain('got-int');
  });

  it('signal() after the command exited is a no-op', async () => {
    const { jailed } = await run(['exit 0']);
    expect(() => jailed.signal('SIGTERM')).not.toThrow();
    expect(await jailed.violations()).toEqual({ denials: [], omitted: 0 });
  });

  it('violations() returns what the log reported under this run\'s tag, and the log reader stops with the command', async () => {
    // Stands in for `log stream`: reads the tag from the predicate and reports one refused connect under it.
    const fakeLog = script(
      'log',
      String.raw`#!/bin/sh
tag=$(printf '%s' "$5" | sed -n 's/.*ENDSWITH "\(.*\)"/\1/p')
echo "$$" > "$0.pid"
printf '%s\n' "{\"eventMessage\":\"Sandbox: nc(42) deny(1) network-outbound 203.0.113.9:443\\n$tag\"}"
exec sleep 30
`,
    );
    const reporting = new MacosJail({ platform: 'darwin', sandboxExec: FAKE_SANDBOX_EXEC, logCommand: fakeLog });
    const jailed = reporting.spawn(spawnOptions('/bin/sh', ['-c', 'sleep 0.3'], { stdio: 'ignore' }));
    expect(await jailed.exited).toBe(0);
    const { denials } = await jailed.violations();
    expect(denials).toEqual([expect.objectContaining({ kind: 'connection', host: '203.0.113.9', port: 443, count: 1, example: 'network-outbound by nc' })]);
    const logPid = Number(readFileSync(`${fakeLog}.pid`, 'utf8'));
    expect(() => process.kill(logPid, 0)).toThrow();
  });

  it.each([
    ['asks for it', true, true],
    ['says false', false, false],
    ['leaves it out', undefined, false],
  ] as const)('sandbox-exec gets the local-binding rules only when the spawn %s', async (_what, allowLocalBinding, expected) => {
    rmSync(RECORDED_PROFILE, { force: true });
    const recording = new MacosJail({ platform: 'darwin', sandboxExec: RECORDING_SANDBOX_EXEC, reportViolations: false });
    expect(await recording.spawn(spawnOptions('true', [], { stdio: 'ignore', allowLocalBinding })).exited).toBe(0);
    const profile = readFileSync(RECORDED_PROFILE, 'utf8');
    expect(profile).toContain('(deny default');
    expect(profile.includes(LOCAL_BINDING_RULE)).toBe(expected);
    expect(profile.includes('(allow network-inbound (local ip "localhost:*"))')).toBe(expected);
  });

  it('a profile sandbox-exec refuses stops the run before the command starts, with sandbox-exec\'s message', () => {
    const marker = join(ROOT, 'must-not-exist');
    const refusing = new MacosJail({ platform: 'darwin', sandboxExec: REFUSING_SANDBOX_EXEC, reportViolations: false });
    const error = errorOf(() => refusing.spawn(spawnOptions('/bin/sh', ['-c', `touch ${marker}`])));
    expect(error.code).toBe(ErrorCodes.JAIL_UNAVAILABLE);
    expect(error.message).toContain('unbound variable: hots');
    expect(existsSync(marker)).toBe(false);
  });

  it('a sandbox-exec that cannot start rejects exited with JAIL_UNAVAILABLE', async () => {
    // A directory passes the X_OK check but cannot be executed.
    const broken = new MacosJail({ platform: 'darwin', sandboxExec: ROOT, reportViolations: false, validateProfile: false });
    const jailed = broken.spawn(spawnOptions('true', []));
    const error = await jailed.exited.then(
      () => null,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(SrtGwError);
    expect((error as SrtGwError).code).toBe(ErrorCodes.JAIL_UNAVAILABLE);
  });
});

describe('runInJail with the macOS jail (a stand-in sandbox-exec)', () => {
  const caDir = join(ROOT, 'run-ca');

  async function profileOfRun(policyText: string): Promise<string> {
    rmSync(RECORDED_PROFILE, { force: true });
    const result = await runInJail({
      command: 'true',
      policy: parsePolicy(policyText, join(PROJECT, 'policy.yaml')),
      cwd: PROJECT,
      caDir,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: 'ignore',
      jail: new MacosJail({ platform: 'darwin', sandboxExec: RECORDING_SANDBOX_EXEC, reportViolations: false }),
    });
    expect(result.exitCode).toBe(0);
    return readFileSync(RECORDED_PROFILE, 'utf8');
  }

  it("passes the policy's jail.allowLocalBinding to the profile", async () => {
    expect(await profileOfRun('version: 1\nrules: []\njail:\n  allowLocalBinding: true\n')).toContain(LOCAL_BINDING_RULE);
  });

  it("hides macOS's credential stores even when srt-gw itself runs elsewhere (the jail's platform decides)", async () => {
    const profile = await profileOfRun('version: 1\nrules: []\n');
    expect(profile).toContain(JSON.stringify(join(homedir(), 'Library/Keychains')));
  });

  it.each([
    ['no jail section', 'version: 1\nrules: []\n'],
    ['allowLocalBinding: false', 'version: 1\nrules: []\njail: { allowLocalBinding: false }\n'],
  ])('refuses listening with %s', async (_what, policyText) => {
    const profile = await profileOfRun(policyText);
    expect(profile).toContain('(deny default');
    expect(profile).not.toContain('network-bind');
  });
});
