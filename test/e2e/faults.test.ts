// Faults around a running gateway, each with the behaviour it must keep: the gateway's DNS
// server goes down and comes back, the audit log's disk fills up and frees again, the CA
// directory is removed, the wall clock jumps forward and back. A policy file that is deleted
// or truncated is in policy-reload.test.ts, with the other reload cases.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startDnsLogServer, type DnsLogServer } from '../support/dns-log-server.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { curlThroughProxy, parseAuditLines, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { connectTunnel, openTlsTunnel, RawConnection } from '../support/raw-tunnel.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const run = promisify(execFile);
const API = 'api.example.test';
const OTHER = 'other.example.test';
/** Only a hang takes this long. */
const DEADLINE_MS = 60_000;
/** Long enough for two of the connection sweeper's passes (one a second). */
const SWEEPS_MS = 2500;
const ALERTS_PATH = join(import.meta.dirname, '..', '..', 'dashboards', 'prometheus', 'alerts.yml');

const ALLOW_ALL = `
version: 1
allowPrivateDestinations: [127.0.0.0/8]
rules:
  - id: api
    host: ${API}
  - id: other
    host: ${OTHER}
`;

/** Polls `attempt` until it returns a value (not undefined) or the deadline passes. */
async function eventually<T>(what: string, attempt: () => Promise<T | undefined>, deadlineMs = DEADLINE_MS): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function metricValue(gateway: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(gateway.metricsUrl ?? '')).text();
  const match = new RegExp(`^${name} ([0-9.e+-]+)$`, 'm').exec(text);
  if (!match) throw new Error(`${name} is not in the metrics:\n${text}`);
  return Number(match[1]);
}

/** One GET on a kept-alive tunnel connection. */
async function get(connection: RawConnection, path: string, host = API): Promise<number> {
  connection.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
  return (await connection.readResponse(30_000)).status;
}

describe.skipIf(capabilityGate(missingCommand('curl'), missingCommand('openssl')) !== null)('the gateway\'s DNS server is down, then back', () => {
  let pki: TestPki;
  let upstream: Upstream;
  let dns: DnsLogServer | null;
  let gateway: GatewayProcess;
  const answers = { [API]: '127.0.0.1', [OTHER]: '127.0.0.1' };

  beforeAll(async () => {
    pki = createTestPki([API, OTHER]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API, OTHER] });
    dns = await startDnsLogServer(answers, { ttl: 1 });
    // No --resolve: the name goes to the DNS server on every lookup that is not cached.
    gateway = await startGatewayProcess({ policyYaml: ALLOW_ALL, args: ['--upstream-ca', pki.ca.certPath, '--dns-upstream', dns.address, '--metrics', '127.0.0.1:0'] });
  });

  afterAll(async () => {
    await gateway?.stop();
    await dns?.close();
    await upstream?.close();
    pki?.cleanup();
  });

  it('a host that needs a lookup gets 502 naming it while the server is down, and works once it is back', async () => {
    // A kept-alive upstream connection needs no lookup: it is opened while DNS works and must
    // keep serving through the outage.
    const kept = await openTlsTunnel(gateway.proxyPort, `${API}:${upstream.port}`, { ca: readFileSync(gateway.caPath, 'utf8') });
    expect(await get(kept, '/before')).toBe(200);
    const port = dns!.port;
    await dns!.close();
    dns = null;

    // OTHER was never looked up: its request needs the DNS server that is gone.
    const failed = await curlThroughProxy(gateway, [upstream.url('/while-down', OTHER)]);
    expect(failed.status).toBe(502);
    expect(failed.headers['x-srt-gw-reason']).toMatch(new RegExp(`^could not resolve ${OTHER.replaceAll('.', '\\.')}`));
    const line = await gateway.waitForAudit((l) => l.kind === 'request' && l.path === '/while-down');
    expect(line).toMatchObject({ status: 502, decision: 'error', step: 'upstream', upstreamError: 'dns' });
    expect(await metricValue(gateway, 'srtgw_upstream_errors_total\\{kind="dns"\\}')).toBeGreaterThanOrEqual(1);
    expect(await get(kept, '/during-outage')).toBe(200);
    kept.destroy();

    // The server comes back on the same port: the failure was not cached, the next request asks again.
    dns = await startDnsLogServer(answers, { ttl: 1, port });
    const recovered = await curlThroughProxy(gateway, [upstream.url('/after', OTHER)]);
    expect(recovered.status).toBe(200);
    expect(dns.queriedNames()).toContain(OTHER);
  }, 3 * DEADLINE_MS);
});

