// A name a rule allows is not an address a rule allows: when an allowed name resolves to loopback
// (or the LAN, or cloud metadata), the gateway refuses to connect, unless the policy opens that
// range (allowPrivateDestinations, a rule naming it) or --resolve pins the name there. The
// gateway's resolver is pointed at a DNS server that answers 127.0.0.1, where a service listens
// that must never see a connection it was not opened for.
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startDnsLogServer, type DnsLogServer } from '../support/dns-log-server.js';
import { curlThroughProxy, parseAuditLines, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { createJailWorkdir, describeRun, jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, srtGwRun } from '../support/srt-gw-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'));
const skipJail = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('git'));

const EVIL = 'evil.example.test';
const MAPPED = 'mapped.example.test';
const PINNED = 'pinned.example.test';
const REASON = `destination 127.0.0.1 is a private address`;

const WILDCARD_POLICY = `
version: 1
rules:
  - id: example-any
    host: "*.example.test"
`;

let pki: TestPki;
let upstream: Upstream;
let plainUpstream: Upstream;
let dns: DnsLogServer;

beforeAll(async () => {
  pki = createTestPki([EVIL, MAPPED, PINNED]);
  upstream = await startUpstream({ cert: pki.server.cert, key: pki.server.key, names: [EVIL] });
  plainUpstream = await startUpstream({ plain: true, names: [EVIL] });
  // The DNS an attacker controls: an allowed name, pointed at the gateway host's loopback.
  dns = await startDnsLogServer({ [EVIL]: '127.0.0.1', [MAPPED]: '::ffff:127.0.0.1' });
});

afterAll(async () => {
  await upstream?.close();
  await plainUpstream?.close();
  await dns?.close();
  pki?.cleanup();
});

