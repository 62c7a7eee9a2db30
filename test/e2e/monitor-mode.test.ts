// `srt-gw run --monitor` is a learning mode: with an empty policy, names no rule allows resolve
// (A/AAAA only, through the gateway's upstream resolver, as synthetic addresses), the requests
// reach the upstream, and each is reported as a would-be denial; `--write-policy` drafts a policy
// from the run that a second run, without --monitor, works under. Real jail, real curl and dig;
// the upstream and the upstream DNS server are local fakes that log what reached them.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startDnsLogServer, type DnsLogServer } from '../support/dns-log-server.js';
import { CLI_PATH, JAIL_PATH, ensureBuilt, srtGwRun, type SrtGwRunResult } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('dig'), missingCommand('openssl'), missingCommand('cc'), missingCommand('git'));

const API = 'api.example.test';
/** Known to the upstream DNS server only: looked up, never connected to. */
const LOOKED_UP = 'lookup.example.test';
/** A tunnel's query name (lower case, as DNS logs compare): its TXT answer would carry data back in. */
const TUNNEL = 'mnsxg4tforvc2zdboruq.tunnel.example.test';
/** Synthetic answers of the gateway's DNS (gateway/dns/synthetic-pool.ts). */
const SYNTHETIC_V4 = /^198\.(18|19)\.\d+\.\d+$/m;

let root = '';
let caDir = '';
let emptyPolicy = '';
let pki: TestPki | undefined;
let upstream: Upstream;
let dnsLog: DnsLogServer;
let runs = 0;

beforeAll(async () => {
  if (skip !== null) return;
  ensureBuilt();
  root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-monitor-')));
  caDir = join(root, 'srt-gw-ca');
  emptyPolicy = join(root, 'empty.yaml');
  writeFileSync(emptyPolicy, 'version: 1\nrules: []\n');
  pki = createTestPki([API]);
  upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
  dnsLog = await startDnsLogServer({ [API]: '127.0.0.1', [LOOKED_UP]: '127.0.0.1', [TUNNEL]: '127.0.0.1' });
});