describe.skipIf(capabilityGate(missingRoot(), missingCommand('unshare'), missingCommand('promtool')) !== null)('the audit log\'s disk is full', () => {
  let pki: TestPki | undefined;
  let upstream: Upstream | undefined;
  let gateway: GatewayProcess | undefined;
  let logDir: string | undefined;

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    pki?.cleanup();
    if (logDir !== undefined) rmSync(logDir, { recursive: true, force: true });
  });

  it('keeps serving, counts the lost lines, tells stderr, and writes whole lines again once there is space', async () => {
    // A 64 KiB tmpfs in the gateway's own mount namespace (gone when it exits), 40 KiB of it
    // taken by a filler file: the audit log fills it within a hundred requests.
    logDir = mkdtempSync(join(tmpdir(), 'srt-gw-full-disk-'));
    const mountAndRun = 'mount -t tmpfs -o size=64k srt-gw-audit "$SRT_GW_LOG_DIR" && head -c 40960 /dev/zero > "$SRT_GW_LOG_DIR/filler" && exec "$0" "$@"';
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    const dir = logDir;
    gateway = await startGatewayProcess({
      policyYaml: ALLOW_ALL,
      // Given last, this --log wins over the one every test gateway gets.
      args: ['--upstream-ca', pki.ca.certPath, '--resolve', `${API}=127.0.0.1`, '--log', join(dir, 'audit.log'), '--metrics', '127.0.0.1:0'],
      env: { SRT_GW_LOG_DIR: dir },
      wrapper: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', mountAndRun],
    });
    const gw = gateway;
    // The tmpfs is visible only through the gateway's root.
    const inGatewayNamespace = (name: string) => join(`/proc/${gw.pid}/root`, dir, name);
    expect(existsSync(inGatewayNamespace('filler'))).toBe(true);
    expect(existsSync(join(logDir, 'filler'))).toBe(false);

    const connection = await openTlsTunnel(gw.proxyPort, `${API}:${upstream.port}`, { ca: readFileSync(gw.caPath, 'utf8') });
    const statuses = new Set<number>();
    let lost = 0;
    for (let i = 0; i < 5000 && lost === 0; i++) {
      statuses.add(await get(connection, `/fill/${i}`));
      if (i % 20 === 19) lost = await metricValue(gw, 'srtgw_audit_lines_lost_total');
    }
    lost = await eventually('lines counted as lost', async () => {
      const value = await metricValue(gw, 'srtgw_audit_lines_lost_total');
      return value > 0 ? value : undefined;
    });
    expect([...statuses]).toEqual([200]);
    expect(lost).toBeGreaterThan(0);
    await eventually('the disk-full report on stderr', async () => (/audit log .*no space left on device.*; lines are being lost/i.test(gw.stderr()) ? true : undefined));

    // Space again: the next request's line is written, whole, on a line of its own.
    rmSync(inGatewayNamespace('filler'));
    expect(await get(connection, '/after-space-freed')).toBe(200);
    // Polled: the line is written within the log's 0.1 s batching.
    const lines = await eventually('the line of the request after the space was freed', async () => {
      const parsed = parseAuditLines(readFileSync(inGatewayNamespace('audit.log'), 'utf8'));
      return parsed.some((line) => line.path === '/after-space-freed') ? parsed : undefined;
    });
    expect(lines.find((line) => line.path === '/after-space-freed')).toMatchObject({ kind: 'request', status: 200 });
    // The write the disk cut short left half a line; what came after it starts on a new line
    // instead of being glued to that half (and lost to every JSON reader).
    const glued = readFileSync(inGatewayNamespace('audit.log'), 'utf8').split('\n').filter((line) => line.split('{"level":').length > 2);
    expect(glued).toEqual([]);
    connection.destroy();
  }, 3 * DEADLINE_MS);

  it('the SrtGwAuditLinesLost alert fires on the first lost line and not without one (promtool test rules)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srt-gw-alert-test-'));
    try {
      const testFile = join(dir, 'audit-lines-lost.test.yml');
      writeFileSync(testFile, `
rule_files: [${JSON.stringify(ALERTS_PATH)}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'srtgw_audit_lines_lost_total{instance="gw:9464", job="srt-gw"}'
        values: '0 0 0 0 7 7 7'
      - series: 'srtgw_audit_lines_lost_total{instance="quiet:9464", job="srt-gw"}'
        values: '0 0 0 0 0 0 0'
    alert_rule_test:
      - eval_time: 3m
        alertname: SrtGwAuditLinesLost
        exp_alerts: []
      - eval_time: 5m
        alertname: SrtGwAuditLinesLost
        exp_alerts:
          - exp_labels: { severity: critical, instance: "gw:9464" }
            exp_annotations:
              summary: "srt-gw is losing audit log lines on gw:9464"
              description: "7 audit line(s) in 10 minutes were never written: the log's disk is full or failing, or the destination (a pipe, a terminal) takes lines too slowly; the gateway's stderr names the error. The gateway keeps enforcing its policy, but those decisions have no record. Free space on the log's file system; lines flow again as soon as writes succeed."
`);
      const { stdout } = await run('promtool', ['test', 'rules', testFile]);
      expect(stdout).toMatch(/SUCCESS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(capabilityGate(missingCommand('curl'), missingCommand('openssl')) !== null)('the CA directory is removed while the gateway runs', () => {
  let fixture: GatewayFixture | undefined;
  let caCopyDir: string;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: ALLOW_ALL, names: [API, OTHER] });
  });

  afterAll(async () => {
    await fixture?.close();
    if (caCopyDir !== undefined) rmSync(caCopyDir, { recursive: true, force: true });
  });

  it('hosts never seen before still get leaves from the CA held in memory, which clients already trust', async () => {
    const { gateway, upstream, gatewayCa } = fixture!;
    expect((await curlThroughProxy(gateway, [upstream.url('/before', API)])).status).toBe(200);
    caCopyDir = mkdtempSync(join(tmpdir(), 'srt-gw-ca-copy-'));
    const trusted = { proxyUrl: gateway.proxyUrl, caPath: join(caCopyDir, 'ca.pem') };
    writeFileSync(trusted.caPath, gatewayCa);

    rmSync(gateway.caDir, { recursive: true, force: true });
    expect(existsSync(gateway.caDir)).toBe(false);
    // OTHER was never seen: its leaf is issued now, and curl verifies it against the old CA.
    const res = await curlThroughProxy(trusted, [upstream.url('/after', OTHER)]);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(200);
    // A policy reload does not touch the CA either.
    process.kill(gateway.pid, 'SIGHUP');
    await gateway.waitForAudit((l) => l.kind === 'policy-reload' && l.outcome === 'ok', DEADLINE_MS);
    expect((await curlThroughProxy(trusted, [upstream.url('/after-reload', OTHER)])).status).toBe(200);
    // Nothing was written back: the next start creates a new CA there, which clients must trust anew.
    expect(existsSync(gateway.caDir)).toBe(false);
  }, 2 * DEADLINE_MS);
});

