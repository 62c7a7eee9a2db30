// A jailed command cannot plant files that the host runs later: every protected name in a writable
// root, every git indirection of its repository (a worktree's too, husky's scripts), every
// protected startup file of a writable home stays as it was, written from inside a real
// `srt-gw run`; and what static rules cannot cover (a repository created during the run, a nested
// .envrc) is held after the run, so the host's next `git status` runs nothing. As root and as an
// ordinary user.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_READ_ONLY_PATHS, GIT_DIRECTORY_PROTECTED, PROTECTED_IN_WRITABLE_ROOTS } from '../../jail/filesystem/built-in-paths.js';
import { HELD_SUFFIX } from '../../jail/planted-files.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { JAIL_PATH, ensureBuilt, srtGwRun, startSrtGwRun, type SrtGwRunOptions, type SrtGwRunResult } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('setpriv'), missingCommand('git'));

const NOBODY = 65534;
const AS_NOBODY = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--inh-caps=-all'];
const GIT_ENV = { PATH: JAIL_PATH, HOME: '/nonexistent', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.test', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.test' };

type Who = 'root' | 'nobody';

let root = '';
let made = 0;

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'safe.directory=*', ...args], { cwd, env: GIT_ENV, encoding: 'utf8' });
}

function write(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}

/** A fresh directory under the test root. */
function fresh(name: string): string {
  made += 1;
  const dir = join(root, `${made}-${name}`);
  mkdirSync(dir);
  return dir;
}

function ownedBy(who: Who, ...dirs: string[]): void {
  if (who === 'nobody') for (const dir of dirs) execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, dir]);
}

/** What is at `path` on the host: a file's content, a directory's recursive listing, or null. */
function hostState(path: string): string | string[] | null {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return null;
  return stat.isDirectory() ? readdirSync(path, { recursive: true }).map(String).sort() : readFileSync(path, 'utf8');
}

interface Setup {
  who: Who;
  home: string;
  state: string;
  policy: string;
}

function setup(who: Who, policyYaml = 'version: 1\nrules: []\n'): Setup {
  const state = fresh('state');
  const home = fresh('home');
  const policy = join(state, 'policy.yaml');
  writeFileSync(policy, policyYaml);
  ownedBy(who, state, home);
  return { who, home, state, policy };
}

function runOptions(s: Setup, cwd: string, script: string): SrtGwRunOptions {
  return {
    flags: ['-q', '--policy', s.policy, '--ca-dir', join(s.state, 'ca')],
    command: ['sh', '-c', script],
    cwd,
    env: { PATH: JAIL_PATH, HOME: s.home, XDG_STATE_HOME: join(s.state, 'xdg-state'), LANG: 'C.UTF-8', TERM: 'dumb', GIT_TERMINAL_PROMPT: '0' },
    timeoutMs: 120_000,
    ...(s.who === 'nobody' ? { wrapper: AS_NOBODY } : {}),
  };
}

