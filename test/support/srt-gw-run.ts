// Runs the real `srt-gw run` (the built CLI) for the jail e2e tests: the build made fresh first,
// every run bounded by a timeout, stdout kept as bytes, and the host-side process tree of a run
// (bwrap, srt-gw-jail-init, the helpers) readable from /proc so a test can find or kill a part.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildRedirector } from './native-build.js';
import { CLI_PATH, REPO_ROOT } from './gateway-process.js';

export { CLI_PATH, REPO_ROOT };

const DEFAULT_TIMEOUT_MS = 20_000;
/** The product folders dist/ is built from. */
const SOURCE_DIRS = ['cli', 'jail', 'gateway', 'ca', 'policies'];
const SOURCE_FILES = ['errors.ts', 'index.ts'];

/** A PATH without per-user shims (pyenv, nvm): the jail runs the distribution's programs. */
export const JAIL_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function newestSourceMtime(): number {
  let newest = 0;
  const visit = (path: string): void => {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.isDirectory()) {
      for (const name of readdirSync(path)) if (name !== 'testdata') visit(join(path, name));
    } else if (path.endsWith('.ts') && !path.endsWith('.test.ts') && !path.endsWith('.bench.ts')) {
      newest = Math.max(newest, stat.mtimeMs);
    }
  };
  for (const dir of SOURCE_DIRS) visit(join(REPO_ROOT, dir));
  for (const file of SOURCE_FILES) visit(join(REPO_ROOT, file));
  return newest;
}

let ensured = false;

/**
 * `npm run build` when dist/ is missing or older than a product source file, and the native
 * helpers (native/build.sh, once per test process). Throws with the compiler's output.
 */
export function ensureBuilt(): void {
  if (ensured) return;
  const built = statSync(CLI_PATH, { throwIfNoEntry: false });
  if (!built || built.mtimeMs < newestSourceMtime()) {
    const result = spawnSync('npm', ['run', 'build'], { cwd: REPO_ROOT, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`npm run build failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  }
  buildRedirector();
  ensured = true;
}

export interface SrtGwRunOptions {
  /** `srt-gw run` flags, before `--`. */
  flags: string[];
  command: string[];
  cwd: string;
  /** The whole environment of `srt-gw run` (and so of the jail). */
  env: NodeJS.ProcessEnv;
  /** Bytes for stdin, which is then closed. Default: empty. */
  input?: Buffer | string;
  /** Keep stdin open for write() and endInput() instead. */
  interactive?: boolean;
  /** Killed with SIGKILL after this long (the result says timedOut). */
  timeoutMs?: number;
  /** A command (e.g. setpriv ... ) that execs `node CLI run ...` as another user. */
  wrapper?: string[];
}

export interface SrtGwRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stdoutBytes: Buffer;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export interface SrtGwRunning {
  child: ChildProcess;
  /** The srt-gw run process (the wrapper execs into it, so the pid is the same). */
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches; rejects with what was seen when the run ends or time runs out. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  write(text: string): void;
  endInput(): void;
  /** When the srt-gw run process itself has exited (its stdio may stay open in orphans). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** When it has exited and its stdout and stderr are closed. */
  finished: Promise<SrtGwRunResult>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export function startSrtGwRun(options: SrtGwRunOptions): SrtGwRunning {
  const argv = [...(options.wrapper ?? []), process.execPath, CLI_PATH, 'run', ...options.flags, '--', ...options.command];
  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const stdoutChunks: Buffer[] = [];
  let stderr = '';
  let timedOut = false;
  const changed = new Set<() => void>();
  const notify = () => {
    for (const listener of [...changed]) listener();
  };
  child.stdout.on('data', (chunk: Buffer) => {
    stdoutChunks.push(chunk);
    notify();
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
    notify();
  });
  child.stdin.on('error', () => undefined);
  if (!options.interactive) child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const finished = new Promise<SrtGwRunResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      notify();
      const stdoutBytes = Buffer.concat(stdoutChunks);
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr, timedOut, durationMs: Date.now() - started });
    });
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let closed = false;
  void finished.then(() => (closed = true));
  const stdout = () => Buffer.concat(stdoutChunks).toString('utf8');

  const waitFor = (read: () => string, what: string) => (pattern: RegExp, timeoutMs = 10_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const match = read().match(pattern);
        if (match) {
          done();
          resolve(match);
        } else if (closed || child.exitCode !== null || child.signalCode !== null) {
          done();
          reject(new Error(`srt-gw run ended before its ${what} matched ${pattern}\nstdout: ${stdout()}\nstderr: ${stderr}`));
        }
      };
      const deadline = setTimeout(() => {
        done();
        reject(new Error(`${what} did not match ${pattern} within ${timeoutMs} ms\nstdout: ${stdout()}\nstderr: ${stderr}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(deadline);
        changed.delete(check);
      };
      changed.add(check);
      check();
    });

  return {
    child,
    pid: child.pid ?? -1,
    stdout,
    stderr: () => stderr,
    waitForStdout: waitFor(stdout, 'stdout'),
    waitForStderr: waitFor(() => stderr, 'stderr'),
    write: (text) => child.stdin.write(text),
    endInput: () => child.stdin.end(),
    exited,
    finished,
  };
}

/** Runs `srt-gw run` to its end. */
export async function srtGwRun(options: SrtGwRunOptions): Promise<SrtGwRunResult> {
  return startSrtGwRun(options).finished;
}

export interface HostProcess {
  pid: number;
  ppid: number;
  /** R, S, Z, ... from /proc/PID/stat. */
  state: string;
  argv: string[];
}

function readProcess(pid: number): HostProcess | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may hold spaces and parentheses: the fields after it start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg, i, all) => arg !== '' || i < all.length - 1);
    return { pid, ppid: Number(fields[1]), state: fields[0] ?? '?', argv };
  } catch {
    return null; // gone
  }
}

/** Every live (not zombie) process below `pid` on the host, by /proc. */
export function hostDescendants(pid: number): HostProcess[] {
  const all = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readProcess(Number(name)))
    .filter((p): p is HostProcess => p !== null);
  const below: HostProcess[] = [];
  const parents = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of all) {
      if (parents.has(p.ppid) && !parents.has(p.pid)) {
        parents.add(p.pid);
        below.push(p);
        grew = true;
      }
    }
  }
  return below.filter((p) => p.state !== 'Z');
}

/** True while `pid` exists and is not a zombie. */
export function hostProcessAlive(pid: number): boolean {
  const p = readProcess(pid);
  return p !== null && p.state !== 'Z';
}
