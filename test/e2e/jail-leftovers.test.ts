// `srt-gw run` leaves the host's working tree and home as it found them: the empty mount points
// bubblewrap makes for protections of missing paths (.git, .mcp.json, .vscode, ~/.config/...) are
// removed after the run, and after a run killed with SIGKILL by the next run. Hidden credential
// files read as empty, so the tools that read them (wget, curl, git, pip, npm) carry on, and a
// hidden path that does not exist stays absent. Real bubblewrap, as root and as an ordinary user.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultParent } from '../../jail/run-directory.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { JAIL_PATH, ensureBuilt, hostDescendants, hostProcessAlive, srtGwRun, startSrtGwRun, type SrtGwRunOptions, type SrtGwRunResult } from '../support/srt-gw-run.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('bwrap'),
  missingCommand('nft'),
  missingCommand('setpriv'),
  missingCommand('wget'),
  missingCommand('curl'),
  missingCommand('git'),
  missingCommand('pip'),
  missingCommand('npm'),
);

const NOBODY = 65534;
const AS_NOBODY = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--inh-caps=-all'];
const SECRET = 'srt-gw-leftovers-secret-material';
/** The names a jail protects in every writable directory, so the ones it blocks when they are missing. */
const PROTECTED_IN_CWD = ['.git', '.mcp.json', '.vscode', '.idea', '.claude', '.cursor'];
/** Credential files the tools below read from the home. */
const CREDENTIAL_FILES = ['.netrc', '.git-credentials', '.npmrc', '.pypirc'];

let root = '';
let made = 0;

type Who = 'root' | 'nobody';

/** A fresh directory under the test root, owned by `who`. */
function fresh(who: Who, name: string, files: Record<string, string> = {}): string {
  made += 1;
  const dir = join(root, `${made}-${who}-${name}`);
  mkdirSync(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  if (who === 'nobody') execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
  return dir;
}

/** `ls -A` as a sorted list, recursing into directories. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

interface Setup {
  who: Who;
  home: string;
  /** srt-gw's own state and CA: outside the home, so that the home holds only what the test put there. */
  state: string;
  policy: string;
}

function setup(who: Who, homeFiles: Record<string, string> = {}): Setup {
  const state = fresh(who, 'state');
  const policy = join(state, 'policy.yaml');
  writeFileSync(policy, 'version: 1\nrules: []\n');
  if (who === 'nobody') execFileSync('chown', [`${NOBODY}:${NOBODY}`, policy]);
  return { who, home: fresh(who, 'home', homeFiles), state, policy };
}

function runOptions(s: Setup, cwd: string, script: string): SrtGwRunOptions {
  return {
    flags: ['-q', '--policy', s.policy, '--ca-dir', join(s.state, 'ca')],
    command: ['sh', '-c', script],
    cwd,
    env: {
      PATH: JAIL_PATH,
      HOME: s.home,
      XDG_STATE_HOME: join(s.state, 'xdg-state'),
      LANG: 'C.UTF-8',
      TERM: 'dumb',
      // npm writes its cache and logs below the home, which is read-only in the jail.
      npm_config_cache: '/tmp/npm-cache',
      npm_config_update_notifier: 'false',
      GIT_TERMINAL_PROMPT: '0',
    },
    timeoutMs: 60_000,
    ...(s.who === 'nobody' ? { wrapper: AS_NOBODY } : {}),
  };
}