async function run(s: Setup, cwd: string, script: string): Promise<SrtGwRunResult> {
  const result = await srtGwRun(runOptions(s, cwd, script));
  expect(result.timedOut, `srt-gw run timed out\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(false);
  return result;
}

/**
 * A shell script that tries every way to plant each path: append to and replace a file, create
 * one where none is, write into and replace a directory. Prints "planted PATH" for each that took.
 */
function plantingScript(entries: readonly { path: string; kind: 'file' | 'directory' }[]): string {
  const quote = (path: string) => `'${path.replaceAll("'", `'\\''`)}'`;
  return entries
    .map(({ path, kind }) =>
      kind === 'file'
        ? `p=${quote(path)}; { printf 'planted\\n' >> "$p"; } 2>/dev/null && echo "planted $p"; rm -f "$p" 2>/dev/null; { printf 'planted\\n' > "$p"; } 2>/dev/null && echo "planted $p"`
        : `p=${quote(path)}; mkdir -p "$p" 2>/dev/null; { printf 'planted\\n' > "$p/planted"; } 2>/dev/null && echo "planted $p"; mv "$p" "$p.old" 2>/dev/null && echo "planted $p"`,
    )
    .join('\n');
}

/** Names nothing protects, planted the same way: each attempt must succeed there. */
const CONTROLS = [
  { path: 'control-file', kind: 'file' as const },
  { path: 'control-dir', kind: 'directory' as const },
];
function controlOutput(prefix?: string): string {
  const named = (path: string) => (prefix === undefined ? path : join(prefix, path));
  return `planted ${named('control-file')}\nplanted ${named('control-file')}\nplanted ${named('control-dir')}\nplanted ${named('control-dir')}\n`;
}
const CONTROL_OUTPUT = controlOutput();

beforeAll(() => {
  if (skip !== null) return;
  ensureBuilt();
  // Not under /tmp: the jail's /tmp is private, so the directories would not be there at all.
  root = realpathSync(mkdtempSync('/var/tmp/srt-gw-planting-'));
  chmodSync(root, 0o755);
}, 300_000);

afterAll(() => {
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip !== null).each(['root', 'nobody'] as const)('a jail cannot plant what the host runs later, as %s', (who) => {
  it('every protected name in a writable root, and husky\'s hooks and scripts, stay as they were: written or not created', async () => {
    const s = setup(who);
    const cwd = fresh('project');
    git(cwd, 'init', '-q');
    git(cwd, 'config', 'core.hooksPath', '.husky/_');
    write(join(cwd, '.husky/_/h'), '#!/bin/sh\n');
    write(join(cwd, '.husky/pre-commit'), 'npm test\n');
    for (const name of ['.envrc', '.mcp.json', '.srt-gw.yaml', '.srt.json', '.bashrc']) write(join(cwd, name), `# ${name}\n`);
    write(join(cwd, '.vscode/settings.json'), '{}\n');
    ownedBy(who, cwd);
    const entries = [
      // A name protected only when present is checked where it is present; one created is held (below).
      ...PROTECTED_IN_WRITABLE_ROOTS.filter((entry) => entry.ifPresent !== true || existsSync(join(cwd, entry.path))),
      { path: '.husky/pre-commit', kind: 'file' as const },
      { path: '.husky/new-script', kind: 'file' as const },
      { path: '.husky/_/pre-commit', kind: 'file' as const },
      { path: '.husky', kind: 'directory' as const },
    ];
    expect(entries.map((entry) => entry.path)).toEqual(expect.arrayContaining(['.srt-gw.yaml', '.git/info', '.git/config.worktree', '.pre-commit-config.yaml']));
    const before = new Map(entries.map((entry) => [entry.path, hostState(join(cwd, entry.path))]));

    // Control: the same attempts succeed on names nothing protects.
    const result = await run(s, cwd, `${plantingScript([...entries, ...CONTROLS])}\necho done`);
    expect(result.stdout, result.stderr).toBe(`${CONTROL_OUTPUT}done\n`);
    for (const entry of entries) expect(hostState(join(cwd, entry.path)), entry.path).toEqual(before.get(entry.path));
  }, 300_000);

  it("a worktree's git directory and its common one keep every git indirection, and its .git file cannot be replaced", async () => {
    const main = fresh('main');
    git(main, 'init', '-q');
    git(main, 'commit', '-q', '--allow-empty', '-m', 'first');
    const cwd = join(fresh('worktrees'), 'wt');
    git(main, 'worktree', 'add', '-q', cwd);
    const gitDirectory = join(main, '.git/worktrees/wt');
    ownedBy(who, main, join(cwd, '..'));
    const s = setup(who, `version: 1\nrules: []\nfilesystem:\n  allowWrite: [${JSON.stringify(main)}]\n`);
    const entries = [
      ...[gitDirectory, join(main, '.git')].flatMap((directory) =>
        GIT_DIRECTORY_PROTECTED.filter((entry) => entry.ifPresent !== true || existsSync(join(directory, entry.path))).map((entry) => ({ ...entry, path: join(directory, entry.path) })),
      ),
      { path: join(cwd, '.git'), kind: 'file' as const },
    ];
    expect(entries.map((entry) => entry.path)).toContain(join(gitDirectory, 'commondir'));
    const before = new Map(entries.map((entry) => [entry.path, hostState(entry.path)]));

    const controls = CONTROLS.map((entry) => ({ ...entry, path: join(main, entry.path) }));
    const result = await run(s, cwd, `${plantingScript([...entries, ...controls])}\nmv .git .git-old 2>/dev/null && echo "planted moved .git"\necho done`);
    expect(result.stdout, result.stderr).toBe(`${controlOutput(main)}done\n`);
    for (const entry of entries) expect(hostState(entry.path), entry.path).toEqual(before.get(entry.path));
    expect(git(cwd, 'rev-parse', '--git-dir').trim()).toBe(gitDirectory);
  }, 300_000);

  it('with the home as working directory, every protected startup file stays as it was', async () => {
    const s = setup(who);
    write(join(s.home, '.bashrc'), '# rc\n');
    write(join(s.home, '.claude.json'), '{}\n');
    write(join(s.home, '.config/nvim/init.lua'), '-- init\n');
    ownedBy(who, s.home);
    const entries = DEFAULT_READ_ONLY_PATHS.map((entry) => ({ ...entry, path: join(s.home, entry.path.slice(2)) }));
    const before = new Map(entries.map((entry) => [entry.path, hostState(entry.path)]));
    const listingBefore = readdirSync(s.home).sort();

    const result = await run(s, s.home, `${plantingScript([...entries, ...CONTROLS])}\nrm -r control-file control-dir.old\necho done`);
    expect(result.stdout, result.stderr).toBe(`${CONTROL_OUTPUT}done\n`);
    for (const entry of entries) expect(hostState(entry.path), entry.path).toEqual(before.get(entry.path));
    expect(readdirSync(s.home).sort()).toEqual(listingBefore);
  }, 300_000);

  it('a run from a project leaves a fresh home untouched, during the run and after it', async () => {
    const s = setup(who);
    const cwd = fresh('project');
    git(cwd, 'init', '-q');
    ownedBy(who, cwd);
    expect(readdirSync(s.home)).toEqual([]);
    const running = startSrtGwRun({ ...runOptions(s, cwd, 'ls -A "$HOME"; echo ready; read line; echo "$line"'), interactive: true });
    await running.waitForStdout(/^ready$/m, 120_000);
    // While the jail runs: no stand-in mount point under the read-only home.
    expect(readdirSync(s.home)).toEqual([]);
    running.write('go\n');
    running.endInput();
    const result = await running.finished;
    expect(result.stdout, result.stderr).toBe('ready\ngo\n');
    expect(readdirSync(s.home)).toEqual([]);
  }, 300_000);

  it('a repository created during the run with core.fsmonitor is held, so the next git status on the host runs nothing', async () => {
    const s = setup(who);
    const cwd = fresh('project');
    git(cwd, 'init', '-q');
    ownedBy(who, cwd);
    const marker = join(cwd, 'pwned');
    const result = await run(
      s,
      cwd,
      [
        'git init -q sub',
        `git -C sub config core.fsmonitor 'touch ${marker}'`,
        'mkdir -p deep/x pkg',
        `printf 'touch ${marker}\\n' > deep/x/.envrc`,
        `printf '{"mcpServers":{"x":{"command":"touch","args":["${marker}"]}}}\\n' > pkg/.mcp.json`,
        "printf 'version: 1\\nrules: []\\n' > .srt-gw.yaml",
        "printf '../../evil\\n' > .git/commondir",
        'echo done',
      ].join('\n'),
    );
    expect(result.stdout, result.stderr).toBe('done\n');
    const held = (path: string) => `restore with: mv ${path}${HELD_SUFFIX} ${path}\n`;
    expect(result.stderr).toContain(`srt-gw: held sub/.git/config: core.fsmonitor would run a program on your next git command; ${held('sub/.git/config')}`);
    for (const path of ['deep/x/.envrc', 'pkg/.mcp.json', '.srt-gw.yaml', '.git/commondir']) expect(result.stderr).toContain(`srt-gw: held ${path}: `);
    for (const path of ['sub/.git/config', 'deep/x/.envrc', 'pkg/.mcp.json', '.srt-gw.yaml', '.git/commondir']) {
      expect(existsSync(join(cwd, path)), path).toBe(false);
      expect(existsSync(join(cwd, `${path}${HELD_SUFFIX}`)), path).toBe(true);
    }
    git(join(cwd, 'sub'), 'status');
    git(cwd, 'status');
    expect(existsSync(marker)).toBe(false);
  }, 300_000);
});