// The tunnel to API is allowed, every request on it denied by the gateway itself: the upstream
// (whose test certificate the shifted clock would judge) is never contacted.
const CLOCK_POLICY = `
version: 1
rules:
  - id: api-nothing
    host: ${API}
    paths: ["/nothing-here"]
`;

const LIBFAKETIME = ['/usr/lib/x86_64-linux-gnu/faketime', '/usr/lib/aarch64-linux-gnu/faketime', '/usr/lib/faketime']
  .map((dir) => join(dir, 'libfaketime.so.1'))
  .find((path) => existsSync(path));

describe.skipIf(capabilityGate(missingCommand('curl'), missingCommand('openssl'), LIBFAKETIME === undefined ? 'libfaketime is not installed (Debian: apt-get install faketime)' : null) !== null)('the wall clock jumps', () => {
  let pki: TestPki;
  let upstream: Upstream;
  let gateway: GatewayProcess;
  let clockDir: string;
  let clockFile: string;
  const sockets: { destroy(): void }[] = [];

  /** Sets the gateway's wall clock to the real one plus `offset` (libfaketime's "+8d", "-3h"). */
  const setClock = (offset: string) => writeFileSync(clockFile, `${offset}\n`);

  /** The leaf the gateway presents for API on a new connection, with its validity. */
  async function presentedLeaf(): Promise<{ validFrom: number; validTo: number; connection: RawConnection }> {
    const tunnel = await connectTunnel(gateway.proxyPort, `${API}:${upstream.port}`);
    expect(tunnel.status).toBe(200);
    // Not verified here: the client's clock is the real one, the gateway's is shifted.
    const socket = tls.connect({ socket: tunnel.socket, servername: API, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    socket.on('error', () => undefined);
    sockets.push(socket);
    const certificate = socket.getPeerCertificate();
    return { validFrom: Date.parse(certificate.valid_from), validTo: Date.parse(certificate.valid_to), connection: new RawConnection(socket) };
  }

  /** The gateway's wall clock now, as its audit log writes it (the time of a fresh request line). */
  async function gatewayNow(connection: RawConnection, marker: string): Promise<number> {
    expect(await get(connection, `/clock/${marker}`)).toBe(403);
    const line = await gateway.waitForAudit((l) => l.kind === 'request' && l.path === `/clock/${marker}`);
    return Number(line.time);
  }

  beforeAll(async () => {
    pki = createTestPki([API]);
    upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [API] });
    clockDir = mkdtempSync(join(tmpdir(), 'srt-gw-clock-'));
    clockFile = join(clockDir, 'offset');
    setClock('+0');
    // Only the wall clock moves (an NTP step does the same): timers and the monotonic clock do not.
    gateway = await startGatewayProcess({
      policyYaml: CLOCK_POLICY,
      args: ['--upstream-ca', pki.ca.certPath, '--resolve', `${API}=127.0.0.1`],
      env: { LD_PRELOAD: LIBFAKETIME!, FAKETIME_TIMESTAMP_FILE: clockFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
    });
  });

  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
    pki?.cleanup();
    if (clockDir !== undefined) rmSync(clockDir, { recursive: true, force: true });
  });

  it('forward past the leaf lifetime: a kept-alive connection lives on, and new connections get a leaf valid at the new time', async () => {
    const first = await presentedLeaf();
    const before = await gatewayNow(first.connection, 'start');
    expect(first.validFrom).toBeLessThanOrEqual(before);
    expect(first.validTo).toBeGreaterThan(before);

    // The connection stays idle across the jump while the sweep (once a second) looks at it: one
    // that judged idleness by the wall clock would record its last byte before the jump and find
    // it 8 days idle after. The waits only give such a sweep the chance to be wrong; a slow
    // machine makes the test weaker, never red.
    await new Promise((r) => setTimeout(r, SWEEPS_MS));
    setClock('+8d'); // past the 7-day leaf lifetime
    await new Promise((r) => setTimeout(r, SWEEPS_MS));
    const after = await gatewayNow(first.connection, 'forward'); // the same kept-alive connection, still open
    expect(after - before).toBeGreaterThan(7 * 24 * 3600_000);

    const second = await presentedLeaf();
    expect(second.validFrom).toBeLessThanOrEqual(after);
    expect(second.validTo).toBeGreaterThan(after);
  }, 2 * DEADLINE_MS);

  it('backward: a cached leaf not yet valid at the new time is issued again, and idle connections still close on time', async () => {
    setClock('+8d');
    const ahead = await presentedLeaf(); // cached at +8 d, valid from +8 d - 1 h
    const aheadNow = await gatewayNow(ahead.connection, 'ahead');
    expect(ahead.validFrom).toBeLessThanOrEqual(aheadNow);
    await new Promise((r) => setTimeout(r, SWEEPS_MS)); // a sweep records its last byte at +8 d

    setClock('-3h');
    const behind = await presentedLeaf();
    const behindNow = await gatewayNow(behind.connection, 'behind');
    expect(aheadNow - behindNow).toBeGreaterThan(7 * 24 * 3600_000);
    expect(behind.validFrom).toBeLessThanOrEqual(behindNow);
    expect(behind.validTo).toBeGreaterThan(behindNow);

    // The keep-alive limit (30 s) counts on the monotonic clock: the connection last used 8 days
    // "ahead" is closed on time, although by the wall clock its last byte is still in the future.
    expect(await ahead.connection.waitForClose(120_000)).toBe(true);
  }, 4 * DEADLINE_MS);
});