async function run(s: Setup, cwd: string, script: string): Promise<SrtGwRunResult> {
  const result = await srtGwRun(runOptions(s, cwd, script));
  expect(result.timedOut, `srt-gw run timed out\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(false);
  return result;
}

async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

beforeAll(() => {
  if (skip !== null) return;
  ensureBuilt();
  // Not under /tmp: the jail's /tmp is private, so the directories would not be there at all.
  root = realpathSync(mkdtempSync('/var/tmp/srt-gw-leftovers-'));
  chmodSync(root, 0o755);
}, 300_000);

afterAll(() => {
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip !== null).each(['root', 'nobody'] as const)('srt-gw run leaves nothing behind, as %s', (who) => {
  it('a run in a directory without .git leaves the directory and the home as they were; inside, the home shows no stubs', async () => {
    const s = setup(who, { '.bashrc': '# rc\n' });
    const cwd = fresh(who, 'plain', { 'readme.txt': 'hello\n' });
    const before = { cwd: listing(cwd), home: listing(s.home) };
    const result = await run(s, cwd, 'ls -A "$HOME"; echo ---; ls -A');
    expect(result.code, result.stderr).toBe(0);
    const [inHome, inCwd] = result.stdout.split('---\n');
    // The home is read-only here: a missing hidden path (~/.ssh, ~/.netrc) is simply absent.
    expect(inHome!.trim().split('\n').filter(Boolean).sort()).toEqual(before.home);
    // The working directory is writable: missing protected names are blocked there, as empty stubs.
    expect(inCwd).toContain('.git');
    expect({ cwd: listing(cwd), home: listing(s.home) }).toEqual(before);
  });

  it('a run whose working directory is a fresh home leaves the home as it was', async () => {
    const s = setup(who, { '.profile': '# profile\n' });
    const before = listing(s.home);
    const result = await run(s, s.home, 'ls -A >/dev/null');
    expect(result.code, result.stderr).toBe(0);
    expect(listing(s.home)).toEqual(before);
  });

  it('after srt-gw run is killed with SIGKILL, the next run removes what the killed one left', async () => {
    const s = setup(who);
    const cwd = fresh(who, 'killed', { 'readme.txt': 'hello\n' });
    const before = listing(cwd);
    const running = startSrtGwRun(runOptions(s, cwd, 'echo ready; exec sleep 1000'));
    await running.waitForStdout(/^ready$/m, 30_000);
    // Control: while the jail runs, its mount points are on the host.
    for (const name of PROTECTED_IN_CWD) expect(existsSync(join(cwd, name)), name).toBe(true);
    const jail = hostDescendants(running.pid);
    process.kill(running.pid, 'SIGKILL');
    await running.exited;
    expect(await eventually(() => jail.every((p) => !hostProcessAlive(p.pid)), 10_000)).toBe(true);

    const next = await run(s, fresh(who, 'next'), 'true');
    expect(next.code, next.stderr).toBe(0);
    expect(listing(cwd)).toEqual(before);
    expect(readdirSync(defaultParent({})).filter((name) => name.startsWith(`srt-gw-mount-points-${running.pid}-`))).toEqual([]);
  });

  it('what the killed run left stays when someone filled it meanwhile', async () => {
    const s = setup(who);
    const cwd = fresh(who, 'filled');
    const running = startSrtGwRun(runOptions(s, cwd, 'echo ready; exec sleep 1000'));
    await running.waitForStdout(/^ready$/m, 30_000);
    const jail = hostDescendants(running.pid);
    process.kill(running.pid, 'SIGKILL');
    await running.exited;
    expect(await eventually(() => jail.every((p) => !hostProcessAlive(p.pid)), 10_000)).toBe(true);
    writeFileSync(join(cwd, '.mcp.json'), '{"mcpServers": {}}\n');
    const next = await run(s, fresh(who, 'next'), 'true');
    expect(next.code, next.stderr).toBe(0);
    expect(listing(cwd)).toEqual(['.mcp.json']);
  });

  it('a jail that mounts over what a killed run left keeps its protections when the next run sweeps', async () => {
    const s = setup(who);
    const cwd = fresh(who, 'shared');
    const killed = startSrtGwRun(runOptions(s, cwd, 'echo ready; exec sleep 1000'));
    await killed.waitForStdout(/^ready$/m, 30_000);
    // Started while the first jail's empty .mcp.json and .git are on the host: it mounts over them.
    const live = startSrtGwRun({
      ...runOptions(s, cwd, 'echo ready; read go; echo "{}" > .mcp.json; mkdir .git/hooks/x; echo "[core] fsmonitor = evil" > .git/config; echo done'),
      interactive: true,
    });
    await live.waitForStdout(/^ready$/m, 30_000);
    const jail = hostDescendants(killed.pid);
    process.kill(killed.pid, 'SIGKILL');
    await killed.exited;
    expect(await eventually(() => jail.every((p) => !hostProcessAlive(p.pid)), 10_000)).toBe(true);
    const sweep = await run(s, fresh(who, 'sweeper'), 'true');
    expect(sweep.code, sweep.stderr).toBe(0);
    // SECURITY: had the sweep removed the paths the live jail mounts over, the kernel would have
    // detached those mounts, and the writes below would reach the host.
    live.write('go\n');
    live.endInput();
    const result = await live.finished;
    expect(result.stdout).toContain('done');
    expect(result.stderr).toMatch(/\.mcp\.json: Read-only file system/);
    expect(result.stderr).toMatch(/\.git\/hooks\/x.*(Read-only file system|No such file or directory)/);
    expect(result.stderr).toMatch(/\.git\/config: Read-only file system/);
    expect(listing(cwd)).toEqual([]);
  });

  it('a hidden path that does not exist cannot be created, and nothing reaches the host', async () => {
    const s = setup(who);
    const project = join(s.home, 'project');
    mkdirSync(project);
    if (who === 'nobody') execFileSync('chown', [`${NOBODY}:${NOBODY}`, project]);
    // Read-only home: absent in the jail (ENOENT), and not creatable (EROFS).
    const readOnlyHome = await run(s, project, 'cat "$HOME/.netrc"; echo key > "$HOME/.netrc"; mkdir "$HOME/.ssh"');
    expect(readOnlyHome.stderr).toMatch(/\.netrc: No such file or directory/);
    expect(readOnlyHome.stderr).toMatch(/\.netrc: Read-only file system/);
    expect(readOnlyHome.stderr).toMatch(/\.ssh.*Read-only file system/);
    // Writable home: blocked by an empty read-only stub, removed after the run.
    const writableHome = await run(s, s.home, 'mkdir -p .ssh; echo key >> .ssh/authorized_keys; echo machine x > .netrc; echo written > ok.txt');
    expect(writableHome.stderr).toMatch(/authorized_keys: (Read-only file system|No such file or directory)/);
    expect(writableHome.stderr).toMatch(/\.netrc: Read-only file system/);
    expect(listing(s.home)).toEqual(['ok.txt', 'project']);
  });

  it.each([
    { state: 'exist on the host', files: Object.fromEntries(CREDENTIAL_FILES.map((name) => [name, `machine example.test login u password ${SECRET}\n`])) },
    { state: 'do not exist on the host', files: {} },
  ])('wget, curl --netrc-optional, git, pip and npm read their credential files without an error when they $state', async ({ files }) => {
    const s = setup(who, { ...files, '.config/pip/pip.conf': '[global]\ntimeout = 5\n' });
    const cwd = fresh(who, 'tools');
    const script = [
      'cat "$HOME/.netrc"; echo "cat=$?"',
      'wget -q -O /dev/null --tries=1 https://example.test/; echo "wget=$?"',
      'curl --netrc-optional -sS -o /dev/null https://example.test/; echo "curl=$?"',
      'printf "protocol=https\\nhost=example.test\\n\\n" | git credential-store get; echo "git=$?"',
      'pip config list >/dev/null; echo "pip=$?"',
      'npm config get registry >/dev/null; echo "npm=$?"',
    ].join('\n');
    const result = await run(s, cwd, script);
    const exits = Object.fromEntries([...result.stdout.matchAll(/^(\w+)=(\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
    // wget and curl fail only because the policy allows no host.
    expect(exits, result.stdout + result.stderr).toEqual({ cat: files['.netrc'] === undefined ? 1 : 0, wget: 4, curl: 6, git: 0, pip: 0, npm: 0 });
    expect(result.stdout).not.toContain(SECRET);
    const complaints = result.stderr.split('\n').filter((line) => /netrc|npmrc|pypirc|git-credentials|Permission denied|EACCES/i.test(line));
    expect(complaints.filter((line) => !(files['.netrc'] === undefined && /cat: .*\.netrc: No such file/.test(line)))).toEqual([]);
  });
});
