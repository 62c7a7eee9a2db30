// The native DNS forwarder inside a real network namespace: nftables redirects every DNS query
// (UDP and TCP, port 53, any address) to it, and it must hand each one to the gateway's resolver
// on the unix socket and bring the answer back to the client that asked — under the client's own
// ID, truncated when the client cannot take it over UDP — and answer nothing at all when the
// gateway is not there. The clients are the real dig and raw python sockets; the resolver is the
// real `srt-gw serve --dns-socket`, plus a scripted one on the same framing for the cases the
// real resolver never produces (answers over 512 bytes, late answers, silence).
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDnsQuery } from '../../gateway/dns/dns-message.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { buildDnsForwarder } from '../support/native-build.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('nft'),
  missingCommand('unshare'),
  missingCommand('nsenter'),
  missingCommand('ip'),
  missingCommand('cc'),
  missingCommand('python3'),
  missingCommand('dig'),
);
// A kernel booted without IPv6 still gets the IPv4 cases.
const ipv6 = existsSync('/proc/net/if_inet6');

const execFileAsync = promisify(execFile);
const FORWARDER_PORT = 15353;
const READY_TIMEOUT_MS = 10_000;
const ALLOWED = 'api.example.test';
/** Nameserver addresses that exist nowhere: only the redirect can make them answer. */
const NOWHERE_V4 = '192.0.2.53';
const NOWHERE_V6 = '2001:db8::53';
/** The scripted resolver's big TXT answer: six 230-byte strings, ~1.45 KB on the wire. */
const BIG_TXT = Array.from({ length: 6 }, (_, i) => String.fromCharCode(97 + i).repeat(230));
/** An answer of ~300 bytes: over a 100-byte EDNS size, under the 512 such a client really takes. */
const MEDIUM_TXT = 'm'.repeat(250);

/**
 * A resolver on the gateway's framing (2-byte length, pipelined, any order) that answers by name:
 * big.example.test / medium.example.test TXT → BIG_TXT / MEDIUM_TXT; slow.* → A after 300 ms;
 * void.* → never; anything else → A 192.0.2.1. Like the gateway, it closes a stream that carries
 * a message it would drop (its parser decides).
 */
interface ScriptedResolver {
  server: net.Server;
  /** Connections accepted so far (the UDP side shares one; each TCP client opens its own). */
  connections: () => number;
  /** Questions seen, in arrival order. */
  seen: string[];
  dropConnections: () => void;
  close: () => Promise<void>;
}

function startScriptedResolver(socketPath: string): Promise<ScriptedResolver> {
  const sockets = new Set<net.Socket>();
  const seen: string[] = [];
  let accepted = 0;
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    const answer = (query: dnsPacket.DecodedPacket): void => {
      const question = query.questions?.[0];
      if (!question) return;
      seen.push(`${question.name} ${question.type}`);
      if (question.name.startsWith('void.')) return;
      const txt = question.type !== 'TXT' ? null : question.name === 'big.example.test' ? BIG_TXT : question.name === 'medium.example.test' ? [MEDIUM_TXT] : null;
      const answers: dnsPacket.Answer[] = txt
        ? [{ type: 'TXT', name: question.name, ttl: 60, data: txt }]
        : [{ type: 'A', name: question.name, ttl: 60, data: '192.0.2.1' }];
      const message = dnsPacket.encode({
        type: 'response',
        id: query.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: [question],
        answers,
      });
      const framed = Buffer.alloc(2 + message.length);
      framed.writeUInt16BE(message.length, 0);
      message.copy(framed, 2);
      const send = () => {
        if (!socket.destroyed) socket.write(framed);
      };
      if (question.name.startsWith('slow.')) setTimeout(send, 300);
      else send();
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const message = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + message.length);
        // The gateway's own rule (gateway/dns/server.ts): a message it would drop ends the stream.
        if (parseDnsQuery(message).kind === 'drop') {
          socket.destroy();
          return;
        }
        let query: dnsPacket.DecodedPacket;
        try {
          query = dnsPacket.decode(message);
        } catch {
          socket.destroy();
          return;
        }
        answer(query);
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () =>
      resolve({
        server,
        connections: () => accepted,
        seen,
        dropConnections: () => {
          for (const socket of sockets) socket.destroy();
        },
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      }),
    );
  });
}

