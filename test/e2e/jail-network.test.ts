// `srt-gw run` end to end on Linux: the jail's only way out is the gateway. Real bubblewrap,
// nftables, native helpers, curl, python and dig inside the jail; the upstream is an HTTPS echo
// server in a private network namespace this test creates (TEST-NET-2 on a veth pair), so
// anything it records came through the gateway, and anything it did not record did not leave.
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startNetnsUpstream, type NetnsUpstream } from '../support/netns-upstream.js';
import {
  CLI_PATH,
  JAIL_PATH,
  REPO_ROOT,
  ensureBuilt,
  hostDescendants,
  hostProcessAlive,
  srtGwRun,
  startSrtGwRun,
  type SrtGwRunOptions,
  type SrtGwRunResult,
} from '../support/srt-gw-run.js';
import { createTestCa, issueServerCert, type TestCa } from '../support/test-pki.js';
import { defaultParent } from '../../jail/run-directory.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('bwrap'),
  missingCommand('nft'),
  missingCommand('ip'),
  missingCommand('curl'),
  missingCommand('python3'),
  missingCommand('dig'),
  missingCommand('script'),
  missingCommand('setpriv'),
  missingCommand('unshare'),
  missingCommand('ps'),
  missingCommand('openssl'),
  missingCommand('cc'),
  missingCommand('git'),
);

const API = 'api.example.test';
const EVIL = 'evil.test';
const NOBODY = 65534;
const AS_NOBODY = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--inh-caps=-all'];
/** Synthetic answers of the gateway's DNS (gateway/dns/synthetic-pool.ts). */
const SYNTHETIC_V4 = /^198\.(18|19)\.\d+\.\d+$/;
const SYNTHETIC_V6 = /^fd73:7274:6777:/;

let root = '';
let caDir = '';
let emptyHome = '';
let upstreamCa: TestCa;
let upstream: NetnsUpstream;
let hostSocketPath = '';
let hostSocketServer: net.Server | null = null;
let hostSocketConnections = 0;
let workDirs = 0;

/** A fresh working directory, a git repository like most projects (the plain case has its own test). */
function newWorkDir(name: string, owner?: number): string {
  workDirs += 1;
  const dir = join(root, `work-${workDirs}-${name}`);
  mkdirSync(dir);
  execFileSync('git', ['init', '-q', dir]);
  if (owner !== undefined) execFileSync('chown', ['-R', `${owner}:${owner}`, dir]);
  return dir;
}

function jailEnv(home: string = emptyHome): NodeJS.ProcessEnv {
  return { PATH: JAIL_PATH, HOME: home, LANG: 'C.UTF-8', TERM: 'dumb' };
}

/** Where the runs started with jailEnv() keep their run directory on the host. */
const runParent = defaultParent(jailEnv());

/** Flags every run gets: the test CA dir, the upstream's names pointed at the netns, its CA trusted. */
function baseFlags(): string[] {
  return ['--ca-dir', caDir, '--resolve', `${API}=${upstream.ipv4}`, '--resolve', `${EVIL}=${upstream.ipv4}`, '--upstream-ca', upstreamCa.certPath];
}

