// Runs the real `srt-gw serve` (the built CLI) as a child process for the e2e tests, and the real
// curl through it. Each gateway gets its own temp policy file, CA directory and audit log.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_PATH = join(REPO_ROOT, 'dist', 'bin', 'srt-gw.js');

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

/** One parsed line of the audit log. */
export type AuditLine = Record<string, unknown>;

export interface StartGatewayOptions {
  policyYaml: string;
  /** Extra CLI arguments after the ones every test gateway gets. */
  args?: string[];
  /** Extra environment variables (proxy variables are removed from the inherited ones). */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /**
   * A command the gateway runs under (`unshare -m sh -c '...; exec "$0" "$@"'`, `faketime ...`):
   * it gets node and the gateway's arguments after its own and must exec them, so the pid stays.
   */
  wrapper?: string[];
}

export interface GatewayExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when SIGTERM did not end it within the stop timeout and it had to be killed. */
  killed: boolean;
}

export interface GatewayProcess {
  /** http://127.0.0.1:PORT */
  proxyUrl: string;
  proxyPort: number;
  /** http://127.0.0.1:PORT/metrics, or null without --metrics. */
  metricsUrl: string | null;
  /** Port of the DNS server when started with --dns, else null. */
  dnsPort: number | null;
  /** The gateway CA certificate clients pass as --cacert. */
  caPath: string;
  caDir: string;
  logPath: string;
  policyPath: string;
  pid: number;
  /** Everything the gateway wrote to stderr so far. */
  stderr(): string;
  /** The audit log's lines so far, parsed. */
  auditLines(): Promise<AuditLine[]>;
  /** Polls the audit log until a line satisfies `predicate` (the log is written asynchronously). */
  waitForAudit(predicate: (line: AuditLine) => boolean, timeoutMs?: number): Promise<AuditLine>;
  /** SIGTERM, then wait for the exit; removes the temp files. Safe to call twice. */
  stop(): Promise<GatewayExit>;
}

