// Host unix sockets stay out of `srt-gw run`'s Linux jail. bubblewrap's mounts leave home, the
// working tree's parent and other host paths visible, and a read-only mount does not stop
// connect() to a socket file, so the init's seccomp supervisor (native/unix-socket-supervisor.c)
// decides every connect and every send with a destination: sockets the jail created itself and
// those the policy lists in jail.allowUnixSockets work; any other host socket is refused and its
// listener never sees a connection or a datagram.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, startSrtGwRun, type SrtGwRunResult } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('python3'));

/** A host listener that counts the connections it accepted. */
interface HostListener {
  path: string;
  connections: number;
  server: net.Server;
}

async function listen(path: string): Promise<HostListener> {
  const listener: HostListener = { path, connections: 0, server: net.createServer() };
  listener.server.on('connection', (socket) => {
    listener.connections += 1;
    socket.on('error', () => undefined); // the jail's client closes at once
    socket.end('host\n');
  });
  await new Promise<void>((resolve, reject) => {
    listener.server.once('error', reject);
    listener.server.listen(path, resolve);
  });
  return listener;
}

/** A host datagram socket (python3: node has no AF_UNIX datagrams) that prints what it receives. */
async function listenDatagrams(path: string): Promise<{ process: ChildProcess; received: () => string }> {
  const script = 'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("ready",flush=True)\nwhile True:\n  print(s.recv(4096).decode(),flush=True)\n';
  const child = spawn('python3', ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      if (output.startsWith('ready\n')) resolve();
    });
    child.once('exit', () => reject(new Error('the host datagram listener exited')));
  });
  return { process: child, received: () => output.slice('ready\n'.length) };
}

/** Runs inside the jail; prints one JSON object: each case's outcome ("ok" or the errno name). */
const JAIL_SCRIPT = String.raw`
import errno, json, os, socket, sys, threading, time
host, home_sock, late, dgram, abstract, allowed = sys.argv[1:7]
out = {}
def attempt(name, fn):
    try:
        out[name] = fn() or "ok"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))

def connect(path, kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_UNIX, kind)
    s.settimeout(10)
    s.connect(path)
    s.close()

attempt("parent", lambda: connect(host))
attempt("home", lambda: connect(home_sock))
attempt("symlink", lambda: connect("link.sock"))
attempt("abstract", lambda: connect("\0" + abstract))
def send_datagram():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"from-jail-sendto", dgram)
attempt("dgram_sendto", send_datagram)
def send_datagram_msg():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendmsg([b"from-jail-sendmsg"], [], 0, dgram)
attempt("dgram_sendmsg", send_datagram_msg)
attempt("allowed", lambda: connect(allowed))
attempt("allowed_home", lambda: connect(os.path.expanduser("~/allowed-home.sock")))

# The jail's own sockets: in its working tree (relative and absolute) and in its /tmp.
def own_stream(bind_path, connect_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(bind_path)
    server.listen(1)
    def serve():
        c, _ = server.accept()
        c.sendall(c.recv(100).upper())
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    client = socket.socket(socket.AF_UNIX)
    client.connect(connect_path)
    client.sendall(b"echo")
    reply = client.recv(100)
    t.join()
    return "ok" if reply == b"ECHO" else "bad reply %r" % reply
attempt("own_cwd_relative", lambda: own_stream("own.sock", "own.sock"))
attempt("own_cwd_absolute", lambda: own_stream(os.path.join(os.getcwd(), "own2.sock"), os.path.join(os.getcwd(), "own2.sock")))
attempt("own_tmp", lambda: own_stream("/tmp/own.sock", "/tmp/own.sock"))
def own_datagram():
    r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    r.bind("/tmp/own-dgram.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"one", "/tmp/own-dgram.sock")
    s.sendmsg([b"two"], [], 0, "/tmp/own-dgram.sock")
    got = [r.recv(10), r.recv(10)]
    return "ok" if got == [b"one", b"two"] else "bad %r" % got
attempt("own_dgram", own_datagram)

# A descriptor passed with SCM_RIGHTS arrives as the file the command meant.
def pass_fd():
    with open("/tmp/passed.txt", "w") as f:
        f.write("passed-content")
    a, b = socket.socketpair()
    fd = os.open("/tmp/passed.txt", os.O_RDONLY)
    socket.send_fds(a, [b"x"], [fd])
    _, fds, _, _ = socket.recv_fds(b, 10, 1)
    return "ok" if os.read(fds[0], 100) == b"passed-content" else "bad content"
attempt("scm_rights", pass_fd)

# TCP inside the jail's own loopback still connects (the supervisor makes the call).
def loopback_tcp():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=10)
    server.accept()[0].close()
    client.close()
attempt("loopback_tcp", loopback_tcp)

# A socket a host process creates after the jail started.
open("started", "w").close()
print("STARTED", flush=True)
deadline = time.time() + 60
while not os.path.exists(late) and time.time() < deadline:
    time.sleep(0.05)
attempt("late", lambda: connect(late))
print(json.dumps(out), flush=True)
`;

