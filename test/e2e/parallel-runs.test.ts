// Many `srt-gw run`s at once, each in a PID namespace of its own as agent harnesses start them,
// some killed with SIGKILL halfway: no run may take another's private directory away (its DNS
// socket, its trust bundle), a killed run's directory goes with the next run, and nothing of the
// jails is left running. Also: runs of two users keep to their own directories, and a planted
// parent directory is refused with a message. The upstream is an HTTPS echo server in a private
// network namespace; every name resolves through the gateway's DNS.
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startNetnsUpstream, type NetnsUpstream } from '../support/netns-upstream.js';
import { CLI_PATH, JAIL_PATH, ensureBuilt, hostDescendants, hostProcessAlive, startSrtGwRun, srtGwRun, type HostProcess, type SrtGwRunning, type SrtGwRunResult } from '../support/srt-gw-run.js';
import { createTestCa, issueServerCert, type TestCa } from '../support/test-pki.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('bwrap'),
  missingCommand('nft'),
  missingCommand('ip'),
  missingCommand('curl'),
  missingCommand('openssl'),
  missingCommand('unshare'),
  missingCommand('runuser'),
  missingCommand('useradd'),
  missingCommand('pgrep'),
);

const API = 'api.example.test';
const PARALLEL_RUNS = 32;
const OTHER_USER = 'srtgwtest';
/** Generous: 32 runs share two cores with whatever else the machine runs. Never asserted on. */
const RUN_TIMEOUT_MS = 300_000;
/** The lookup's status and the synthetic address the gateway's DNS answered. */
const SYNTHETIC_ADDRESS = /^dns rc=0 198\.(18|19)\.\d+\.\d+$/m;

let root = '';
let caDir = '';
let home = '';
let policy = '';
let upstreamCa: TestCa;
let upstream: NetnsUpstream;
let works = 0;

beforeAll(async () => {
  if (skip !== null) return;
  ensureBuilt();
  root = realpathSync(mkdtempSync('/tmp/srt-gw-parallel-'));
  chmodSync(root, 0o755); // the other user reaches its home and the policy below it
  caDir = join(root, 'ca');
  home = join(root, 'home');
  mkdirSync(home);
  const pkiDir = join(root, 'pki');
  mkdirSync(pkiDir);
  upstreamCa = createTestCa(pkiDir, 'parallel');
  upstream = await startNetnsUpstream({
    prefix: 'srtgw-parallel',
    certificate: (addresses) => issueServerCert(pkiDir, upstreamCa, { names: [API], ipAddresses: addresses }),
  });
  policy = join(root, 'policy.yaml');
  writeFileSync(policy, ['version: 1', 'rules:', '  - id: parallel-api', `    host: ${API}`, '    methods: [GET]', '    paths: ["/parallel/**"]', ''].join('\n'), { mode: 0o644 });
}, 120_000);

