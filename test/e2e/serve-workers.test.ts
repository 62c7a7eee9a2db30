// `srt-gw serve --workers 2`: one port served by two processes that share the policy, the CA,
// the audit log and one /metrics; SIGHUP and SIGUSR1 reach every worker, a killed worker is
// replaced, and SIGTERM drains them all without losing an audit line.
import { spawnSync } from 'node:child_process';
import { linkSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { CLI_PATH, cleanEnv, curlThroughProxy, parseAuditLines, runGatewayToExit, startGatewayProcess, type AuditLine, type GatewayProcess } from '../support/gateway-process.js';
import type { Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));
const API = 'api.example.test';
const WAIT_MS = 20_000;

const policyAllowing = (path: string) => `
version: 1
rules:
  - id: api-${path}
    host: ${API}
    paths: ["/${path}/**"]
`;

/** The worker a request line's connection belongs to: its conn id starts with "w<id>-". */
const workerOf = (line: AuditLine) => /^w(\d+)-c/.exec(String(line.conn))?.[1];
const requestLines = (lines: AuditLine[]) => lines.filter((line) => line.kind === 'request');

/** The pids of the primary's children (the workers), from /proc. */
function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === parent && fields[0] !== 'Z') pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids.sort((a, b) => a - b);
}

/** True once `pid` is gone or a zombie waiting to be reaped. */
function hasExited(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return true;
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = WAIT_MS): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The sum over every series of srtgw_requests_total in a /metrics text. */
function requestsTotal(metricsText: string): number {
  let total = 0;
  for (const line of metricsText.split('\n')) {
    const match = /^srtgw_requests_total\{[^}]*\} (\S+)$/.exec(line);
    if (match) total += Number(match[1]);
  }
  return total;
}

describe.skipIf(skip !== null)('srt-gw serve --workers 2', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let metricsBase: string;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: policyAllowing('old'), names: [API], args: ['--workers', '2', '--metrics', '127.0.0.1:0'] });
    ({ upstream, gateway } = fixture);
    metricsBase = gateway.metricsUrl!.replace(/\/metrics$/, '');
  }, 60_000);

  afterAll(async () => {
    await fixture?.close();
  });

  /** `count` requests, each on its own connection (one curl each), a few at a time. */
  async function requests(path: string, count: number): Promise<number[]> {
    const statuses: number[] = [];
    for (let i = 0; i < count; i += 4) {
      const batch = Array.from({ length: Math.min(4, count - i) }, () => curlThroughProxy(gateway, [upstream.url(path)]));
      for (const result of await Promise.all(batch)) statuses.push(result.status);
    }
    return statuses;
  }

  it('serves the port from both workers, and one /metrics counts the requests of both', async () => {
    expect(childPids(gateway.pid)).toHaveLength(2);
    const before = requestsTotal(await (await fetch(`${metricsBase}/metrics`)).text());
    expect(await requests('/old/a', 12)).toEqual(Array(12).fill(200));
    const lines = await until('12 request lines', async () => {
      const found = requestLines(await gateway.auditLines()).filter((line) => line.path === '/old/a');
      return found.length >= 12 ? found : undefined;
    });
    expect(new Set(lines.map(workerOf)).size).toBe(2);
    const after = requestsTotal(await (await fetch(`${metricsBase}/metrics`)).text());
    expect(after - before).toBe(12);
    expect((await fetch(`${metricsBase}/healthz`)).status).toBe(200);
    expect((await fetch(`${metricsBase}/readyz`)).status).toBe(200);
  });

  it('SIGHUP to the primary reloads the policy in every worker', async () => {
    const reloadsBefore = (await gateway.auditLines()).filter((line) => line.kind === 'policy-reload').length;
    process.kill(gateway.pid, 'SIGHUP');
    // One reload line per worker: the file did not change, so only the forwarded signal reloads.
    await until('a reload in each worker', async () =>
      (await gateway.auditLines()).filter((line) => line.kind === 'policy-reload' && line.outcome === 'ok').length >= reloadsBefore + 2 ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 300));
    expect((await gateway.auditLines()).filter((line) => line.kind === 'policy-reload').length).toBe(reloadsBefore + 2);
    expect(gateway.stderr().match(/policy reloaded \(SIGHUP\)/g)?.length).toBe(2);
  });

  it('SIGUSR1 makes every worker open the audit log again by name', async () => {
    renameSync(gateway.logPath, `${gateway.logPath}.1`);
    process.kill(gateway.pid, 'SIGUSR1');
    await new Promise((r) => setTimeout(r, 300));
    expect(await requests('/old/rotated', 12)).toEqual(Array(12).fill(200));
    const lines = await until('12 request lines in the new file', async () => {
      const found = requestLines(await gateway.auditLines()).filter((line) => line.path === '/old/rotated');
      return found.length >= 12 ? found : undefined;
    });
    expect(new Set(lines.map(workerOf)).size).toBe(2);
    const oldFile = parseAuditLines(readFileSync(`${gateway.logPath}.1`, 'utf8'));
    expect(requestLines(oldFile).filter((line) => line.path === '/old/rotated')).toEqual([]);
  });

  it('a killed worker is replaced and the port keeps being served', async () => {
    const [victim, survivor] = childPids(gateway.pid);
    process.kill(victim!, 'SIGKILL');
    const replaced = await until('a new worker', () => {
      const pids = childPids(gateway.pid);
      return pids.length === 2 && !pids.includes(victim!) && pids.includes(survivor!) ? pids : undefined;
    });
    expect(replaced).toHaveLength(2);
    await until('ready again', async () => ((await fetch(`${metricsBase}/readyz`)).status === 200 ? true : undefined));
    expect(gateway.stderr()).toMatch(/worker \d+ ended \(signal SIGKILL\); starting another/);
    expect(await requests('/old/after-kill', 12)).toEqual(Array(12).fill(200));
    const lines = await until('12 request lines', async () => {
      const found = requestLines(await gateway.auditLines()).filter((line) => line.path === '/old/after-kill');
      return found.length >= 12 ? found : undefined;
    });
    // The replacement has a new cluster id, above the first two.
    expect(lines.some((line) => Number(workerOf(line)) > 2)).toBe(true);
  });

  it('SIGTERM drains every worker and exits 0 with an audit line for every request', async () => {
    // stop() removes the gateway's directory: a second name keeps the log's inode readable.
    const keptLog = join(mkdtempSync(join(tmpdir(), 'srt-gw-workers-')), 'audit.log');
    linkSync(gateway.logPath, keptLog);
    try {
      const statuses = await requests('/old/last', 16);
      expect(statuses).toEqual(Array(16).fill(200));
      // At once: the lines of the last requests are still in the workers' buffers (written every 100 ms).
      const exit = await gateway.stop();
      expect(exit).toEqual({ code: 0, signal: null, killed: false });
      expect(childPids(gateway.pid)).toEqual([]);
      const lines = requestLines(parseAuditLines(readFileSync(keptLog, 'utf8'))).filter((line) => line.path === '/old/last');
      expect(lines).toHaveLength(16);
      expect(new Set(lines.map(workerOf)).size).toBe(2);
    } finally {
      rmSync(dirname(keptLog), { recursive: true, force: true });
    }
  });
});