/** A network namespace whose DNS (UDP and TCP port 53, any address) goes to the forwarder. */
interface Jail {
  process: ChildProcess;
  pid: number;
  stderr: () => string;
  /** What the forwarder wrote to its --ready-fd (fd 3 here), complete once `readyClosed` resolves. */
  readyText: () => string;
  readyClosed: Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function nftRedirect(family: 'ip' | 'ip6'): string {
  return `table ${family} srtgw {
  chain out {
    type nat hook output priority -100;
    udp dport 53 redirect to :${FORWARDER_PORT}
    tcp dport 53 redirect to :${FORWARDER_PORT}
  }
}`;
}

/**
 * `unshare -n` runs the setup script, which execs the forwarder with --ready-fd 3 (a pipe to this
 * process): its pid holds the namespace, and clients join it with nsenter. Resolves once "ready"
 * arrives on the pipe, so every test also relies on --ready-fd meaning "bound".
 */
async function startJail(forwarder: string, gatewaySocket: string): Promise<Jail> {
  const v6 = ipv6 ? `ip -6 route add default dev lo src ::1\nnft -f - <<'NFT'\n${nftRedirect('ip6')}\nNFT` : '';
  const script = `set -e
ip link set lo up
ip route add default dev lo src 127.0.0.1
nft -f - <<'NFT'
${nftRedirect('ip')}
NFT
${v6}
exec "$0" --listen-port ${FORWARDER_PORT} --gateway-socket "$1" --ready-fd 3
`;
  // detached: its own process group, so afterAll can kill the forwarder and its TCP children at once.
  const child = spawn('unshare', ['-n', 'sh', '-c', script, forwarder, gatewaySocket], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stderr = '';
  let ready = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => (stderr += text));
  const readyPipe = child.stdio[3] as net.Socket;
  readyPipe.setEncoding('utf8');
  const readyClosed = new Promise<void>((resolve) => readyPipe.once('close', () => resolve()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`forwarder not ready in ${READY_TIMEOUT_MS} ms:\n${stderr}`)), READY_TIMEOUT_MS);
    readyPipe.on('data', (text: string) => {
      ready += text;
      if (ready.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void readyClosed.then(() => {
      clearTimeout(timer);
      reject(new Error(`the ready pipe closed without "ready" (forwarder or setup failed):\n${stderr}`));
    });
  });
  if (child.pid === undefined) throw new Error('unshare has no pid');
  return { process: child, pid: child.pid, stderr: () => stderr, readyText: () => ready, readyClosed, exited };
}

function stopJail(jail: Jail | undefined): void {
  if (!jail || jail.process.exitCode !== null || jail.process.signalCode !== null) return;
  try {
    process.kill(-jail.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

interface DigResult {
  code: number;
  stdout: string;
  /** The status from the header line (NOERROR, NXDOMAIN, ...), or '' without a reply. */
  status: string;
  flags: string[];
  /** The rdata of the answer section's records. */
  answers: string[];
}

/** The real dig inside the jail; a non-zero exit is a result, not an exception. */
async function dig(jail: Jail, args: string[]): Promise<DigResult> {
  let stdout = '';
  let code = 0;
  try {
    ({ stdout } = await execFileAsync('nsenter', ['-t', String(jail.pid), '-n', 'dig', '+time=3', '+tries=1', ...args], { timeout: 20_000 }));
  } catch (error) {
    const failed = error as { code?: number; stdout?: string };
    code = typeof failed.code === 'number' ? failed.code : -1;
    stdout = failed.stdout ?? '';
  }
  // The last reply dig printed (after a TC retry there are two).
  const status = [...stdout.matchAll(/status: ([A-Z]+)/g)].pop()?.[1] ?? '';
  const flags = ([...stdout.matchAll(/;; flags: ([a-z ]+);/g)].pop()?.[1] ?? '').split(' ').filter(Boolean);
  const answerBlock = stdout.split(';; ANSWER SECTION:\n').pop() ?? '';
  const answers = stdout.includes(';; ANSWER SECTION:')
    ? answerBlock
        .split('\n\n')[0]!
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => line.split('\t').pop() ?? '')
    : [];
  return { code, stdout, status, flags, answers };
}

// Raw DNS from python sockets inside the jail, for what dig cannot do: fixed IDs across clients,
// garbage, floods. Prints one JSON line.
const CLIENT = String.raw`
import json, os, select, socket, struct, sys, time
mode, args = sys.argv[1], json.loads(sys.argv[2])

def query(qid, name, qtype=1, edns=None):
    qname = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
    msg = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1 if edns else 0) + qname + struct.pack(">HH", qtype, 1)
    if edns:
        msg += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return msg

def skip_name(d, o):
    while True:
        n = d[o]
        if n == 0: return o + 1
        if n & 0xC0 == 0xC0: return o + 2
        o += 1 + n

def parse(d):
    qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", d[:12])
    o = 12
    for _ in range(qd): o = skip_name(d, o) + 4
    question = d[12:o]
    answers = []
    for _ in range(an):
        o = skip_name(d, o)
        rtype, _, _, rdlength = struct.unpack(">HHIH", d[o:o + 10])
        rdata = d[o + 10:o + 10 + rdlength]
        o += 10 + rdlength
        if rtype == 1: answers.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == 28: answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
        else: answers.append(rdata.hex())
    return {"id": qid, "rcode": flags & 0xF, "tc": bool(flags & 0x200), "question": question.hex(), "answers": answers}

def udp(host):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, 53))
    return s

def collect(socks, timeout):
    got = {}
    order = []
    deadline = time.monotonic() + timeout
    while len(got) < len(socks) and time.monotonic() < deadline:
        ready, _, _ = select.select([s for s in socks if s not in got], [], [], max(0, deadline - time.monotonic()))
        for s in ready:
            got[s] = s.recv(65535)
            order.append(socks.index(s))
    return [parse(got[s]) if s in got else None for s in socks], order

if mode == "same-id":
    # Every client sends ID 0x4242 before anyone reads: the forwarder must keep them apart.
    socks, sent = [], []
    for host, name, qtype in args:
        s = udp(host)
        q = query(0x4242, name, qtype)
        socks.append(s)
        sent.append(q[12:].hex())
    for s, (host, name, qtype) in zip(socks, args):
        s.send(query(0x4242, name, qtype))
    replies, order = collect(socks, 5)
    print(json.dumps({"sent": sent, "replies": replies, "order": order}))
elif mode == "garbage":
    s = udp(args["host"])
    for payload in args["payloads"]:
        s.send(bytes.fromhex(payload) if payload != "big" else os.urandom(5000))
    s.send(query(0x1111, args["name"]))
    # A header-only packet is answered FORMERR by the resolver: skip to the real query's answer.
    result = None
    deadline = time.monotonic() + 3
    while result is None and time.monotonic() < deadline:
        ready, _, _ = select.select([s], [], [], 1)
        if ready:
            reply = parse(s.recv(65535))
            if reply["id"] == 0x1111: result = reply
    print(json.dumps(result))
elif mode == "garbage-midflight":
    # One client's query is in flight when another sends what a resolver can only hang up on.
    asker, vandal = udp(args["host"]), udp(args["host"])
    asker.send(query(0x3333, args["name"]))
    time.sleep(0.05)
    for payload in args["payloads"]:
        vandal.send(bytes.fromhex(payload))
    replies, _ = collect([asker], 3)
    print(json.dumps(replies[0]))
elif mode == "load":
    # n queries on one socket with at most window in flight; every answer must carry an ID that is
    # outstanding, exactly once.
    s = udp(args["host"])
    s.setblocking(False)
    n, window, name = args["n"], args["window"], args["name"]
    outstanding, sent, answered, wrong = set(), 0, 0, 0
    start = time.monotonic()
    deadline = start + 30
    while answered < n and time.monotonic() < deadline:
        while sent < n and len(outstanding) < window:
            qid = sent & 0xFFFF
            s.send(query(qid, name))
            outstanding.add(qid)
            sent += 1
        ready, _, _ = select.select([s], [], [], 2)
        if not ready: break
        while True:
            try: d = s.recv(4096)
            except BlockingIOError: break
            qid = struct.unpack(">H", d[:2])[0]
            if qid in outstanding:
                outstanding.discard(qid)
                answered += 1
            else:
                wrong += 1
    print(json.dumps({"sent": sent, "answered": answered, "wrong": wrong, "seconds": time.monotonic() - start}))
elif mode == "flood":
    # More unanswered queries than the forwarder keeps, then one that is answered.
    s = udp(args["host"])
    for i in range(args["n"]):
        s.send(query(i & 0xFFFF, "void.example.test"))
        if i % 256 == 255: time.sleep(0.005)  # let the forwarder keep up; the point is the table, not the socket buffer
    s.send(query(0x7777, args["name"]))
    deadline = time.monotonic() + 5
    result = None
    while time.monotonic() < deadline and result is None:
        ready, _, _ = select.select([s], [], [], 1)
        if ready:
            reply = parse(s.recv(4096))
            if reply["id"] == 0x7777: result = reply
    print(json.dumps(result))
elif mode == "tcp-cap":
    # Hold 'hold' TCP connections open, then ask over one more: it must wait until a slot frees.
    host, hold, name = args["host"], args["hold"], args["name"]
    held = [socket.create_connection((host, 53), timeout=5) for _ in range(hold)]
    time.sleep(0.5)
    extra = socket.create_connection((host, 53), timeout=5)
    q = query(0x2222, name)
    extra.sendall(struct.pack(">H", len(q)) + q)
    extra.setblocking(False)
    ready, _, _ = select.select([extra], [], [], 1.5)
    before = bool(ready)
    held.pop().close()
    ready, _, _ = select.select([extra], [], [], 5)
    after = bool(ready)
    print(json.dumps({"answered_at_cap": before, "answered_after_a_slot_freed": after}))
`;

async function runClient<T>(jail: Jail, mode: string, args: unknown): Promise<T> {
  const { stdout } = await execFileAsync('nsenter', ['-t', String(jail.pid), '-n', 'python3', '-c', CLIENT, mode, JSON.stringify(args)], {
    timeout: 60_000,
    maxBuffer: 4 << 20,
  });
  return JSON.parse(stdout) as T;
}

interface RawReply {
  id: number;
  rcode: number;
  tc: boolean;
  question: string;
  answers: string[];
}

const SYNTHETIC_V4 = /^198\.1[89]\.\d{1,3}\.\d{1,3}$/;
const SYNTHETIC_V6 = /^fd73:7274:6777:/;

function rssKb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? NaN);
}

describe.skipIf(skip !== null)('native DNS forwarder in a network namespace', () => {
  let dir: string;
  let forwarder: string;
  let gateway: GatewayProcess;
  let scripted: ScriptedResolver;
  let lateResolver: ScriptedResolver | undefined;
  let jail: Jail;
  let scriptedJail: Jail;
  let absentJail: Jail;
  const extraJails: Jail[] = [];

  beforeAll(async () => {
    forwarder = buildDnsForwarder();
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-dnsfwd-'));
    gateway = await startGatewayProcess({
      policyYaml: `version: 1\nrules:\n  - id: api\n    host: ${ALLOWED}\n`,
      args: ['--dns-socket', join(dir, 'dns.sock')],
    });
    scripted = await startScriptedResolver(join(dir, 'scripted.sock'));
    jail = await startJail(forwarder, join(dir, 'dns.sock'));
    scriptedJail = await startJail(forwarder, join(dir, 'scripted.sock'));
    absentJail = await startJail(forwarder, join(dir, 'absent.sock'));
  });

  afterAll(async () => {
    for (const j of [jail, scriptedJail, absentJail, ...extraJails]) stopJail(j);
    await gateway?.stop();
    await scripted?.close();
    await lateResolver?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints its usage for -h and exits 64 on bad usage', () => {
    expect(execFileSync(forwarder, ['-h'], { encoding: 'utf8' })).toContain('--gateway-socket PATH');
    for (const args of [
      [],
      ['--listen-port', '53'],
      ['--gateway-socket', '/tmp/x.sock'],
      ['--listen-port', '0', '--gateway-socket', '/tmp/x.sock'],
      ['--listen-port', '53', '--gateway-socket', '/tmp/x.sock', '--bogus', '1'],
      ['--listen-port', '53', '--gateway-socket', `/tmp/${'x'.repeat(120)}`],
      ['--listen-port', '53', '--gateway-socket', '/tmp/x.sock', '--ready-fd', '1'],
      ['--listen-port', '53', '--gateway-socket', '/tmp/x.sock', '--ready-fd', '900'], // not open
    ]) {
      const run = spawnSync(forwarder, args, { encoding: 'utf8' });
      expect({ args, status: run.status }).toEqual({ args, status: 64 });
    }
  });

  it('prints nothing on stderr when a supervisor waits on --ready-fd (the jailed user would see it)', () => {
    expect(jail.stderr()).not.toContain('listening on');
  });

  it('answers an A query sent to a nameserver that does not exist with a synthetic address', async () => {
    const result = await dig(jail, [`@${NOWHERE_V4}`, ALLOWED, 'A']);
    expect(result.code).toBe(0);
    expect(result.status).toBe('NOERROR');
    expect(result.answers).toHaveLength(1);
    expect(result.answers[0]).toMatch(SYNTHETIC_V4);
  });

  it('answers AAAA with a synthetic fd73:7274:6777:: address', async () => {
    const result = await dig(jail, [`@${NOWHERE_V4}`, ALLOWED, 'AAAA']);
    expect(result.status).toBe('NOERROR');
    expect(result.answers[0]).toMatch(SYNTHETIC_V6);
  });

  it('passes on the gateway\'s NXDOMAIN for a name no rule allows', async () => {
    const result = await dig(jail, [`@${NOWHERE_V4}`, 'evil.test', 'A']);
    expect(result.code).toBe(0);
    expect(result.status).toBe('NXDOMAIN');
    expect(result.answers).toEqual([]);
  });

  it('answers the same over TCP', async () => {
    const a = await dig(jail, ['+tcp', `@${NOWHERE_V4}`, ALLOWED, 'A']);
    const aaaa = await dig(jail, ['+tcp', `@${NOWHERE_V4}`, ALLOWED, 'AAAA']);
    const denied = await dig(jail, ['+tcp', `@${NOWHERE_V4}`, 'evil.test', 'A']);
    const udp = await dig(jail, [`@${NOWHERE_V4}`, ALLOWED, 'A']);
    expect(a.status).toBe('NOERROR');
    expect(a.answers).toEqual(udp.answers); // one map behind both transports
    expect(aaaa.answers[0]).toMatch(SYNTHETIC_V6);
    expect(denied.status).toBe('NXDOMAIN');
  });

  it.skipIf(!ipv6)('answers queries sent over IPv6, UDP and TCP', async () => {
    const udp = await dig(jail, [`@${NOWHERE_V6}`, ALLOWED, 'AAAA']);
    const tcp = await dig(jail, ['+tcp', `@${NOWHERE_V6}`, ALLOWED, 'A']);
    expect(udp.answers[0]).toMatch(SYNTHETIC_V6);
    expect(tcp.answers[0]).toMatch(SYNTHETIC_V4);
  });

  it('keeps clients that use the same DNS ID apart', async () => {
    const hosts = ipv6 ? [NOWHERE_V4, NOWHERE_V6] : [NOWHERE_V4];
    const asks: [string, string, number][] = [];
    for (let i = 0; i < 12; i++) {
      const host = hosts[i % hosts.length]!;
      if (i % 3 === 0) asks.push([host, ALLOWED, 1]);
      else if (i % 3 === 1) asks.push([host, ALLOWED, 28]);
      else asks.push([host, `n${i}.evil.test`, 1]);
    }
    const { sent, replies } = await runClient<{ sent: string[]; replies: (RawReply | null)[] }>(jail, 'same-id', asks);
    replies.forEach((reply, i) => {
      const [, name, qtype] = asks[i]!;
      expect(reply, `client ${i} got no answer`).not.toBeNull();
      expect(reply!.id).toBe(0x4242);
      // The echoed question is the client's own: an answer meant for another client would differ.
      expect(sent[i]!.startsWith(reply!.question)).toBe(true);
      if (name === ALLOWED) expect(reply!.answers[0]).toMatch(qtype === 1 ? SYNTHETIC_V4 : SYNTHETIC_V6);
      else expect(reply!.rcode).toBe(3);
    });
  });

  it('writes one "kind":"dns" audit line per query, UDP and TCP', async () => {
    const tag = Date.now().toString(36);
    const names = [`udp-${tag}.audit.test`, `tcp-${tag}.audit.test`];
    await dig(jail, [`@${NOWHERE_V4}`, names[0]!, 'A']);
    await dig(jail, ['+tcp', `@${NOWHERE_V4}`, names[1]!, 'A']);
    await dig(jail, [`@${NOWHERE_V4}`, ALLOWED, 'TXT']);
    await gateway.waitForAudit((l) => l.kind === 'dns' && l.name === names[1]);
    await gateway.waitForAudit((l) => l.kind === 'dns' && l.name === ALLOWED && l.qtype === 'TXT');
    const lines = await gateway.auditLines();
    const forName = (name: string, qtype = 'A') => lines.filter((l) => l.kind === 'dns' && l.name === name && l.qtype === qtype);
    expect(forName(names[0]!)).toHaveLength(1);
    expect(forName(names[0]!)[0]).toMatchObject({ decision: 'denied', rcode: 'NXDOMAIN' });
    expect(forName(names[1]!)).toHaveLength(1);
    expect(forName(ALLOWED, 'TXT')).toHaveLength(1);
    expect(forName(ALLOWED, 'TXT')[0]).toMatchObject({ decision: 'nodata', rcode: 'NOERROR' });
  });

  // The real resolver's largest answer (PTR of a synthetic IPv6 address for a 253-byte name) is
  // ~360 bytes, under the 512 a UDP client without EDNS takes, so the truncation path is driven by
  // the scripted resolver's 1.45 KB TXT answer.
  it('truncates an answer too big for the client over UDP (TC=1, question kept), and dig retries over TCP', async () => {
    const ignored = await dig(scriptedJail, ['+noedns', '+ignore', `@${NOWHERE_V4}`, 'big.example.test', 'TXT']);
    expect(ignored.flags).toContain('tc');
    expect(ignored.stdout).toMatch(/QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: 0/);
    expect(ignored.stdout).toMatch(/;big\.example\.test\.\s+IN\s+TXT/);

    const retried = await dig(scriptedJail, ['+noedns', `@${NOWHERE_V4}`, 'big.example.test', 'TXT']);
    expect(retried.stdout).toContain('Truncated, retrying in TCP mode');
    expect(retried.flags).not.toContain('tc');
    expect(retried.answers).toEqual([BIG_TXT.map((s) => `"${s}"`).join(' ')]);
  });

  it('honours the EDNS0 payload size: 1232 is too small for 1.45 KB, 4096 takes it over UDP', async () => {
    const small = await dig(scriptedJail, ['+bufsize=1232', '+ignore', `@${NOWHERE_V4}`, 'big.example.test', 'TXT']);
    expect(small.flags).toContain('tc');
    const large = await dig(scriptedJail, ['+bufsize=4096', '+ignore', `@${NOWHERE_V4}`, 'big.example.test', 'TXT']);
    expect(large.flags).not.toContain('tc');
    expect(large.answers).toHaveLength(1);
    // A size below 512 means 512 (RFC 6891): a 300-byte answer still fits.
    const tiny = await dig(scriptedJail, ['+bufsize=100', '+ignore', `@${NOWHERE_V4}`, 'medium.example.test', 'TXT']);
    expect(tiny.flags).not.toContain('tc');
    expect(tiny.answers).toEqual([`"${MEDIUM_TXT}"`]);
  });

  it('delivers answers that come back out of order to the client that asked', async () => {
    const { replies, order } = await runClient<{ replies: (RawReply | null)[]; order: number[] }>(scriptedJail, 'same-id', [
      [NOWHERE_V4, 'slow.example.test', 1],
      [NOWHERE_V4, 'fast.example.test', 1],
    ]);
    expect(order).toEqual([1, 0]); // the second query's answer overtook the first's
    expect(replies.map((r) => r?.id)).toEqual([0x4242, 0x4242]);
    expect(Buffer.from(replies[0]!.question, 'hex').toString('latin1')).toContain('slow');
    expect(Buffer.from(replies[1]!.question, 'hex').toString('latin1')).toContain('fast');
  });

  it('drops queries when the gateway is absent (fail closed): dig gets no reply, UDP or TCP', async () => {
    // dig's own timeout (1 s, one try) ends each query: a forwarder that held them longer, or
    // answered, would show in the exit code and status, not in how long this takes.
    const udp = await dig(absentJail, ['+time=1', '+tries=1', `@${NOWHERE_V4}`, ALLOWED, 'A']);
    expect(udp.code).toBe(9); // "no reply from server"
    expect(udp.status).toBe('');
    const tcp = await dig(absentJail, ['+tcp', '+time=1', '+tries=1', `@${NOWHERE_V4}`, ALLOWED, 'A']);
    expect(tcp.code).toBe(9);
    expect(tcp.status).toBe('');
    expect(absentJail.process.exitCode).toBeNull(); // still running, still refusing
  });

  it('starts answering once the gateway socket appears, and reconnects when the gateway drops the connection', async () => {
    lateResolver = await startScriptedResolver(join(dir, 'absent.sock'));
    expect((await dig(absentJail, [`@${NOWHERE_V4}`, 'late.example.test', 'A'])).answers).toEqual(['192.0.2.1']);
    lateResolver.dropConnections();
    await new Promise((r) => setTimeout(r, 100));
    expect((await dig(absentJail, [`@${NOWHERE_V4}`, 'again.example.test', 'A'])).answers).toEqual(['192.0.2.1']);
    expect(lateResolver.connections()).toBe(2);
  });

  it('survives garbage datagrams (3 bytes, 5000 bytes, random, a response) and keeps answering', async () => {
    const response = '4242818000010000000000000161047465737400' + '00010001'; // QR set
    const reply = await runClient<RawReply | null>(jail, 'garbage', {
      host: NOWHERE_V4,
      payloads: ['010203', 'big', 'ab'.repeat(40), response, '00'.repeat(12) + 'ff'],
      name: ALLOWED,
    });
    expect(reply?.id).toBe(0x1111);
    expect(reply?.answers[0]).toMatch(SYNTHETIC_V4);
    expect(jail.process.exitCode).toBeNull();
  });

  it('a malformed query (a name running past the packet) does not cost another client its answer in flight', async () => {
    // 12-byte header with QDCOUNT=1, then a 5-byte label with only 2 bytes present.
    const runsPast = '5555000000010000000000000561620000';
    const reply = await runClient<RawReply | null>(scriptedJail, 'garbage-midflight', {
      host: NOWHERE_V4,
      payloads: [runsPast],
      name: 'slow.example.test',
    });
    expect(reply?.id).toBe(0x3333);
    expect(reply?.answers).toEqual(['192.0.2.1']);
  });

  it('answers 2000 pipelined queries, each exactly once under its own ID, in bounded memory', async () => {
    const result = await runClient<{ sent: number; answered: number; wrong: number; seconds: number }>(scriptedJail, 'load', {
      host: NOWHERE_V4,
      n: 2000,
      window: 32,
      name: 'load.example.test',
    });
    expect(result).toMatchObject({ sent: 2000, answered: 2000, wrong: 0 });
    expect(rssKb(scriptedJail.pid)).toBeLessThan(16 * 1024);
  });

  it('keeps at most 4096 queries waiting: past that the oldest is dropped and new ones still work', async () => {
    const reply = await runClient<RawReply | null>(scriptedJail, 'flood', { host: NOWHERE_V4, n: 5000, name: 'after-flood.example.test' });
    expect(reply?.answers).toEqual(['192.0.2.1']);
    expect(rssKb(scriptedJail.pid)).toBeLessThan(16 * 1024);
  });

  it('serves at most 256 TCP clients at once; the next waits for a free slot', async () => {
    const result = await runClient<{ answered_at_cap: boolean; answered_after_a_slot_freed: boolean }>(scriptedJail, 'tcp-cap', {
      host: NOWHERE_V4,
      hold: 256,
      name: 'cap.example.test',
    });
    expect(result).toEqual({ answered_at_cap: false, answered_after_a_slot_freed: true });
  });

  it('--ready-fd: writes "ready" and closes the fd once bound, so a query sent at once is answered; SIGTERM stops it', async () => {
    const fresh = await startJail(forwarder, join(dir, 'dns.sock'));
    extraJails.push(fresh);
    const result = await dig(fresh, ['+time=2', `@${NOWHERE_V4}`, ALLOWED, 'A']);
    expect(result.answers[0]).toMatch(SYNTHETIC_V4);
    await fresh.readyClosed;
    expect(fresh.readyText()).toBe('ready\n');
    process.kill(fresh.pid, 'SIGTERM');
    expect(await fresh.exited).toEqual({ code: 0, signal: null });
  });

  it('--ready-fd: a forwarder that cannot listen closes the fd without "ready" and exits 1', async () => {
    // A second forwarder in the first one's namespace finds the port taken.
    const child = spawn(
      'nsenter',
      ['-t', String(jail.pid), '-n', forwarder, '--listen-port', String(FORWARDER_PORT), '--gateway-socket', join(dir, 'dns.sock'), '--ready-fd', '3'],
      { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] },
    );
    let ready = '';
    let stderr = '';
    (child.stdio[3] as net.Socket).setEncoding('utf8').on('data', (text: string) => (ready += text));
    child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    expect(code).toBe(1);
    expect(ready).toBe('');
    expect(stderr).toMatch(/cannot listen on 127\.0\.0\.1:15353: Address already in use/);
  });
});