function writePolicy(name: string, yaml: string): string {
  const path = join(root, `${name}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

let logs = 0;
function newAuditLog(): string {
  logs += 1;
  return join(root, `audit-${logs}.jsonl`);
}

function auditLines(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

async function run(options: Partial<SrtGwRunOptions> & { command: string[] }): Promise<SrtGwRunResult> {
  const result = await srtGwRun({ flags: baseFlags(), cwd: newWorkDir('run'), env: jailEnv(), timeoutMs: 20_000, ...options });
  expect(result.timedOut, `srt-gw run timed out\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(false);
  return result;
}

/** Runs a python program in the jail that prints one JSON object on its last stdout line. */
async function runPython<T>(script: string, options: Partial<SrtGwRunOptions> = {}, args: string[] = []): Promise<{ result: SrtGwRunResult; out: T }> {
  const result = await run({ ...options, command: ['python3', '-c', script, ...args] });
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  let out: T;
  try {
    out = JSON.parse(last) as T;
  } catch {
    throw new Error(`the jailed python printed no JSON (exit ${result.code})\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return { result, out };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Curl in the jail, printing "<label> exit=N status=S" per request (never failing the shell). */
function curlLine(label: string, url: string, extra = ''): string {
  return `curl -sS --max-time 8 ${extra} -o /dev/null -w '${label} status=%{http_code}\\n' '${url}'; echo "${label} exit=$?"`;
}

function curlOutcome(stdout: string, label: string): { exit: number; status: number } {
  const exit = new RegExp(`^${label} exit=(\\d+)$`, 'm').exec(stdout);
  const status = new RegExp(`^${label} status=(\\d+)$`, 'm').exec(stdout);
  if (!exit) throw new Error(`no outcome for ${label} in:\n${stdout}`);
  return { exit: Number(exit[1]), status: status ? Number(status[1]) : 0 };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await sleep(50);
  }
  return check();
}

beforeAll(async () => {
  if (skip !== null) return;
  ensureBuilt();
  root = realpathSync(mkdtempSync('/tmp/srt-gw-jail-net-'));
  chmodSync(root, 0o755); // the unprivileged case reaches its home below it
  caDir = join(root, 'ca');
  emptyHome = join(root, 'empty-home');
  mkdirSync(emptyHome);
  const pkiDir = join(root, 'pki');
  mkdirSync(pkiDir);
  upstreamCa = createTestCa(pkiDir, 'jail-net');
  upstream = await startNetnsUpstream({
    prefix: 'srtgw-jailnet',
    udpPorts: [53, 9999],
    certificate: (addresses) => issueServerCert(pkiDir, upstreamCa, { names: [API, EVIL], ipAddresses: addresses }),
  });

  // A live unix socket in the host's /run, like /run/docker.sock: the jail must not reach it.
  hostSocketPath = `/run/srt-gw-test-net-${process.pid}.sock`;
  rmSync(hostSocketPath, { force: true });
  hostSocketServer = net.createServer((socket) => {
    hostSocketConnections += 1;
    socket.end('host socket reached\n');
  });
  await new Promise<void>((resolve, reject) => {
    hostSocketServer!.once('error', reject);
    hostSocketServer!.listen(hostSocketPath, resolve);
  });
  chmodSync(hostSocketPath, 0o777);
}, 60_000);

afterAll(async () => {
  await upstream?.close();
  if (hostSocketServer) await new Promise((resolve) => hostSocketServer!.close(resolve));
  if (hostSocketPath !== '') rmSync(hostSocketPath, { force: true });
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

describe.skipIf(skip !== null)('srt-gw run: the jail reaches the network only through the gateway', () => {
  it('an allowed HTTPS GET from curl reaches the upstream with SNI api.example.test, and the audit log names the rule', async () => {
    const log = newAuditLog();
    const mark = upstream.mark();
    const result = await run({ flags: [...baseFlags(), '--allow', API, '--log', log], command: ['curl', '-sS', '--max-time', '10', `https://${API}/allowed?q=1`] });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ path: '/allowed?q=1', host: API, servername: API });
    const requests = upstream.requests(mark);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ method: 'GET', path: '/allowed?q=1', host: API, servername: API, remote: upstream.hostIpv4 });
    expect(upstream.since(mark).filter((e) => e.event === 'tls')).toEqual([expect.objectContaining({ servername: API })]);
    expect(auditLines(log)).toContainEqual(
      expect.objectContaining({ kind: 'request', host: API, port: 443, method: 'GET', path: '/allowed', decision: 'allow', rule: `cli-allow-${API}`, status: 200 }),
    );
  });

  it('a denied name does not resolve and a denied path gets a 403 with x-srt-gw-reason; neither reaches the upstream', async () => {
    const policy = writePolicy('deny-admin', ['version: 1', 'rules:', '  - id: no-admin', `    host: ${API}`, '    paths: ["/admin", "/admin/**"]', '    action: deny', ''].join('\n'));
    const log = newAuditLog();
    const mark = upstream.mark();
    const script = [
      // evil.test has a --resolve entry: only the policy stands between it and the upstream.
      curlLine('evil', `https://${EVIL}/steal`),
      curlLine('admin', `https://${API}/admin/users`, '-D headers.txt'),
      'cat headers.txt',
    ].join('\n');
    const result = await run({ flags: [...baseFlags(), '--policy', policy, '--allow', API, '--log', log], command: ['sh', '-c', script] });
    expect(result.code, result.stderr).toBe(0);
    expect(curlOutcome(result.stdout, 'evil')).toEqual({ exit: 6, status: 0 }); // "Could not resolve host"
    expect(curlOutcome(result.stdout, 'admin')).toEqual({ exit: 0, status: 403 });
    expect(result.stdout).toMatch(/^x-srt-gw-reason: .*no-admin/im);
    expect(upstream.since(mark)).toEqual([]);
    const lines = auditLines(log);
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'dns', name: EVIL, decision: 'denied' }));
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'request', host: API, path: '/admin/users', decision: 'deny', rule: 'no-admin', status: 403 }));
    expect(result.stderr).toMatch(/denied during this run/);
  });

  it('a program that ignores proxy settings is intercepted: its raw connect to the upstream IP is denied by the gateway and never arrives', async () => {
    const log = newAuditLog();
    const mark = upstream.mark();
    const script = `
import json, socket, sys
out = {}
try:
    s = socket.create_connection((sys.argv[1], 443), timeout=5)
    out['connected'] = True
    s.sendall(b'raw bytes from a program that knows no proxy\\r\\n\\r\\n')
    try:
        out['received'] = len(s.recv(100))
    except OSError as e:
        out['recvError'] = e.strerror
except OSError as e:
    out['connectError'] = e.strerror
print(json.dumps(out))
`;
    const { result, out } = await runPython<{ connected?: boolean; received?: number; recvError?: string; connectError?: string }>(
      script,
      { flags: [...baseFlags(), '--allow', API, '--log', log] },
      [upstream.ipv4],
    );
    expect(result.code, result.stderr).toBe(0);
    // The connect lands on the jail's redirector (so it "succeeds"), and the gateway closes it.
    expect(out.connected).toBe(true);
    expect(out.received ?? 0).toBe(0);
    expect(upstream.since(mark)).toEqual([]);
    expect(auditLines(log)).toContainEqual(expect.objectContaining({ kind: 'connect', host: upstream.ipv4, port: 443, decision: 'deny' }));
  });

  it('with a rule naming the upstream IP, HTTPS by IP goes through the gateway, which presents its own CA\'s leaf for that IP', async () => {
    const policy = writePolicy('by-ip', ['version: 1', 'rules:', '  - id: lab-ip', `    host: ${upstream.ipv4}`, ''].join('\n'));
    const log = newAuditLog();
    const mark = upstream.mark();
    const script = `
import base64, json, socket, ssl, subprocess, sys
ip = sys.argv[1]
curl = subprocess.run(['curl', '-sS', '--max-time', '8', f'https://{ip}/by-ip'], capture_output=True, text=True)
ctx = ssl.create_default_context()  # SSL_CERT_FILE: the jail's trust bundle
with ctx.wrap_socket(socket.create_connection((ip, 443), timeout=5), server_hostname=ip) as s:
    der = s.getpeercert(binary_form=True)
print(json.dumps({'curlExit': curl.returncode, 'curlBody': curl.stdout, 'curlErr': curl.stderr, 'leaf': base64.b64encode(der).decode()}))
`;
    const { result, out } = await runPython<{ curlExit: number; curlBody: string; curlErr: string; leaf: string }>(
      script,
      { flags: [...baseFlags(), '--policy', policy, '--log', log] },
      [upstream.ipv4],
    );
    expect(result.code, result.stderr).toBe(0);
    expect(out.curlExit, out.curlErr).toBe(0);
    // The upstream saw the gateway's request: no SNI (an IP literal has none), Host the IP.
    expect(JSON.parse(out.curlBody)).toMatchObject({ path: '/by-ip', host: upstream.ipv4, servername: null });
    expect(upstream.requests(mark)).toEqual([expect.objectContaining({ path: '/by-ip', host: upstream.ipv4, servername: null, remote: upstream.hostIpv4 })]);
    // What the jailed client was shown is the gateway's leaf for the IP, not the upstream's certificate.
    const leaf = new X509Certificate(Buffer.from(out.leaf, 'base64'));
    const gatewayCa = new X509Certificate(readFileSync(join(caDir, 'ca.pem')));
    expect(leaf.checkIssued(gatewayCa)).toBe(true);
    expect(leaf.verify(gatewayCa.publicKey)).toBe(true);
    expect(leaf.checkIP(upstream.ipv4)).toBe(upstream.ipv4);
    expect(leaf.issuer).toMatch(/srt-gw local CA/);
    expect(auditLines(log)).toContainEqual(expect.objectContaining({ kind: 'request', host: upstream.ipv4, path: '/by-ip', decision: 'allow', rule: 'lab-ip' }));
  });

  it('UDP to any port but DNS, ICMP and IPv6 beyond loopback fail at once, and nothing arrives upstream', async () => {
    const log = newAuditLog();
    const mark = upstream.mark();
    const script = `
import errno, json, socket, sys, time
v4, v6 = sys.argv[1], sys.argv[2]
out = {}
def probe(name, action):
    started = time.monotonic()
    try:
        out[name] = {'result': action()}
    except OSError as e:
        out[name] = {'error': errno.errorcode.get(e.errno, str(e.errno))}
    out[name]['seconds'] = round(time.monotonic() - started, 3)
def udp4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s.sendto(b'udp out', (v4, 9999))
def udp4_other():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s.sendto(b'udp out', ('203.0.113.7', 443))
def udp6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    return s.sendto(b'udp out', (v6, 9999))
def icmp_dgram():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    return s.sendto(b'\\x08\\x00\\xf7\\xff\\x00\\x00\\x00\\x00', (v4, 0))
def icmp_raw():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    return s.sendto(b'\\x08\\x00\\xf7\\xff\\x00\\x00\\x00\\x00', (v4, 0))
def tcp6():
    s = socket.create_connection((v6, 443), timeout=5)
    s.sendall(b'hello over IPv6\\r\\n')
    return len(s.recv(100))
def loopback_udp():
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(('127.0.0.1', 0))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'to myself', r.getsockname())
    return r.recv(100).decode()
probe('udp4', udp4)
probe('udp4Other', udp4_other)
if v6 != 'none':
    probe('udp6', udp6)
    probe('tcp6', tcp6)
probe('icmpDgram', icmp_dgram)
probe('icmpRaw', icmp_raw)
probe('loopbackUdp', loopback_udp)
print(json.dumps(out))
`;
    type Probe = { result?: unknown; error?: string; seconds: number };
    const { result, out } = await runPython<Record<string, Probe>>(script, { flags: [...baseFlags(), '--allow', API, '--log', log] }, [upstream.ipv4, upstream.ipv6 ?? 'none']);
    expect(result.code, result.stderr).toBe(0);
    // Control: the probe itself works where the jail allows it.
    expect(out.loopbackUdp?.result).toBe('to myself');
    expect(out.udp4).toMatchObject({ error: 'EPERM' });
    expect(out.udp4Other).toMatchObject({ error: 'EPERM' });
    expect(out.icmpDgram?.error).toMatch(/^(EACCES|EPERM)$/);
    expect(out.icmpRaw).toMatchObject({ error: 'EPERM' });
    if (upstream.ipv6 !== null) {
      expect(out.udp6).toMatchObject({ error: 'EPERM' });
      // IPv6 TCP is redirected like IPv4 and denied as an unnamed IP literal.
      // The connect lands on the redirector; the gateway then closes it (EOF, or a reset if unread).
      expect(out.tcp6?.error === 'ECONNRESET' || out.tcp6?.result === 0, JSON.stringify(out.tcp6)).toBe(true);
      expect(auditLines(log)).toContainEqual(expect.objectContaining({ kind: 'connect', host: upstream.ipv6, port: 443, decision: 'deny' }));
    }
    for (const [name, probe] of Object.entries(out)) expect(probe.seconds, name).toBeLessThan(1);
    expect(upstream.since(mark)).toEqual([]);
  });

  it('DNS to any server address is answered by the gateway: synthetic addresses for allowed names, NXDOMAIN for the rest, and no query leaves', async () => {
    const log = newAuditLog();
    const mark = upstream.mark();
    const dig = (label: string, args: string) => `echo "== ${label}"; dig +time=2 +tries=1 ${args}`;
    const script = [
      dig('a', `+short @203.0.113.7 ${API} A`),
      dig('aaaa', `+short @203.0.113.7 ${API} AAAA`),
      dig('denied', `@203.0.113.7 ${EVIL} A`),
      dig('tcp', `+tcp +short @203.0.113.7 ${API} A`),
      dig('to-upstream', `+short @${upstream.ipv4} ${API} A`),
    ].join('\n');
    const result = await run({ flags: [...baseFlags(), '--allow', API, '--log', log], command: ['sh', '-c', script] });
    expect(result.code, result.stderr).toBe(0);
    const sections = Object.fromEntries(
      result.stdout
        .split(/^== /m)
        .filter(Boolean)
        .map((section) => {
          const [label = '', ...rest] = section.split('\n');
          return [label, rest.join('\n').trim()];
        }),
    );
    expect(sections.a).toMatch(SYNTHETIC_V4);
    expect(sections.aaaa).toMatch(SYNTHETIC_V6);
    expect(sections.denied).toMatch(/status: NXDOMAIN/);
    expect(sections.tcp).toMatch(SYNTHETIC_V4);
    expect(sections['to-upstream']).toMatch(SYNTHETIC_V4);
    // The upstream listens on UDP 53 too: a query sent to it by address never got there.
    expect(upstream.since(mark)).toEqual([]);
    const lines = auditLines(log);
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'dns', name: API, decision: 'synthetic' }));
    expect(lines).toContainEqual(expect.objectContaining({ kind: 'dns', name: EVIL, decision: 'denied', rcode: 'NXDOMAIN' }));
  });

  it('the seccomp filter refuses netlink, packet and raw sockets and new user namespaces; the command has no capabilities and no new privileges', async () => {
    const script = [
      `python3 -c '
import ctypes, errno, json, socket
out = {}
def probe(name, family, kind, proto=0):
    try:
        socket.socket(family, kind, proto).close()
        out[name] = "created"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
probe("netlink", socket.AF_NETLINK, socket.SOCK_RAW, 0)
probe("packet", socket.AF_PACKET, socket.SOCK_RAW, 0)
probe("raw4", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
probe("raw6", socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_UDP)
probe("tcp4", socket.AF_INET, socket.SOCK_STREAM)
probe("unix", socket.AF_UNIX, socket.SOCK_STREAM)
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
out["unshareUser"] = "ok" if libc.unshare(CLONE_NEWUSER) == 0 else errno.errorcode.get(ctypes.get_errno(), "?")
print(json.dumps(out))
'`,
      'unshare -U true; echo "unshare-U exit=$?"',
      'grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status',
    ].join('\n');
    const result = await run({ command: ['sh', '-c', script] });
    expect(result.code, result.stderr).toBe(0);
    const json = JSON.parse(result.stdout.split('\n').find((line) => line.startsWith('{')) ?? '{}');
    expect(json).toEqual({
      netlink: 'EAFNOSUPPORT',
      packet: 'EAFNOSUPPORT',
      raw4: 'EPERM',
      raw6: 'EPERM',
      tcp4: 'created', // control: the probe can create what is allowed
      unix: 'created',
      unshareUser: 'EPERM',
    });
    expect(result.stdout).toMatch(/^unshare-U exit=[1-9]\d*$/m);
    expect(result.stderr).toMatch(/unshare: .*(Operation not permitted|unshare failed)/);
    for (const field of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) expect(result.stdout).toMatch(new RegExp(`^${field}:\\s+0{16}$`, 'm'));
    expect(result.stdout).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(result.stdout).toMatch(/^Seccomp:\s+2$/m);
  });

  it('the command sees only the reaper and its own processes, an empty gateway socket directory, and no host socket', async () => {
    const script = `
import errno, json, os, socket, subprocess, sys
host_run_dir = sys.stdin.readline().strip()
host_socket = sys.argv[1]
out = {'ps': subprocess.run(['ps', '-eo', 'pid=,args='], capture_output=True, text=True).stdout.strip().split('\\n')}
out['gatewayDir'] = sorted(os.listdir('/run/srt-gw/gateway')) if os.path.isdir('/run/srt-gw/gateway') else None
out['run'] = sorted(os.listdir('/run'))
def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        return 'connected: ' + s.recv(100).decode()
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
out['connect'] = {p: connect(p) for p in [
    '/run/srt-gw/gateway/transparent.sock',
    '/run/srt-gw/gateway/dns.sock',
    os.path.join(host_run_dir, 'gateway', 'transparent.sock'),
    os.path.join(host_run_dir, 'gateway', 'dns.sock'),
    host_socket,
]}
print(json.dumps(out))
`;
    const running = startSrtGwRun({
      flags: [...baseFlags(), '--allow', API],
      command: ['python3', '-c', script, hostSocketPath],
      cwd: newWorkDir('invisible'),
      env: jailEnv(),
      interactive: true,
      timeoutMs: 20_000,
    });
    // Control, from the host: this run's helpers and sockets exist and are reachable there.
    let hostRunDir = '';
    let helpers: string[] = [];
    const found = await eventually(() => {
      helpers = hostDescendants(running.pid).map((p) => p.argv[0] ?? '');
      const dirs = readdirSync(runParent).filter((name) => name.startsWith(`srt-gw-run-${running.pid}-`));
      hostRunDir = dirs.length === 1 ? join(runParent, dirs[0]!) : '';
      // The helpers start while the gateway is still starting; its DNS socket follows.
      return (
        hostRunDir !== '' &&
        helpers.some((h) => h.endsWith('/srt-gw-redirector')) &&
        helpers.some((h) => h.endsWith('/srt-gw-dns-forwarder')) &&
        existsSync(join(hostRunDir, 'gateway', 'dns.sock'))
      );
    }, 10_000);
    expect(found, `host side of the run not found: ${JSON.stringify(helpers)}`).toBe(true);
    // The DNS socket is the one gateway socket left on the host; TCP connections are handed over as descriptors.
    expect(existsSync(join(hostRunDir, 'gateway', 'transparent.sock'))).toBe(false);
    const before = hostSocketConnections;
    running.write(`${hostRunDir}\n`);
    running.endInput();
    const result = await running.finished;
    expect(result.timedOut).toBe(false);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as { ps: string[]; gatewayDir: string[] | null; run: string[]; connect: Record<string, string> };

    const processes = out.ps.map((line) => {
      const match = /^\s*(\d+)\s+(.*)$/.exec(line);
      return { pid: Number(match?.[1]), args: match?.[2] ?? line };
    });
    expect(processes[0]?.pid).toBe(1); // the reaper (a fork of srt-gw-jail-init, same argv)
    const others = processes.filter((p) => p.pid !== 1);
    expect(others.map((p) => p.args.split(' ')[0])).toEqual(['python3', 'ps']);
    expect(out.ps.join('\n')).not.toMatch(/^\s*\d+\s+\S*srt-gw-(redirector|dns-forwarder)/m);
    expect(out.gatewayDir).toEqual([]);
    expect(out.run).toEqual(['srt-gw']);
    expect(Object.values(out.connect)).toEqual(['ENOENT', 'ENOENT', 'ENOENT', 'ENOENT', 'ENOENT']);
    expect(hostSocketConnections).toBe(before);
    // Control: the host socket does accept connections from outside the jail.
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(hostSocketPath);
      let text = '';
      socket.on('data', (chunk) => (text += chunk.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    expect(reply).toBe('host socket reached\n');
  });

  it('AF_UNIX between the command\'s own processes works: a socketpair and a server in /tmp with a client', async () => {
    const script = `
import json, os, socket
out = {}
a, b = socket.socketpair()
a.sendall(b'over a socketpair')
out['socketpair'] = b.recv(100).decode()
path = '/tmp/own.sock'
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
pid = os.fork()
if pid == 0:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    c.sendall(b'from the child process')
    c.close()
    os._exit(0)
conn, _ = server.accept()
out['server'] = conn.recv(100).decode()
os.waitpid(pid, 0)
print(json.dumps(out))
`;
    const { result, out } = await runPython<{ socketpair: string; server: string }>(script);
    expect(result.code, result.stderr).toBe(0);
    expect(out).toEqual({ socketpair: 'over a socketpair', server: 'from the child process' });
  });

  it('the command\'s own loopback server works: python http.server on 127.0.0.1:8000, curl to it', async () => {
    const cwd = newWorkDir('loopback');
    writeFileSync(join(cwd, 'served.txt'), 'served on the jail loopback\n');
    const script = [
      'python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 &',
      'server=$!',
      'for i in $(seq 1 50); do curl -sS --max-time 2 http://127.0.0.1:8000/served.txt 2>/dev/null && break; sleep 0.1; done',
      'kill $server',
    ].join('\n');
    const mark = upstream.mark();
    const result = await run({ cwd, command: ['sh', '-c', script] });
    expect(result.stdout).toBe('served on the jail loopback\n');
    expect(upstream.since(mark)).toEqual([]);
  });

  it.each([
    { name: 'exit 7', command: ['sh', '-c', 'exit 7'], code: 7 },
    { name: 'killed by SIGTERM', command: ['sh', '-c', 'kill -TERM $$'], code: 143 },
    { name: 'a missing command', command: ['srt-gw-no-such-command'], code: 127 },
  ])('the exit status is the command\'s: $name → $code', async ({ command, code }) => {
    const result = await run({ flags: ['--ca-dir', caDir, '-q'], command });
    expect(result.code, result.stderr).toBe(code);
    if (code === 127) expect(result.stderr).toMatch(/cannot run srt-gw-no-such-command: No such file or directory/);
  });

  it.each([
    { signal: 'SIGTERM' as const, name: 'TERM' },
    { signal: 'SIGINT' as const, name: 'INT' },
  ])('$signal sent to srt-gw run is forwarded to the command, which handles it', async ({ signal, name }) => {
    const script = `
import os, signal, sys, time
def handle(sig, frame):
    # os.write, not print: the signal can land while print('ready') is still returning, and
    # Python refuses a reentrant write to the same buffered stdout.
    os.write(1, ('got ' + signal.Signals(sig).name[3:] + '\\n').encode())
    os._exit(42)
signal.signal(signal.SIGTERM, handle)
signal.signal(signal.SIGINT, handle)
print('ready', flush=True)
time.sleep(10)
sys.exit(1)
`;
    const running = startSrtGwRun({ flags: ['--ca-dir', caDir, '-q'], command: ['python3', '-c', script], cwd: newWorkDir('signal'), env: jailEnv(), timeoutMs: 20_000 });
    await running.waitForStdout(/^ready$/m);
    process.kill(running.pid, signal);
    const result = await running.finished;
    expect(result.timedOut).toBe(false);
    expect(result.code, result.stderr).toBe(42);
    expect(result.stdout).toMatch(new RegExp(`^got ${name}$`, 'm'));
  });

  it('fails closed when srt-gw run is SIGKILLed: no process of the jail remains', async () => {
    const marker = `srt-gw-jail-net-marker-${process.pid}-${randomBytes(4).toString('hex')}`;
    const running = startSrtGwRun({
      flags: ['--ca-dir', caDir, '-q'],
      command: ['python3', '-c', 'import time; print("ready", flush=True); time.sleep(1000)', marker],
      cwd: newWorkDir('sigkill'),
      env: jailEnv(),
      timeoutMs: 20_000,
    });
    await running.waitForStdout(/^ready$/m);
    const jail = hostDescendants(running.pid);
    expect(jail.map((p) => p.argv[0] ?? '')).toEqual(
      expect.arrayContaining([expect.stringMatching(/bwrap$/), expect.stringMatching(/srt-gw-jail-init$/), expect.stringMatching(/srt-gw-redirector$/), expect.stringMatching(/srt-gw-dns-forwarder$/), 'python3']),
    );
    const pgrep = () => {
      try {
        return execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' }).trim();
      } catch {
        return ''; // exit 1: no process matched
      }
    };
    expect(pgrep()).not.toBe(''); // control: the probe finds the running jail
    process.kill(running.pid, 'SIGKILL');
    // Not `finished`: if the jail survived, it would hold srt-gw run's stdout open forever.
    await running.exited;
    try {
      const gone = await eventually(() => pgrep() === '' && jail.every((p) => !hostProcessAlive(p.pid)), 5_000);
      const left = jail.filter((p) => hostProcessAlive(p.pid)).map((p) => `${p.pid} ${p.argv.join(' ')}`);
      expect(gone, `still running 5 s after srt-gw run was killed: ${JSON.stringify(left)}`).toBe(true);
    } finally {
      for (const p of jail) if (hostProcessAlive(p.pid)) process.kill(p.pid, 'SIGKILL');
      for (const name of readdirSync(runParent).filter((n) => n.startsWith(`srt-gw-run-${running.pid}-`))) rmSync(join(runParent, name), { recursive: true, force: true });
    }
  });

  it('fails closed when the redirector dies: later connections fail, nothing reaches the upstream, the port cannot be taken over', async () => {
    const script = `
import errno, json, socket, subprocess, sys
for line in sys.stdin:
    n = line.strip()
    out = {'n': n}
    curl = subprocess.run(['curl', '-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', f'https://${API}/loop/{n}'], capture_output=True, text=True)
    out['curlExit'] = curl.returncode
    out['status'] = curl.stdout
    try:
        socket.create_connection((sys.argv[1], 443), timeout=3).close()
        out['raw'] = 'connected'
    except OSError as e:
        out['raw'] = errno.errorcode.get(e.errno, str(e.errno))
    try:
        s = socket.socket()
        s.bind(('127.0.0.1', 901))
        out['bind901'] = 'bound'
    except OSError as e:
        out['bind901'] = errno.errorcode.get(e.errno, str(e.errno))
    print(json.dumps(out), flush=True)
`;
    const running = startSrtGwRun({
      flags: [...baseFlags(), '--allow', API],
      command: ['python3', '-c', script, upstream.ipv4],
      cwd: newWorkDir('redirector'),
      env: jailEnv(),
      interactive: true,
      timeoutMs: 30_000,
    });
    const ask = async (n: number) => {
      running.write(`${n}\n`);
      const match = await running.waitForStdout(new RegExp(`^(\\{"n": "${n}".*)$`, 'm'), 15_000);
      return JSON.parse(match[1]!) as { curlExit: number; status: string; raw: string; bind901: string };
    };
    // Control: through the redirector, the loop gets through.
    expect(await ask(1)).toMatchObject({ curlExit: 0, status: '200', raw: 'connected', bind901: 'EACCES' });

    const redirector = hostDescendants(running.pid).find((p) => (p.argv[0] ?? '').endsWith('/srt-gw-redirector'));
    expect(redirector, 'the run\'s srt-gw-redirector on the host').toBeDefined();
    process.kill(redirector!.pid, 'SIGKILL');
    await running.waitForStderr(/the jail's redirector stopped; the command has no network from now on/);
    const mark = upstream.mark();
    for (const n of [2, 3]) {
      const after = await ask(n);
      expect(after.curlExit).not.toBe(0);
      expect(after.status).toBe('000');
      expect(after.raw).toBe('ECONNREFUSED');
      expect(after.bind901).toBe('EACCES'); // nobody in the jail can take the redirector's place
    }
    running.endInput();
    const result = await running.finished;
    expect(result.timedOut).toBe(false);
    expect(result.code, result.stderr).toBe(0);
    expect(upstream.since(mark)).toEqual([]);
  });

  it('stdin and stdout pass through byte-exact: 1 MiB of random bytes through cat', async () => {
    const input = randomBytes(1 << 20);
    const result = await run({ flags: ['--ca-dir', caDir, '-q'], command: ['cat'], input });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdoutBytes.length).toBe(input.length);
    expect(sha256(result.stdoutBytes)).toBe(sha256(input));
  });

  it('a terminal stays a terminal: under script(1), the command\'s stdin and stdout are ttys', async () => {
    const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;
    const inner = [process.execPath, CLI_PATH, 'run', '-q', '--ca-dir', caDir, '--', 'python3', '-c', 'import os,sys; print(os.isatty(0), os.isatty(1))'];
    const output = execFileSync('script', ['-qec', inner.map(quote).join(' '), '/dev/null'], {
      cwd: newWorkDir('tty'),
      env: jailEnv(),
      encoding: 'utf8',
      timeout: 20_000,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(output.trim()).toBe('True True');
  });

  it('works for an unprivileged user: srt-gw run as uid 65534 gets an allowed request through and a denied one refused', async (context) => {
    const readable = (() => {
      try {
        execFileSync(AS_NOBODY[0]!, [...AS_NOBODY.slice(1), 'sh', '-c', `test -r "$0" && test -x "$1"`, CLI_PATH, join(REPO_ROOT, 'native', 'build', 'srt-gw-jail-init')], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    })();
    if (!readable) {
      const reason = `${REPO_ROOT} (dist/ or native/build/) is not readable by uid ${NOBODY}: cannot run srt-gw as that user without copying it`;
      if (process.env.CI === 'true') throw new Error(`CI=true: ${reason}`);
      process.stderr.write(`[skip] ${reason}\n`);
      context.skip(reason);
      return;
    }
    const home = join(root, 'nobody-home');
    mkdirSync(home);
    const cwd = join(home, 'project');
    mkdirSync(cwd);
    execFileSync('git', ['init', '-q', cwd]);
    const ca = join(home, 'upstream-ca.pem'); // a copy the user can read (the PKI dir is root's)
    copyFileSync(upstreamCa.certPath, ca);
    const log = join(home, 'audit.jsonl');
    execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, home]);
    chownSync(home, NOBODY, NOBODY);
    const mark = upstream.mark();
    const script = [`id -u`, curlLine('allowed', `https://${API}/as-nobody`), curlLine('evil', `https://${EVIL}/as-nobody`)].join('\n');
    const result = await run({
      wrapper: AS_NOBODY,
      cwd,
      env: jailEnv(home),
      flags: ['--ca-dir', join(home, 'ca'), '--resolve', `${API}=${upstream.ipv4}`, '--resolve', `${EVIL}=${upstream.ipv4}`, '--upstream-ca', ca, '--allow', API, '--log', log],
      command: ['sh', '-c', script],
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.split('\n')[0]).toBe(String(NOBODY));
    expect(curlOutcome(result.stdout, 'allowed')).toEqual({ exit: 0, status: 200 });
    expect(curlOutcome(result.stdout, 'evil')).toEqual({ exit: 6, status: 0 });
    expect(upstream.requests(mark)).toEqual([expect.objectContaining({ path: '/as-nobody', host: API, servername: API })]);
    expect(auditLines(log)).toContainEqual(expect.objectContaining({ kind: 'request', host: API, path: '/as-nobody', decision: 'allow' }));
  });

  it('--monitor lets a request that would be denied through, and says "would have been denied"', async () => {
    const policy = writePolicy('monitor', ['version: 1', 'rules:', '  - id: no-admin-monitored', `    host: ${API}`, '    paths: ["/admin/**"]', '    action: deny', ''].join('\n'));
    const log = newAuditLog();
    const mark = upstream.mark();
    const result = await run({ flags: [...baseFlags(), '--policy', policy, '--allow', API, '--monitor', '--log', log], command: ['sh', '-c', curlLine('admin', `https://${API}/admin/monitored`)] });
    expect(result.code, result.stderr).toBe(0);
    expect(curlOutcome(result.stdout, 'admin')).toEqual({ exit: 0, status: 200 });
    expect(upstream.requests(mark)).toEqual([expect.objectContaining({ path: '/admin/monitored' })]);
    expect(result.stderr).toMatch(/would have been denied/);
    expect(result.stderr).toMatch(/\/admin\/monitored.*no-admin-monitored/);
    expect(auditLines(log)).toContainEqual(expect.objectContaining({ kind: 'request', path: '/admin/monitored', rule: 'no-admin-monitored', monitored: true }));
  });

  it('with no policy anywhere, srt-gw run says the command has no network, and it has none', async () => {
    const mark = upstream.mark();
    const script = [curlLine('by-name', `https://${API}/no-policy`), curlLine('by-ip', `https://${upstream.ipv4}/no-policy`, '-k')].join('\n');
    // --resolve is given, so only the missing policy keeps the upstream out of reach.
    const result = await run({ flags: baseFlags(), command: ['sh', '-c', script] });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/no policy .*the command runs with no network/);
    expect(curlOutcome(result.stdout, 'by-name').exit).toBe(6);
    expect(curlOutcome(result.stdout, 'by-ip').exit).not.toBe(0);
    expect(upstream.since(mark)).toEqual([]);
  });

  // Regression: bwrap once failed here with "Can't find source path .../.git" (the .git
  // protections assumed a repository). The other cases run in `git init` directories.
  it('a working directory that is not a git repository works, and nothing is left behind in it', async () => {
    const cwd = join(root, 'plain-dir');
    mkdirSync(cwd);
    const mark = upstream.mark();
    const result = await run({ cwd, flags: [...baseFlags(), '--allow', API], command: ['curl', '-sS', '--max-time', '8', `https://${API}/no-git`] });
    expect(result.code, result.stderr).toBe(0);
    expect(upstream.requests(mark)).toEqual([expect.objectContaining({ path: '/no-git' })]);
    expect(readdirSync(cwd)).toEqual([]);
  });
});