/** The inherited environment minus anything that would steer curl or node around the proxy. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(https?|all|no|ftp)_proxy$/i.test(name)) continue;
    env[name] = value;
  }
  return { ...env, ...extra };
}

function assertBuilt(): void {
  if (!existsSync(CLI_PATH)) {
    throw new Error(`${CLI_PATH} does not exist: run \`npm run build\` before the e2e tests`);
  }
}

/** Audit log text → its complete JSON lines; a partial or broken line is skipped. */
export function parseAuditLines(text: string): AuditLine[] {
  const lines: AuditLine[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      lines.push(JSON.parse(line) as AuditLine);
    } catch {
      // a line still being written; the next read will see it whole
    }
  }
  return lines;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startGatewayProcess(options: StartGatewayOptions): Promise<GatewayProcess> {
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-e2e-'));
  const policyPath = join(dir, 'policy.yaml');
  const caDir = join(dir, 'ca');
  const logPath = join(dir, 'audit.log');
  writeFileSync(policyPath, options.policyYaml);

  const args = [
    CLI_PATH, 'serve',
    '--policy', policyPath,
    '--listen', '127.0.0.1:0',
    '--ca-dir', caDir,
    '--log', logPath,
    ...(options.args ?? []),
  ];
  const [command, commandArgs] = options.wrapper?.[0] === undefined ? [process.execPath, args] : [options.wrapper[0], [...options.wrapper.slice(1), process.execPath, ...args]];
  const child = spawn(command, commandArgs, { env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolveExit({ code, signal });
    }),
  );

  const timeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS;
  let listening: { proxy: string; metrics: string | null; dns: string | null };
  try {
    listening = await new Promise((resolveReady, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`gateway did not print its listening line within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`)),
        timeoutMs,
      );
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        for (const line of stdout.split('\n')) {
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            continue;
          }
          const event = parsed as { event?: unknown; proxy?: unknown; metrics?: unknown; dns?: unknown };
          if (event.event === 'listening' && typeof event.proxy === 'string') {
            clearTimeout(timer);
            resolveReady({
              proxy: event.proxy,
              metrics: typeof event.metrics === 'string' ? event.metrics : null,
              dns: typeof event.dns === 'string' ? event.dns : null,
            });
            return;
          }
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`gateway exited (code ${code}, signal ${signal}) before listening\nstdout: ${stdout}\nstderr: ${stderr}`));
      });
    });
  } catch (error) {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  const proxyPort = Number(listening.proxy.split(':').pop());
  const auditLines = async (): Promise<AuditLine[]> => (existsSync(logPath) ? parseAuditLines(readFileSync(logPath, 'utf8')) : []);
  let stopped: Promise<GatewayExit> | null = null;

  return {
    proxyUrl: `http://${listening.proxy}`,
    proxyPort,
    metricsUrl: listening.metrics === null ? null : `http://${listening.metrics}/metrics`,
    dnsPort: listening.dns === null ? null : Number(listening.dns.split(':').pop()),
    caPath: join(caDir, 'ca.pem'),
    caDir,
    logPath,
    policyPath,
    pid: child.pid ?? -1,
    stderr: () => stderr,
    auditLines,
    waitForAudit: async (predicate, waitMs = 5_000) => {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const found = (await auditLines()).find(predicate);
        if (found) return found;
        if (Date.now() > deadline) {
          throw new Error(`no audit line matched within ${waitMs} ms; the log has:\n${readFileSafe(logPath)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: () => {
      stopped ??= (async () => {
        let killed = false;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const timer = setTimeout(() => {
            killed = true;
            child.kill('SIGKILL');
          }, STOP_TIMEOUT_MS);
          await exited;
          clearTimeout(timer);
        }
        const { code, signal } = await exited;
        rmSync(dir, { recursive: true, force: true });
        return { code, signal, killed };
      })();
      return stopped;
    },
  };
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '(no log file)';
  }
}

export interface GatewayRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `serve` expecting it to exit by itself (bad configuration); kills it after `timeoutMs`. */
export async function runGatewayToExit(options: StartGatewayOptions & { timeoutMs?: number }): Promise<GatewayRunResult> {
  assertBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-e2e-'));
  const policyPath = join(dir, 'policy.yaml');
  writeFileSync(policyPath, options.policyYaml);
  const args = [
    CLI_PATH, 'serve',
    '--policy', policyPath,
    '--listen', '127.0.0.1:0',
    '--ca-dir', join(dir, 'ca'),
    '--log', join(dir, 'audit.log'),
    ...(options.args ?? []),
  ];
  try {
    return await runProcess(process.execPath, args, { env: cleanEnv(options.env), timeoutMs: options.timeoutMs ?? READY_TIMEOUT_MS });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runProcess(
  command: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; timeoutMs: number; input?: Buffer | string },
): Promise<GatewayRunResult & { stdoutBytes: Buffer }> {
  const child = spawn(command, args, { env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(child);
  const stdout: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));
  child.stdin.on('error', () => undefined);
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolveExit, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolveExit([c, s]));
  });
  clearTimeout(timer);
  running.delete(child);
  const stdoutBytes = Buffer.concat(stdout);
  return { code, signal, stdout: stdoutBytes.toString('utf8'), stdoutBytes, stderr };
}

export interface CurlResult {
  /** Final HTTP status (%{http_code}); 0 when there was none. */
  status: number;
  /** Status of the proxy's answer to CONNECT (%{http_connect}); 0 when curl did not tunnel. */
  connectStatus: number;
  /** "1.1" or "2" (%{http_version}). */
  httpVersion: string;
  /** Headers of the final response, names lower-cased, repeated ones joined with ", ". */
  headers: Record<string, string>;
  /** Every header block curl saw (CONNECT answer, 100 Continue, final), raw. */
  headerBlocks: string[];
  body: Buffer;
  text: string;
  exitCode: number;
  stderr: string;
  json<T = unknown>(): T;
}

export interface CurlOptions {
  /** Sent as the request body via `--data-binary @-` when given. */
  input?: Buffer | string;
  maxTimeSeconds?: number;
}

/** The gateway fields curlThroughProxy needs; a GatewayProcess fits. */
export interface ProxyEndpoint {
  proxyUrl: string;
  caPath: string;
}

/**
 * Runs the real curl through the gateway: `-x proxy --cacert <gateway CA>` plus `args` (the URL and
 * anything else, e.g. `--http2`). Asynchronous on purpose: upstreams run inside the test process.
 */
export async function curlThroughProxy(proxy: ProxyEndpoint, args: string[], options: CurlOptions = {}): Promise<CurlResult> {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-curl-'));
  const headerPath = join(dir, 'headers');
  const bodyPath = join(dir, 'body');
  const maxTime = options.maxTimeSeconds ?? 20;
  const curlArgs = [
    '-sS',
    '--noproxy', '',
    '--max-time', String(maxTime),
    '-x', proxy.proxyUrl,
    '--cacert', proxy.caPath,
    '-D', headerPath,
    '-o', bodyPath,
    '-w', '%{http_code} %{http_connect} %{http_version}',
    ...(options.input !== undefined ? ['--data-binary', '@-'] : []),
    ...args,
  ];
  try {
    const run = await runProcess('curl', curlArgs, { env: cleanEnv(), timeoutMs: (maxTime + 10) * 1000, input: options.input });
    const [status = '0', connectStatus = '0', httpVersion = ''] = run.stdout.trim().split(' ');
    const rawHeaders = existsSync(headerPath) ? readFileSync(headerPath, 'latin1') : '';
    const headerBlocks = rawHeaders.split(/\r?\n\r?\n/).filter((block) => block.trim() !== '');
    const headers: Record<string, string> = {};
    const finalBlock = headerBlocks[headerBlocks.length - 1] ?? '';
    for (const line of finalBlock.split(/\r?\n/).slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const body = existsSync(bodyPath) ? readFileSync(bodyPath) : Buffer.alloc(0);
    const text = body.toString('utf8');
    return {
      status: Number(status),
      connectStatus: Number(connectStatus),
      httpVersion,
      headers,
      headerBlocks,
      body,
      text,
      exitCode: run.code ?? -1,
      stderr: run.stderr,
      json: <T>() => {
        try {
          return JSON.parse(text) as T;
        } catch (error) {
          throw new Error(`curl body is not JSON (status ${status}, exit ${run.code}): ${text.slice(0, 500)}\nstderr: ${run.stderr}`, { cause: error });
        }
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
