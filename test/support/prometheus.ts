// Runs the real Prometheus server (Debian package `prometheus`) for the monitoring e2e tests: a
// temp config that scrapes one target every second, temp storage, a free loopback port.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetch } from 'undici';
import { stringify } from 'yaml';
import { freePort } from './free-port.js';

const READY_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;

export interface PrometheusOptions {
  job: string;
  /** host:port of the /metrics endpoint to scrape. */
  target: string;
  /** Absolute paths of rule files to load. */
  ruleFiles?: string[];
}

/** One element of a Prometheus instant query result (vector) or a scalar as a single sample. */
export interface QuerySample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface QueryResult {
  status: string;
  resultType: string;
  samples: QuerySample[];
  error?: string;
}

export interface PrometheusServer {
  url: string;
  /** Evaluates `expr` now through /api/v1/query. */
  query(expr: string): Promise<QueryResult>;
  /** Waits until the target's scrape health is "up" and at least `scrapes` scrapes are stored. */
  waitForScrapes(scrapes: number, timeoutMs?: number): Promise<void>;
  stderr(): string;
  /** SIGTERM, wait for the exit, remove the temp directory. Safe to call twice. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-prometheus-'));
  const configPath = join(dir, 'prometheus.yml');
  writeFileSync(
    configPath,
    stringify({
      global: { scrape_interval: '1s', evaluation_interval: '1s' },
      rule_files: options.ruleFiles ?? [],
      scrape_configs: [{ job_name: options.job, metrics_path: '/metrics', static_configs: [{ targets: [options.target] }] }],
    }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  const getJson = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    return (await res.json()) as T;
  };

  try {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${stderr}`);
      const ready = await fetch(`${url}/-/ready`).then((res) => res.status === 200, () => false);
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`prometheus not ready within ${READY_TIMEOUT_MS} ms: ${stderr}`);
      await sleep(100);
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const query = async (expr: string): Promise<QueryResult> => {
    const body = await getJson<{ status: string; error?: string; data?: { resultType: string; result: unknown } }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    const resultType = body.data?.resultType ?? '';
    const result = body.data?.result;
    const samples: QuerySample[] =
      resultType === 'vector' ? (result as QuerySample[]) : resultType === 'scalar' ? [{ metric: {}, value: result as [number, string] }] : [];
    return { status: body.status, resultType, samples, error: body.error };
  };

  return {
    url,
    query,
    async waitForScrapes(scrapes, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const targets = await getJson<{ data: { activeTargets: { health: string; lastError: string }[] } }>('/api/v1/targets');
        const up = targets.data.activeTargets.some((target) => target.health === 'up');
        const stored = up ? Number((await query(`count_over_time(up{job="${options.job}"}[5m])`)).samples[0]?.value[1] ?? 0) : 0;
        if (stored >= scrapes) return;
        if (Date.now() > deadline) {
          throw new Error(`prometheus stored ${stored} scrapes of ${options.target}, wanted ${scrapes}: ${JSON.stringify(targets.data.activeTargets)}`);
        }
        await sleep(250);
      }
    },
    stderr: () => stderr,
    stop,
  };
}