afterAll(async () => {
  await upstream?.close();
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

function newWorkDir(owner?: number): string {
  works += 1;
  const dir = join(root, `work-${works}`);
  mkdirSync(dir);
  if (owner !== undefined) chownSync(dir, owner, owner);
  return dir;
}

/** A DNS lookup and an HTTPS request through the gateway, then a moment of sleep; `go` gates the request when given. */
function command(label: string, options: { waitFor?: string; sleep?: string } = {}): string[] {
  const script = [
    // Thirty-odd gateways starting on two cores answer a first query late: wait rather than
    // take glibc's 5 s for a failure. A run whose DNS socket is gone gets no answer at all.
    'export RES_OPTIONS="timeout:20 attempts:3"',
    'echo started',
    ...(options.waitFor ? [`while [ ! -e ${options.waitFor} ]; do sleep 0.1; done`] : []),
    `out=$(getent ahostsv4 ${API}); rc=$?; echo "dns rc=$rc $(echo "$out" | awk 'NR == 1 { print $1 }')"`,
    `curl -sS --max-time 120 https://${API}/parallel/$1; echo`,
    'echo fetched',
    `sleep ${options.sleep ?? '1'}`,
    'echo "done $1"',
  ].join('\n');
  return ['sh', '-c', script, 'sh', label];
}

/** What a run of command(label) prints when everything worked. */
function expectSucceeded(result: SrtGwRunResult, label: string): void {
  const context = `run ${label}: exit ${result.code} signal ${result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
  expect(result.timedOut, context).toBe(false);
  expect(result.code, context).toBe(0);
  const lines = result.stdout.trim().split('\n');
  expect(lines[0], context).toBe('started');
  expect(result.stdout, context).toMatch(SYNTHETIC_ADDRESS);
  const echoed = lines.find((line) => line.startsWith('{'));
  expect(echoed && (JSON.parse(echoed) as Record<string, unknown>), context).toMatchObject({ method: 'GET', path: `/parallel/${label}`, host: API, servername: API });
  expect(lines.at(-1), context).toBe(`done ${label}`);
  expect(result.stderr, context).not.toMatch(/^\s+at /m); // no stack trace
}

function flags(ca = caDir, upstreamCaPath = upstreamCa.certPath): string[] {
  return ['-q', '--ca-dir', ca, '--resolve', `${API}=${upstream.ipv4}`, '--upstream-ca', upstreamCaPath, '--policy', policy];
}

/** The srt-gw run process itself: `running.pid`, or below the wrapper (unshare, runuser) that forked it. */
function srtGwProcess(running: SrtGwRunning): HostProcess {
  const found = hostDescendants(running.pid).find((p) => p.argv.includes(CLI_PATH));
  if (found) return found;
  return { pid: running.pid, ppid: 0, state: 'R', argv: [] };
}

/** Run directories (finished or claiming) in a parent; other files there are not ours to judge. */
function runDirectories(parent: string): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent).filter((name) => name.startsWith('srt-gw-run-') || name.startsWith('srt-gw-new-'));
}

async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Whether a process seen earlier still runs (the same pid running the same program). */
function stillRunning(seen: HostProcess): boolean {
  if (!hostProcessAlive(seen.pid)) return false;
  try {
    return readFileSync(`/proc/${seen.pid}/cmdline`, 'utf8').split('\0')[0] === seen.argv[0];
  } catch {
    return false; // gone meanwhile
  }
}

/** A small deterministic generator, seeded per test run and printed, so a failure can be replayed. */
function randomSource(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

describe.skipIf(skip !== null)('parallel srt-gw runs', () => {
  it(`${PARALLEL_RUNS} runs in PID namespaces of their own, some killed halfway: the others all succeed, and nothing is left`, async () => {
    const runtimeDir = join(root, 'runtime');
    mkdirSync(runtimeDir, { mode: 0o700 });
    const env = { PATH: JAIL_PATH, HOME: home, LANG: 'C.UTF-8', TERM: 'dumb', XDG_RUNTIME_DIR: runtimeDir };
    const parent = join(runtimeDir, 'srt-gw-0');
    // Makes the CA once, so that the runs below share it rather than race to create it.
    expectSucceeded(await srtGwRun({ flags: flags(), command: command('first'), cwd: newWorkDir(), env, timeoutMs: RUN_TIMEOUT_MS }), 'first');

    const seed = Number(process.env.SRT_GW_TEST_SEED ?? Date.now() % 1_000_000);
    process.stderr.write(`parallel-runs: seed ${seed} (SRT_GW_TEST_SEED replays it)\n`);
    const random = randomSource(seed);
    const killAt = Array.from({ length: PARALLEL_RUNS }, () => (random() < 0.25 ? (random() < 0.5 ? 'started' : 'fetched') : null));
    const seen: HostProcess[] = [];
    const runs = killAt.map((kill, i) => {
      // Each run's srt-gw gets another pid in its namespace (after i % 7 short-lived processes):
      // pids name different processes, or none, from one namespace to the next.
      const wrapper = ['unshare', '--pid', '--fork', '--mount-proc', 'sh', '-c', 'i=0; while [ $i -lt "$0" ]; do /bin/true; i=$((i+1)); done; "$@"; exit $?', String(i % 7)];
      // A run to be killed sleeps long: it is certainly still running when the kill comes.
      const running = startSrtGwRun({ wrapper, flags: flags(), command: command(String(i), { sleep: kill ? '600' : '1' }), cwd: newWorkDir(), env, timeoutMs: RUN_TIMEOUT_MS });
      const lifecycle = (async () => {
        await running.waitForStdout(/^started$/m, RUN_TIMEOUT_MS);
        seen.push(...hostDescendants(running.pid));
        if (kill === null) return;
        if (kill === 'fetched') await running.waitForStdout(/^fetched$/m, RUN_TIMEOUT_MS);
        const srtGw = srtGwProcess(running);
        expect(srtGw.argv, 'the srt-gw run process under unshare').toContain(CLI_PATH);
        seen.push(...hostDescendants(running.pid));
        process.kill(srtGw.pid, 'SIGKILL');
      })();
      return { label: String(i), kill, running, lifecycle };
    });
    const results = await Promise.all(runs.map(async (run) => ({ ...run, lifecycleError: await run.lifecycle.then(() => null, (error: unknown) => error), result: await run.running.finished })));

    for (const { label, kill, result, lifecycleError } of results) {
      if (kill !== null) {
        expect(lifecycleError ?? null, `run ${label} (killed once ${kill})`).toBeNull();
        expect(result.code === 0 && result.signal === null, `run ${label} was killed once ${kill}, yet exited 0\nstdout: ${result.stdout}`).toBe(false);
        continue;
      }
      expectSucceeded(result, label);
    }
    const survivors = results.filter((run) => run.kill === null).map((run) => `/parallel/${run.label}`);
    expect(upstream.requests().map((request) => request.path)).toEqual(expect.arrayContaining(survivors));

    // A run killed now, once the others are done, leaves its directory: the next run must take it.
    const killed = startSrtGwRun({ wrapper: ['unshare', '--pid', '--fork', '--mount-proc'], flags: flags(), command: command('killed', { sleep: '600' }), cwd: newWorkDir(), env, timeoutMs: RUN_TIMEOUT_MS });
    await killed.waitForStdout(/^fetched$/m, RUN_TIMEOUT_MS);
    seen.push(...hostDescendants(killed.pid));
    process.kill(srtGwProcess(killed).pid, 'SIGKILL');
    await killed.finished;
    expect(runDirectories(parent).length, 'control: the killed run left its directory').toBeGreaterThan(0);

    expectSucceeded(await srtGwRun({ flags: flags(), command: command('last'), cwd: newWorkDir(), env, timeoutMs: RUN_TIMEOUT_MS }), 'last');
    expect(runDirectories(parent)).toEqual([]);
    const gone = await eventually(() => seen.every((p) => !stillRunning(p)), 60_000);
    const left = seen.filter(stillRunning).map((p) => `${p.pid} ${p.argv.join(' ')}`);
    expect(gone, `still running after every run ended: ${JSON.stringify(left)}`).toBe(true);
    // bwrap's arguments name the run directory: nothing that names one runs.
    expect(pgrep(parent)).toBe('');
  }, 900_000);

  it("two users' runs keep to their own directories: neither shares nor sweeps the other's", async () => {
    const uid = otherUser();
    const base = join(root, 'shared-tmp');
    mkdirSync(base);
    chmodSync(base, 0o1777); // like /tmp
    const rootParent = join(base, 'srt-gw-0');
    const userParent = join(base, `srt-gw-${uid}`);
    const rootEnv = { PATH: JAIL_PATH, HOME: home, LANG: 'C.UTF-8', TERM: 'dumb', TMPDIR: base };
    const userHome = join(root, 'user-home');
    mkdirSync(userHome);
    const userCa = join(userHome, 'upstream-ca.pem'); // a copy the user can read (the PKI dir is root's)
    copyFileSync(upstreamCa.certPath, userCa);
    execFileSync('chown', ['-R', `${uid}:${uid}`, userHome]);
    const userEnv = { ...rootEnv, HOME: userHome };
    const asUser = (label: string, options: { waitFor?: string; sleep?: string } = {}, cwd = newWorkDir(uid)) =>
      startSrtGwRun({ wrapper: ['runuser', '-u', OTHER_USER, '--'], flags: flags(join(userHome, 'ca'), userCa), command: command(label, options), cwd, env: userEnv, timeoutMs: RUN_TIMEOUT_MS });
    const asRoot = (label: string, options: { waitFor?: string; sleep?: string } = {}) =>
      startSrtGwRun({ flags: flags(), command: command(label, options), cwd: newWorkDir(), env: rootEnv, timeoutMs: RUN_TIMEOUT_MS });
    const killOnceFetched = async (running: SrtGwRunning) => {
      await running.waitForStdout(/^fetched$/m, RUN_TIMEOUT_MS);
      process.kill(srtGwProcess(running).pid, 'SIGKILL');
      await running.finished;
    };

    // Root's killed run leaves a directory; the other user's run neither sees nor takes it.
    await killOnceFetched(asRoot('root-killed', { sleep: '600' }));
    const rootLeftover = runDirectories(rootParent);
    expect(rootLeftover).toHaveLength(1);
    const userRun = asUser('user-1');
    await userRun.waitForStdout(/^started$/m, RUN_TIMEOUT_MS);
    const userDirs = runDirectories(userParent);
    expect(userDirs).toHaveLength(1);
    expectSucceeded(await userRun.finished, 'user-1');
    expect(runDirectories(rootParent)).toEqual(rootLeftover);
    for (const [parent, owner] of [[rootParent, 0], [userParent, uid]] as const) {
      const stat = lstatSync(parent);
      expect(stat.isDirectory() && stat.uid === owner && (stat.mode & 0o777) === 0o700, `${parent}: uid ${stat.uid} mode ${(stat.mode & 0o777).toString(8)}`).toBe(true);
    }

    // A live run of the other user's survives root's runs (root could remove anything), and its
    // killed one stays until that user's next run.
    const userCwd = newWorkDir(uid);
    const userLive = asUser('user-live', { waitFor: 'go' }, userCwd);
    await userLive.waitForStdout(/^started$/m, RUN_TIMEOUT_MS);
    expectSucceeded(await asRoot('root-1').finished, 'root-1');
    expect(runDirectories(rootParent), "root's next run took root's killed run's directory").toEqual([]);
    expect(runDirectories(userParent)).toHaveLength(1);
    writeFileSync(join(userCwd, 'go'), '');
    expectSucceeded(await userLive.finished, 'user-live');

    await killOnceFetched(asUser('user-killed', { sleep: '600' }));
    const userLeftover = runDirectories(userParent);
    expect(userLeftover).toHaveLength(1);
    expectSucceeded(await asRoot('root-2').finished, 'root-2');
    expect(runDirectories(userParent)).toEqual(userLeftover);
    expectSucceeded(await asUser('user-2').finished, 'user-2');
    expect(runDirectories(userParent)).toEqual([]);
    expect(runDirectories(rootParent)).toEqual([]);
  }, 600_000);

  it("refuses a parent directory another user planted (a symlink), exit 125 with a message and no stack; the link's target stays untouched", async () => {
    const uid = otherUser();
    const base = join(root, 'planted-tmp');
    mkdirSync(base);
    chmodSync(base, 0o1777);
    const trap = join(base, 'trap');
    mkdirSync(trap, { mode: 0o777 });
    chownSync(trap, uid, uid);
    symlinkSync(trap, join(base, 'srt-gw-0'));
    lchownSync(join(base, 'srt-gw-0'), uid, uid);
    const result = await srtGwRun({ flags: flags(), command: command('planted'), cwd: newWorkDir(), env: { PATH: JAIL_PATH, HOME: home, LANG: 'C.UTF-8', TMPDIR: base }, timeoutMs: RUN_TIMEOUT_MS });
    expect(result.code, result.stderr).toBe(125);
    expect(result.stderr).toMatch(/^srt-gw: .*srt-gw-0 is a symbolic link; .*remove it/m);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    expect(result.stdout).toBe('');
    expect(readdirSync(trap)).toEqual([]);
    expect(statSync(trap).uid).toBe(uid);
  }, 120_000);
});

/** The uid of the second user, made if missing (these tests run as root). */
function otherUser(): number {
  try {
    return Number(execFileSync('id', ['-u', OTHER_USER], { encoding: 'utf8' }).trim());
  } catch {
    execFileSync('useradd', ['-m', OTHER_USER]);
    return Number(execFileSync('id', ['-u', OTHER_USER], { encoding: 'utf8' }).trim());
  }
}

function pgrep(pattern: string): string {
  try {
    return execFileSync('pgrep', ['-af', pattern], { encoding: 'utf8' }).trim();
  } catch {
    return ''; // exit 1: no process matched
  }
}
