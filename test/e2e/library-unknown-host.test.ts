// onUnknownHost: a harness is asked, once per host:port, about hosts no rule mentions. Real curl
// through an in-process gateway (CONNECT and plain absolute-form HTTP), real dig against its DNS,
// and (with bubblewrap and root) a real jailed curl: approve → through, and not asked again;
// decline or no answer → refused, and the upstream never hears of it.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePolicy, startGateway, type Decision, type Gateway, type GatewayOptions, type RunOptions } from '../../index.js';
import { builtLibrary, type Library } from '../support/built-library.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { curlThroughProxy } from '../support/gateway-process.js';
import { createJailWorkdir, jailTestEnv } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const execFileAsync = promisify(execFile);
const skip = capabilityGate(missingCommand('curl'), missingCommand('dig'), missingCommand('openssl'));
const skipJail = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('cc'), missingCommand('git'));

const KNOWN = 'known.example.test';
const NEW = 'new.example.test';
const DECLINED = 'declined.example.test';
const SLOW = 'slow.example.test';
const BLOCKED = 'blocked.example.test';
const NAMES = [KNOWN, NEW, DECLINED, SLOW, BLOCKED, 'jailed.example.test'];

const POLICY = `
version: 1
rules:
  - id: known
    host: ${KNOWN}
  - id: blocked
    host: ${BLOCKED}
    action: deny
  - id: no-secrets
    host: ${NEW}
    paths: ["/v1/secret/**"]
    action: deny
`;