describe.skipIf(skip !== null)('srt-gw run: host unix sockets', () => {
  let root = '';
  let home = '';
  let parent = '';
  let work = '';
  const listeners: HostListener[] = [];
  let datagrams: Awaited<ReturnType<typeof listenDatagrams>> | null = null;

  beforeAll(() => {
    ensureBuilt();
    // Not under /tmp or /run, which the jail replaces: these paths are visible inside, as a
    // user's home and a project's parent directory are.
    root = realpathSync(mkdtempSync('/var/tmp/srt-gw-unix-'));
    home = join(root, 'home');
    parent = join(root, 'projects');
    work = join(parent, 'work');
    mkdirSync(home);
    mkdirSync(work, { recursive: true });
  });

  afterAll(async () => {
    for (const listener of listeners) await new Promise((resolve) => listener.server.close(resolve));
    datagrams?.process.kill('SIGKILL');
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('refuses host sockets the jail did not create, and lets its own and the allowed ones connect', async () => {
    const host = await listen(join(parent, 'host.sock'));
    const agent = await listen(join(home, 'agent.sock'));
    const allowed = await listen(join(parent, 'allowed.sock'));
    const allowedHome = await listen(join(home, 'allowed-home.sock'));
    const abstractName = `srt-gw-test-abstract-${process.pid}`;
    const abstract = await listen(`\0${abstractName}`);
    listeners.push(host, agent, allowed, allowedHome, abstract);
    symlinkSync(host.path, join(work, 'link.sock'));
    datagrams = await listenDatagrams(join(parent, 'dgram.sock'));
    const latePath = join(parent, 'late.sock');
    const policy = join(root, 'policy.yaml');
    writeFileSync(policy, `version: 1\nrules: []\njail:\n  allowUnixSockets:\n    - ${allowed.path}\n    - ~/allowed-home.sock\n`);

    const running = startSrtGwRun({
      flags: ['--ca-dir', join(root, 'ca'), '-q', '--policy', policy],
      command: ['python3', '-c', JAIL_SCRIPT, host.path, agent.path, latePath, join(parent, 'dgram.sock'), abstractName, allowed.path],
      cwd: work,
      env: jailTestEnv({ HOME: home }),
      timeoutMs: 90_000,
    });
    await running.waitForStdout(/STARTED/, 60_000);
    const late = await listen(latePath);
    listeners.push(late);
    const result: SrtGwRunResult = await running.finished;
    expect(result.code, result.stderr).toBe(0);
    const outcome = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, string>;

    expect(outcome).toEqual({
      parent: 'EACCES',
      home: 'EACCES',
      symlink: 'EACCES',
      late: 'EACCES',
      dgram_sendto: 'EACCES',
      dgram_sendmsg: 'EACCES',
      // Abstract sockets belong to a network namespace, and the jail has its own.
      abstract: 'ECONNREFUSED',
      allowed: 'ok',
      allowed_home: 'ok',
      own_cwd_relative: 'ok',
      own_cwd_absolute: 'ok',
      own_tmp: 'ok',
      own_dgram: 'ok',
      scm_rights: 'ok',
      loopback_tcp: 'ok',
    });
    // The refused listeners saw nothing; the allowed ones one connection each.
    expect([host, agent, late, abstract].map((listener) => listener.connections)).toEqual([0, 0, 0, 0]);
    expect(datagrams.received()).toBe('');
    expect([allowed.connections, allowedHome.connections]).toEqual([1, 1]);
    expect(result.stderr).toContain(`srt-gw: refused a connection to the unix socket ${host.path}: it was not created inside the jail`);
  });
});