afterAll(async () => {
  await upstream?.close();
  await dnsLog?.close();
  pki?.cleanup();
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

/**
 * `srt-gw run` with the test CA trusted upstream, the fake DNS server as the gateway's upstream
 * resolver, and the API pinned to the local upstream (--resolve: an operator's pin, as a private
 * address must be).
 */
async function run(flags: string[], script: string): Promise<SrtGwRunResult & { audit: Record<string, unknown>[] }> {
  runs += 1;
  const cwd = join(root, `work-${runs}`);
  mkdirSync(cwd);
  execFileSync('git', ['init', '-q', cwd]);
  const log = join(root, `audit-${runs}.jsonl`);
  const result = await srtGwRun({
    flags: ['--ca-dir', caDir, '--upstream-ca', pki!.ca.certPath, '--dns-upstream', dnsLog.address, '--resolve', `${API}=127.0.0.1`, '--log', log, ...flags],
    command: ['sh', '-c', script],
    cwd,
    env: { PATH: JAIL_PATH, HOME: cwd, LANG: 'C.UTF-8', TERM: 'dumb' },
    timeoutMs: 60_000,
  });
  expect(result.timedOut, `srt-gw run timed out\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(false);
  const audit = existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as Record<string, unknown>)
    : [];
  return { ...result, audit };
}

/** Curl in the jail, printing "<label> exit=N status=S" (never failing the shell). */
function curlLine(label: string, url: string, extra = ''): string {
  return `curl -sS --max-time 20 ${extra} -o /dev/null -w '${label} status=%{http_code}\\n' '${url}'; echo "${label} exit=$?"`;
}

function curlOutcome(stdout: string, label: string): { exit: number; status: number } {
  const exit = new RegExp(`^${label} exit=(\\d+)$`, 'm').exec(stdout);
  const status = new RegExp(`^${label} status=(\\d+)$`, 'm').exec(stdout);
  if (!exit) throw new Error(`no outcome for ${label} in:\n${stdout}`);
  return { exit: Number(exit[1]), status: status ? Number(status[1]) : 0 };
}

const requestsScript = () =>
  [curlLine('get', upstream.url('/v1/models/abc?limit=5', API)), curlLine('post', upstream.url('/v1/messages/count', API), "-X POST -H 'content-type: application/json' -d '{}'")].join('\n');

describe.skipIf(skip !== null)('srt-gw run --monitor with an empty policy', () => {
  const draft = () => join(root, 'draft.yaml');

  it('resolves the name, forwards the requests, reports each as would-be denied, and writes a draft policy', async () => {
    const before = upstream.received.length;
    const result = await run(['--policy', emptyPolicy, '--monitor', '--write-policy', draft()], requestsScript());
    const describe = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
    expect(result.code, describe).toBe(0);
    expect(curlOutcome(result.stdout, 'get'), describe).toEqual({ exit: 0, status: 200 });
    expect(curlOutcome(result.stdout, 'post'), describe).toEqual({ exit: 0, status: 200 });
    expect(upstream.received.slice(before).map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/models/abc?limit=5', 'POST /v1/messages/count']);

    expect(result.stderr).toContain('srt-gw: --monitor: these would have been denied');
    // One group per host, port, rule and reason: the first request is its example.
    expect(result.stderr).toMatch(new RegExp(`${API}:${upstream.port} {2}GET /v1/models/abc \\(2x\\) {2}would be denied {2}\\[default-deny\\]`));

    expect(result.audit).toContainEqual(expect.objectContaining({ kind: 'dns', name: API, qtype: 'A', decision: 'denied', rcode: 'NOERROR', monitored: true }));
    expect(result.audit).toContainEqual(
      expect.objectContaining({ kind: 'request', host: API, port: upstream.port, method: 'GET', path: '/v1/models/abc', rule: 'default-deny', monitored: true, status: 200 }),
    );

    expect(result.stderr).toContain(`draft policy written to ${draft()}`);
    const text = readFileSync(draft(), 'utf8');
    expect(text).toContain(`host: ${API}\n    port: ${upstream.port}\n    methods: [GET, POST]`);
    const check = spawnSync(process.execPath, [CLI_PATH, 'policy', 'check', draft()], { encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}\n${text}`).toBe(0);
  });

  it('without --monitor the same run has no network for the name: it does not resolve, and nothing reaches the upstream', async () => {
    const before = upstream.received.length;
    const denyDraft = join(root, 'denied-draft.yaml');
    const result = await run(['--policy', emptyPolicy, '--write-policy', denyDraft], requestsScript());
    expect(result.code, result.stderr).toBe(0);
    expect(curlOutcome(result.stdout, 'get')).toEqual({ exit: 6, status: 0 }); // "Could not resolve host"
    expect(upstream.received.length).toBe(before);
    expect(result.stderr).toContain('srt-gw: denied during this run');
    expect(result.stderr).not.toContain('would be denied');
    expect(result.audit).toContainEqual(expect.objectContaining({ kind: 'dns', name: API, decision: 'denied', rcode: 'NXDOMAIN' }));
    expect(result.audit.filter((line) => line.monitored === true)).toEqual([]);
    // Without --monitor the draft still says what was tried.
    expect(readFileSync(denyDraft, 'utf8')).toContain(`# Looked up but never requested (no rule drafted):\n#   ${API}\n`);
  });

  it('the draft written by the --monitor run lets a second run, without --monitor, make the same requests', async () => {
    expect(existsSync(draft()), 'the --monitor run wrote the draft').toBe(true);
    const before = upstream.received.length;
    const result = await run(['--policy', draft()], requestsScript());
    const describe = `stdout: ${result.stdout}\nstderr: ${result.stderr}\n${readFileSync(draft(), 'utf8')}`;
    expect(result.code, describe).toBe(0);
    expect(curlOutcome(result.stdout, 'get'), describe).toEqual({ exit: 0, status: 200 });
    expect(curlOutcome(result.stdout, 'post'), describe).toEqual({ exit: 0, status: 200 });
    expect(upstream.received.slice(before).map((r) => r.path)).toEqual(['/v1/models/abc?limit=5', '/v1/messages/count']);
    expect(result.audit).toContainEqual(expect.objectContaining({ kind: 'request', path: '/v1/models/abc', decision: 'allow', rule: `${API}-${upstream.port}` }));
    expect(result.stderr).not.toMatch(/denied/);
  });
});

describe.skipIf(skip !== null)('DNS in --monitor mode', () => {
  it('A queries for a name no rule allows are resolved upstream and answered with a synthetic address; a TXT query is never sent upstream', async () => {
    dnsLog.reset();
    const dig = (label: string, args: string) => `echo "== ${label}"; dig +time=5 +tries=1 ${args}`;
    const script = [dig('a', `+short ${LOOKED_UP} A`), dig('txt', `${TUNNEL} TXT`)].join('\n');
    const result = await run(['--policy', emptyPolicy, '--monitor'], script);
    expect(result.code, result.stderr).toBe(0);
    const [, a = '', txt = ''] = result.stdout.split(/^== (?:a|txt)$/m);
    expect(a.trim()).toMatch(SYNTHETIC_V4);
    expect(txt).toMatch(/status: NOERROR/);
    expect(txt).toMatch(/ANSWER: 0/);
    expect(dnsLog.queries).toContainEqual({ name: LOOKED_UP, type: 'A' });
    // SECURITY: the tunnel's name never left the machine, in any query type.
    expect(dnsLog.queries.filter((q) => q.name === TUNNEL)).toEqual([]);
    expect(result.audit).toContainEqual(expect.objectContaining({ kind: 'dns', name: TUNNEL, qtype: 'TXT', decision: 'denied', rcode: 'NOERROR', monitored: true }));
    expect(result.stderr).toMatch(new RegExp(`${LOOKED_UP.replace(/\./g, '\\.')} {2}DNS lookup {2}would be denied`));
  });

  it('without --monitor, no query for a name no rule allows leaves the machine', async () => {
    dnsLog.reset();
    const result = await run(['--policy', emptyPolicy], `dig +time=5 +tries=1 ${LOOKED_UP} A`);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/status: NXDOMAIN/);
    expect(dnsLog.queries).toEqual([]);
  });
});
