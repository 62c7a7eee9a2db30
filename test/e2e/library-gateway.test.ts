// The library's gateway: startGateway() in this process, real curl and dig through it against a
// local upstream; its decisions() stream and on() listeners carry the same decisions, one for one,
// as the audit log, to every consumer at once, bounded for a consumer that never reads.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSrtGwError, parsePolicy, startGateway, type Decision, type Gateway } from '../../index.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { curlThroughProxy } from '../support/gateway-process.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const execFileAsync = promisify(execFile);
const skip = capabilityGate(missingCommand('curl'), missingCommand('dig'), missingCommand('openssl'));

const API = 'api.example.test';
const POLICY = `
version: 1
rules:
  - id: api-read
    host: ${API}
    methods: [GET]
    paths: ["/v1/**"]
  - id: api-admin-deny
    host: ${API}
    paths: ["/v1/admin/**"]
    action: deny
`;

describe.skipIf(skip !== null)('library: startGateway() and its decisions', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: Upstream;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-library-'));
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = (auditLog: string, extra: { dns?: boolean } = {}) =>
    startGateway({
      policy: parsePolicy(POLICY),
      caDir: join(dir, 'ca'),
      upstreamCaFiles: [pki.ca.certPath],
      resolve: { [API]: '127.0.0.1' },
      auditLog,
      ...(extra.dns ? { dns: { host: '127.0.0.1', port: 0 } } : {}),
    });
  const curl = (gateway: Gateway, url: string) => curlThroughProxy({ proxyUrl: gateway.proxyUrl, caPath: gateway.ca.certPath }, [url]);
  const dig = async (gateway: Gateway, name: string) => {
    const { stdout } = await execFileAsync('dig', ['@127.0.0.1', '-p', String(gateway.dnsAddress!.port), '+tries=1', '+time=2', name, 'A']);
    return stdout;
  };

  it('decisions from real traffic match the audit log line for line; two iterators each see all; close ends them', async () => {
    const auditPath = join(dir, 'audit-1.jsonl');
    const gateway = await start(auditPath, { dns: true });
    expect(gateway.proxyUrl).toBe(`http://127.0.0.1:${gateway.address.port}`);

    const collect = async (stream: AsyncIterable<Decision>) => {
      const seen: Decision[] = [];
      for await (const decision of stream) seen.push(decision);
      return seen;
    };
    const first = collect(gateway.decisions());
    const second = collect(gateway.decisions());
    const listened: Decision[] = [];
    gateway.on('decision', (decision) => listened.push(decision));
    const requestPaths: string[] = [];
    gateway.on('request', (decision) => requestPaths.push(decision.path));

    const allowed = await curl(gateway, upstream.url('/v1/files/a?token=secret'));
    expect(allowed.status).toBe(200);
    expect((await curl(gateway, upstream.url('/v1/admin/users'))).status).toBe(403);
    expect((await curl(gateway, upstream.url('/other'))).status).toBe(403);
    expect((await curl(gateway, 'https://evil.test/')).connectStatus).toBe(403);
    expect((await curl(gateway, 'http://evil.test/upload')).status).toBe(403);
    expect(await dig(gateway, API)).toMatch(/198\.1[89]\.\d+\.\d+/);
    expect(await dig(gateway, 'exfil.evil.test')).toMatch(/status: NXDOMAIN/);

    await gateway.close();
    const [a, b] = await Promise.all([first, second]);
    const audit = readFileSync(auditPath, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);

    // One for one, in order, with the same fields (the DNS record renames two of them).
    const asAuditLine = (decision: Decision): Record<string, unknown> => {
      if (decision.kind !== 'dns') {
        const { time: _time, ...fields } = decision;
        return fields;
      }
      const { host, outcome, code, client, transport, qtype, rcode, tunnelSignals } = decision;
      return { kind: 'dns', client, transport, name: host, qtype, decision: outcome, code, rcode, tunnelSignals };
    };
    const withoutLogFields = audit.map(({ level: _level, time: _time, ...fields }) => fields);
    expect(a.map(asAuditLine)).toEqual(withoutLogFields);
    expect(b).toEqual(a);
    expect(listened).toEqual(a);
    for (const [index, decision] of a.entries()) expect(Math.abs(decision.time - (audit[index]!.time as number))).toBeLessThan(1000);

    // What the records say, spelled out for the cases above.
    expect(a.filter((d) => d.kind === 'request').map((d) => [d.method, d.host, d.path, d.decision, d.rule])).toEqual([
      ['GET', API, '/v1/files/a', 'allow', 'api-read'],
      ['GET', API, '/v1/admin/users', 'deny', 'api-admin-deny'],
      ['GET', API, '/other', 'deny', 'default-deny'],
      ['GET', 'evil.test', '/upload', 'deny', 'default-deny'],
    ]);
    expect(requestPaths).toEqual(['/v1/files/a', '/v1/admin/users', '/other', '/upload']);
    expect(a.filter((d) => d.kind === 'connect' && d.decision === 'deny')).toEqual([
      expect.objectContaining({ host: 'evil.test', port: 443, rule: 'default-deny', reason: 'no rule allows host evil.test on port 443', code: 'host-not-allowed' }),
    ]);
    expect(a.filter((d) => d.kind === 'dns').map((d) => [d.host, d.decision, d.outcome])).toEqual([
      [API, 'allow', 'synthetic'],
      ['exfil.evil.test', 'deny', 'denied'],
    ]);
    // A stream opened after close ends at once.
    expect(await gateway.decisions().next()).toEqual({ done: true, value: undefined });
  });

  it('a consumer that never reads holds at most bufferSize decisions; the rest are counted as dropped', async () => {
    const gateway = await start(join(dir, 'audit-2.jsonl'), { dns: true });
    try {
      const idle = gateway.decisions({ bufferSize: 8 });
      let total = 0;
      gateway.on('decision', () => total++);
      // 300 queries over TCP on one connection: past the resolver's burst, so some are rate-limited; all are decisions.
      const names = Array.from({ length: 300 }, (_, i) => `n${i}.evil.test`);
      const batch = join(dir, 'names.txt');
      writeFileSync(batch, names.map((name) => `${name} A`).join('\n'));
      await execFileAsync('dig', ['@127.0.0.1', '-p', String(gateway.dnsAddress!.port), '+tcp', '+keepopen', '+tries=1', '+time=2', '-f', batch], { maxBuffer: 1 << 24 });
      expect(total).toBeGreaterThanOrEqual(300);
      expect(idle.buffered).toBe(8);
      expect(idle.dropped).toBe(total - 8);
      // What it holds are the newest.
      const held: string[] = [];
      for (let i = 0; i < 8; i++) {
        const next = await idle.next();
        if (!next.done && next.value.kind === 'dns') held.push(next.value.host);
      }
      expect(held.at(-1)).toBe('n299.evil.test');
    } finally {
      await gateway.close();
    }
  });

  it('takes the policy as a file path; reload(path) with a broken file keeps the old policy and says why', async () => {
    const policyPath = join(dir, 'policy.yaml');
    writeFileSync(policyPath, POLICY);
    const gateway = await startGateway({ policy: policyPath, caDir: join(dir, 'ca'), auditLog: false });
    try {
      expect(gateway.policy.policy.rules.map((rule) => rule.id)).toEqual(['api-read', 'api-admin-deny']);
      writeFileSync(policyPath, 'version: 1\nrules:\n  - id: x\n    host: a.test\n    paths: ["no-slash"]\n');
      const error = await gateway.reload(policyPath).catch((e: unknown) => e);
      expect(isSrtGwError(error, 'SRTGW_POLICY_INVALID')).toBe(true);
      expect((error as Error).message).toMatch(new RegExp(`^${policyPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: `));
      expect(gateway.policy.policy.rules.map((rule) => rule.id)).toEqual(['api-read', 'api-admin-deny']);
    } finally {
      await gateway.close();
    }
  });
});