describe.skipIf(skip !== null)('srt-gw serve: an allowed name that resolves to a private address', () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGatewayProcess({
      policyYaml: WILDCARD_POLICY,
      args: ['--upstream-ca', pki.ca.certPath, '--dns-upstream', dns.address, '--resolve', `${PINNED}=127.0.0.1`, '--metrics', '127.0.0.1:0'],
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('plain http: 403 naming the address, one audit line, and the loopback service sees no connection', async () => {
    plainUpstream.reset();
    const res = await curlThroughProxy(gateway, [plainUpstream.url('/steal', EVIL)]);
    expect(res.status).toBe(403);
    expect(res.headers['x-srt-gw-reason']).toBe(REASON);
    expect(res.json<{ error: string; reason: string }>()).toMatchObject({ error: 'denied', reason: REASON });
    expect(plainUpstream.connections).toBe(0);
    const line = await gateway.waitForAudit((entry) => entry.path === '/steal');
    expect(line).toMatchObject({ decision: 'deny', step: 'destination', status: 403, reason: REASON, host: EVIL });
    expect((await gateway.auditLines()).filter((entry) => entry.path === '/steal')).toHaveLength(1);
  });

  it('https through CONNECT: the request inside the tunnel gets the same 403, the service no connection', async () => {
    upstream.reset();
    const res = await curlThroughProxy(gateway, [upstream.url('/steal-tls', EVIL)]);
    expect(res.connectStatus).toBe(200);
    expect(res.status).toBe(403);
    expect(res.headers['x-srt-gw-reason']).toBe(REASON);
    expect(upstream.connections).toBe(0);
    expect(await gateway.waitForAudit((entry) => entry.path === '/steal-tls')).toMatchObject({ decision: 'deny', step: 'destination', reason: REASON });
  });

  it('an IPv4-mapped IPv6 answer (::ffff:127.0.0.1) is refused the same way', async () => {
    plainUpstream.reset();
    const res = await curlThroughProxy(gateway, [plainUpstream.url('/mapped', MAPPED)]);
    expect(res.status).toBe(403);
    expect(res.headers['x-srt-gw-reason']).toMatch(/^destination \S+ is a private address$/);
    expect(plainUpstream.connections).toBe(0);
  });

  it('a WebSocket upgrade is refused the same way', async () => {
    plainUpstream.reset();
    const head = await rawExchange(
      gateway.proxyPort,
      `GET http://${EVIL}:${plainUpstream.port}/ws HTTP/1.1\r\nHost: ${EVIL}:${plainUpstream.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(head).toMatch(/^HTTP\/1\.1 403 /);
    expect(head).toContain(`x-srt-gw-reason: ${REASON}`);
    expect(plainUpstream.connections).toBe(0);
    expect(await gateway.waitForAudit((entry) => entry.path === '/ws')).toMatchObject({ decision: 'deny', step: 'destination', status: 403 });
  });

  it('refusals are counted as denials by the destination step', async () => {
    const text = await (await fetch(gateway.metricsUrl!)).text();
    expect(text).toMatch(/^srtgw_denied_requests_total\{reason="destination"\} 4$/m);
  });

  it('a name --resolve pins to 127.0.0.1 is the operator\'s choice: served', async () => {
    plainUpstream.reset();
    const res = await curlThroughProxy(gateway, [plainUpstream.url('/pinned', PINNED)]);
    expect(res.status).toBe(200);
    expect(plainUpstream.received.map((request) => request.path)).toEqual(['/pinned']);
  });
});

describe.skipIf(skip !== null)('srt-gw serve: a policy that opens loopback', () => {
  const cases: [string, string][] = [
    ['allowPrivateDestinations: [127.0.0.0/8]', `${WILDCARD_POLICY}allowPrivateDestinations: [127.0.0.0/8]\n`],
    ['a rule that names 127.0.0.1', `${WILDCARD_POLICY}  - id: loopback-service\n    host: 127.0.0.1\n`],
  ];
  it.each(cases)('%s: the same name is served', async (_name, policyYaml) => {
    const gateway = await startGatewayProcess({ policyYaml, args: ['--upstream-ca', pki.ca.certPath, '--dns-upstream', dns.address] });
    try {
      upstream.reset();
      const res = await curlThroughProxy(gateway, [upstream.url('/opened', EVIL)]);
      expect(res.status).toBe(200);
      expect(upstream.received.map((request) => request.path)).toEqual(['/opened']);
    } finally {
      await gateway.stop();
    }
  });
});

describe.skipIf(skipJail !== null)('srt-gw run: an allowed name that resolves to a private address', () => {
  let root = '';

  beforeAll(() => {
    ensureBuilt();
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-private-destinations-')));
  });

  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('the jailed command gets the 403 and the loopback service sees no connection', async () => {
    const policyPath = join(root, 'policy.yaml');
    const logPath = join(root, 'audit.jsonl');
    writeFileSync(policyPath, WILDCARD_POLICY);
    upstream.reset();
    const result = await srtGwRun({
      flags: ['--ca-dir', join(root, 'ca'), '--policy', policyPath, '--log', logPath, '--upstream-ca', pki.ca.certPath, '--dns-upstream', dns.address],
      command: ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}\\n', upstream.url('/from-jail', EVIL)],
      cwd: createJailWorkdir(root, 'work'),
      env: jailTestEnv(),
      timeoutMs: 60_000,
    });
    expect(result.code, describeRun({ ...result, audit: [] })).toBe(0);
    expect(result.stdout.trim()).toBe('403');
    expect(upstream.connections).toBe(0);
    const lines = parseAuditLines(readFileSync(logPath, 'utf8')).filter((entry) => entry.path === '/from-jail');
    expect(lines).toEqual([expect.objectContaining({ decision: 'deny', step: 'destination', reason: REASON })]);
  });

  it('a protocol tcp rule: the connection is refused with one deny line, and the service sees nothing', async () => {
    const service = await startCountingTcpService();
    try {
      const policyPath = join(root, 'tcp-policy.yaml');
      const logPath = join(root, 'tcp-audit.jsonl');
      writeFileSync(policyPath, `version: 1\nrules:\n  - { id: raw-tcp, host: "*.example.test", protocol: tcp, port: ${service.port} }\n`);
      const script = [
        'import socket',
        'try:',
        `    s = socket.create_connection(("${EVIL}", ${service.port}), timeout=10)`,
        '    s.sendall(b"hello")',
        '    print("read", len(s.recv(100)))',
        'except OSError as e:',
        '    print("error", type(e).__name__)',
      ].join('\n');
      const result = await srtGwRun({
        flags: ['--ca-dir', join(root, 'ca'), '--policy', policyPath, '--log', logPath, '--dns-upstream', dns.address],
        command: ['python3', '-c', script],
        cwd: createJailWorkdir(root, 'tcp-work'),
        env: jailTestEnv(),
        timeoutMs: 60_000,
      });
      expect(result.code, describeRun({ ...result, audit: [] })).toBe(0);
      expect(result.stdout).toMatch(/^(read 0|error \w+)$/m);
      expect(service.connections).toBe(0);
      const lines = parseAuditLines(readFileSync(logPath, 'utf8')).filter((entry) => entry.kind === 'connect' && entry.port === service.port);
      expect(lines).toEqual([expect.objectContaining({ decision: 'deny', rule: 'raw-tcp', reason: REASON })]);
    } finally {
      await service.close();
    }
  });
});

/** Writes `request` to the proxy and resolves with the response head. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request));
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      const end = received.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(received.slice(0, end));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`connection closed before a response head: ${JSON.stringify(received)}`)));
  });
}

/** A TCP service on 127.0.0.1 that only counts the connections it accepts. */
async function startCountingTcpService(): Promise<{ port: number; readonly connections: number; close(): Promise<void> }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    get connections() {
      return connections;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