describe('srt-gw serve --workers: a crash loop', () => {
  it('workers that keep dying stop serve with exit code 1 and say why', async () => {
    const gateway = await startGatewayProcess({ policyYaml: policyAllowing('x'), args: ['--workers', '2'] });
    try {
      const killed = new Set<number>();
      const exited = await until('serve to give up', () => {
        if (hasExited(gateway.pid)) return true;
        for (const pid of childPids(gateway.pid)) {
          if (killed.has(pid)) continue;
          killed.add(pid);
          process.kill(pid, 'SIGKILL');
        }
        return undefined;
      });
      expect(exited).toBe(true);
      const exit = await gateway.stop();
      expect(exit.code).toBe(1);
      expect(gateway.stderr()).toMatch(/workers crashed 5 times within 60 s \(last: signal SIGKILL\); serve stops rather than restart in a loop/);
      expect(killed.size).toBeGreaterThanOrEqual(5);
    } finally {
      await gateway.stop();
    }
  });
});

describe('srt-gw serve --workers: what it refuses', () => {
  it('a bad policy stops the primary with exit code 2 before any worker starts', async () => {
    const result = await runGatewayToExit({ policyYaml: 'version: 1\nrules: [\n', args: ['--workers', '2'] });
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain('"listening"');
    // Told once, by the primary: no worker got as far as reading the policy.
    expect(result.stderr.match(/policy/gi)?.length ?? 0).toBeGreaterThan(0);
    expect(result.stderr.split('\n').filter((line) => line.startsWith('srt-gw')).length).toBe(1);
  });

  it.each([['0'], ['-1'], ['two'], ['1.5']])('--workers %s → exit code 2', async (value) => {
    const result = await runGatewayToExit({ policyYaml: policyAllowing('x'), args: ['--workers', value] });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--workers must be a positive whole number or "auto"');
  });

  it('--dns with more than one worker → exit code 2 naming it', async () => {
    const result = await runGatewayToExit({ policyYaml: policyAllowing('x'), args: ['--workers', '2', '--dns', '127.0.0.1:0'] });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--dns cannot be used with --workers above 1');
  });

  it('srt-gw run has no --workers', () => {
    const result = spawnSync(process.execPath, [CLI_PATH, 'run', '--workers', '2', '--', 'true'], { env: cleanEnv(), encoding: 'utf8' });
    expect(result.status).toBe(125);
    expect(result.stderr).toContain("unknown option '--workers'");
  });
});