describe.skipIf(skip !== null)('library: onUnknownHost', () => {
  let dir: string;
  let pki: TestPki;
  let upstream: Upstream;
  let plain: Upstream;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-unknown-host-'));
    pki = createTestPki(NAMES);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: NAMES });
    plain = await startUpstream({ plain: true, names: NAMES });
  });

  afterAll(async () => {
    await upstream?.close();
    await plain?.close();
    pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const options = (onUnknownHost: GatewayOptions['onUnknownHost'], extra: Partial<GatewayOptions> = {}): GatewayOptions => ({
    policy: parsePolicy(POLICY),
    caDir: join(dir, 'ca'),
    upstreamCaFiles: [pki.ca.certPath],
    resolve: Object.fromEntries(NAMES.map((name) => [name, '127.0.0.1'])),
    auditLog: false,
    onUnknownHost,
    ...extra,
  });
  const curl = (gateway: Gateway, url: string) => curlThroughProxy({ proxyUrl: gateway.proxyUrl, caPath: gateway.ca.certPath }, [url]);
  const authorities = (server: Upstream) => server.received.map((request) => request.authority?.replace(/:\d+$/, ''));

  it('approve: the request goes through under an approved-<host>-<port> rule, and the host:port is not asked about again', async () => {
    const asked: string[] = [];
    const gateway = await startGateway(
      options(async (host, port) => {
        asked.push(`${host}:${port}`);
        return host === NEW;
      }),
    );
    const decisions: Decision[] = [];
    gateway.on('decision', (decision) => decisions.push(decision));
    try {
      expect((await curl(gateway, upstream.url('/v1/a', NEW))).status).toBe(200);
      expect((await curl(gateway, upstream.url('/v1/b', NEW))).status).toBe(200);
      expect((await curl(gateway, upstream.url('/v1/c', KNOWN))).status).toBe(200);
      expect(asked).toEqual([`${NEW}:${upstream.port}`]);
      const rule = `approved-${NEW}-${upstream.port}`;
      expect(gateway.policy.policy.rules.map((r) => r.id)).toEqual(['known', 'blocked', 'no-secrets', rule]);
      // The approval is an allow rule: a deny rule of the policy still wins over it.
      const secret = await curl(gateway, upstream.url('/v1/secret/key', NEW));
      expect([secret.status, secret.json<{ rule: string }>().rule]).toEqual([403, 'no-secrets']);
      expect(decisions.filter((d) => d.kind === 'connect' && d.host === NEW).map((d) => [d.decision, d.rule, d.reason])).toEqual([
        ['allow', rule, 'approved for this run by onUnknownHost; each request is checked'],
        ['allow', null, 'some rule may allow requests to this host; each request is checked'],
        ['allow', null, 'some rule may allow requests to this host; each request is checked'],
      ]);
      expect(decisions.flatMap((d) => (d.kind === 'request' && d.host === NEW ? [[d.path, d.rule]] : []))).toEqual([
        ['/v1/a', rule],
        ['/v1/b', rule],
        ['/v1/secret/key', 'no-secrets'],
      ]);
      // Approvals survive a reload: they are for the gateway's life.
      await gateway.reload(parsePolicy(POLICY));
      expect(gateway.policy.policy.rules.map((r) => r.id)).toContain(rule);
      // Plain HTTP through the proxy (absolute-form) is asked about too, for its own port.
      expect((await curl(gateway, plain.url('/v1/plain', NEW))).status).toBe(200);
      expect(asked).toEqual([`${NEW}:${upstream.port}`, `${NEW}:${plain.port}`]);
    } finally {
      await gateway.close();
    }
  });

  it('decline: refused with a 403 that says so, the upstream gets nothing, and it is not asked again', async () => {
    const asked: string[] = [];
    const gateway = await startGateway(options((host, port) => (asked.push(`${host}:${port}`), false)));
    upstream.reset();
    plain.reset();
    try {
      const first = await curl(gateway, upstream.url('/v1/a', DECLINED));
      expect(first.connectStatus).toBe(403);
      expect(first.headerBlocks[0]).toMatch(/x-srt-gw-reason: .*onUnknownHost declined it/i);
      expect((await curl(gateway, upstream.url('/v1/b', DECLINED))).connectStatus).toBe(403);
      const plainDenied = await curl(gateway, plain.url('/v1/plain', DECLINED));
      expect(plainDenied.status).toBe(403);
      expect(plainDenied.json<{ rule: string }>().rule).toBe('default-deny');
      expect(asked).toEqual([`${DECLINED}:${upstream.port}`, `${DECLINED}:${plain.port}`]);
      expect(authorities(upstream)).toEqual([]);
      expect(authorities(plain)).toEqual([]);
    } finally {
      await gateway.close();
    }
  });

  it('no answer within the timeout is a deny; concurrent requests for the host share the one question', async () => {
    let asked = 0;
    // Answers curl had when the question was asked: none, for each request waits for it.
    let answered = 0;
    let answeredWhenAsked = -1;
    const gateway = await startGateway(options(() => (asked++, (answeredWhenAsked = answered), new Promise<boolean>(() => undefined)), { unknownHostTimeoutMs: 400 }));
    upstream.reset();
    try {
      const request = (path: string) => curl(gateway, upstream.url(path, SLOW)).finally(() => answered++);
      const results = await Promise.all([request('/1'), request('/2'), request('/3')]);
      expect(answeredWhenAsked).toBe(0);
      expect(results.map((r) => r.connectStatus)).toEqual([403, 403, 403]);
      // The timeout's denial (a question that was never asked would say something else).
      for (const result of results) expect(result.headerBlocks[0]).toMatch(/gave no answer within 0\.4 s/);
      expect(asked).toBe(1);
      expect(authorities(upstream)).toEqual([]);
    } finally {
      await gateway.close();
    }
  });

  it('a concurrent approval lets every waiting request through', async () => {
    let asked = 0;
    const gateway = await startGateway(options(async () => (asked++, await new Promise((resolve) => setTimeout(resolve, 300)), true)));
    try {
      const results = await Promise.all([1, 2, 3].map((n) => curl(gateway, upstream.url(`/v1/${n}`, NEW))));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(asked).toBe(1);
    } finally {
      await gateway.close();
    }
  });

  it('is never asked about a host a deny rule names, one a rule allows, or in monitor mode', async () => {
    const asked: string[] = [];
    const ask = (host: string) => (asked.push(host), true);
    const gateway = await startGateway(options(ask));
    const monitoring = await startGateway(options(ask, { monitor: true }));
    try {
      expect((await curl(gateway, upstream.url('/', BLOCKED))).connectStatus).toBe(403);
      expect((await curl(gateway, upstream.url('/', KNOWN))).status).toBe(200);
      expect((await curl(monitoring, upstream.url('/', NEW))).status).toBe(200);
      expect(asked).toEqual([]);
    } finally {
      await gateway.close();
      await monitoring.close();
    }
  });

  it('DNS does not wait for the question: a name no rule allows gets a synthetic address, and nobody is asked until a connection', async () => {
    const asked: string[] = [];
    const gateway = await startGateway(options((host) => (asked.push(host), true), { dns: { host: '127.0.0.1', port: 0 } }));
    const without = await startGateway({ ...options(undefined), dns: { host: '127.0.0.1', port: 0 } });
    const dig = async (server: Gateway, name: string) =>
      (await execFileAsync('dig', ['@127.0.0.1', '-p', String(server.dnsAddress!.port), '+tries=1', '+time=2', '+short', name, 'A'])).stdout.trim();
    try {
      expect(await dig(gateway, 'unknown-name.example.test')).toMatch(/^198\.1[89]\.\d+\.\d+$/);
      expect(await dig(without, 'unknown-name.example.test')).toBe('');
      expect(asked).toEqual([]);
    } finally {
      await gateway.close();
      await without.close();
    }
  });

  describe.skipIf(skipJail !== null)('in the jail (run)', () => {
    let work: string;
    let run: Library['run'];
    beforeAll(async () => {
      ({ run } = await builtLibrary());
      work = createJailWorkdir(dir, 'work');
    });
    /** The gateway options above, for a run in the jail's work directory. */
    const runOptions = (onUnknownHost: GatewayOptions['onUnknownHost'], stdio: RunOptions['stdio']): RunOptions => ({ ...options(onUnknownHost), cwd: work, env: jailTestEnv(), stdio });

    it('a jailed curl to a host no rule names waits for the answer; approved, it gets through; asked once', async () => {
      const asked: string[] = [];
      const onUnknownHost = async (host: string, port: number) => {
        asked.push(`${host}:${port}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
        return true;
      };
      const child = run('curl', ['-sS', '--max-time', '20', upstream.url('/v1/jailed', 'jailed.example.test'), upstream.url('/v1/again', 'jailed.example.test')], runOptions(onUnknownHost, ['ignore', 'pipe', 'pipe']));
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const result = await child.exited;
      expect(result.exitCode, stderr).toBe(0);
      expect(stdout).toContain('"path":"/v1/jailed"');
      expect(stdout).toContain('"path":"/v1/again"');
      expect(asked).toEqual([`jailed.example.test:${upstream.port}`]);
      expect(result.denials).toEqual([]);
    });

    it('declined in the jail: the connection is refused and it shows in the run\'s denials', async () => {
      const child = run('curl', ['-sS', '--max-time', '20', upstream.url('/v1/x', DECLINED)], runOptions(() => false, ['ignore', 'ignore', 'ignore']));
      const result = await child.exited;
      expect(result.exitCode).not.toBe(0);
      expect(result.denials).toEqual([
        expect.objectContaining({ kind: 'connection', host: DECLINED, port: upstream.port, rule: 'default-deny', reason: expect.stringContaining('onUnknownHost declined it') }),
      ]);
    });
  });
});
