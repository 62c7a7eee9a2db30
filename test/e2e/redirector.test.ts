// The native redirector inside a real network namespace: nftables redirects every TCP connect
// to it, and it must hand the connection to the gateway's unix socket with a PROXY v2 header
// naming the address the program dialled, relay bytes both ways with half-close, and fail
// closed when the gateway is not there. The gateway is played by a small unix-socket echo
// server that speaks the real PROXY v2 framing.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import proxyProtocol from 'proxy-protocol-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { buildRedirector } from '../support/native-build.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('nft'),
  missingCommand('unshare'),
  missingCommand('nsenter'),
  missingCommand('ip'),
  missingCommand('cc'),
  missingCommand('python3'),
);
// A kernel booted without IPv6 still gets the IPv4 cases.
const ipv6 = existsSync('/proc/net/if_inet6');

const execFileAsync = promisify(execFile);
const REDIRECT_PORT = 15001;
const READY_TIMEOUT_MS = 10_000;

/** A PROXY v2 header as the fake gateway saw it. */
interface SeenHeader {
  source: string;
  destination: string;
}

interface FakeGateway {
  server: net.Server;
  headers: SeenHeader[];
}

function formatAddress(address: proxyProtocol.IPv4Address | proxyProtocol.IPv6Address, port: number): string {
  if (address instanceof proxyProtocol.IPv4Address) return `${address.address.join('.')}:${port}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((address.address[i] ?? 0) << 8) | (address.address[i + 1] ?? 0)).toString(16));
  // The URL parser prints IPv6 in its canonical compressed form, brackets included.
  return `${new URL(`http://[${groups.join(':')}]/`).hostname}:${port}`;
}

/**
 * Reads the PROXY v2 header, records it, answers "dst=ADDR:PORT\n" and then echoes the rest of
 * the stream, ending its side only after the client ended its own (half-close both ways).
 */
function startFakeGateway(socketPath: string): Promise<FakeGateway> {
  const headers: SeenHeader[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let pending = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 16) return;
      const length = 16 + pending.readUInt16BE(14);
      if (pending.length < length) return;
      socket.removeListener('data', onData);
      const parsed = proxyProtocol.V2ProxyProtocol.parse(pending.subarray(0, length));
      const address = parsed.proxyAddress;
      if (!(address instanceof proxyProtocol.IPv4ProxyAddress || address instanceof proxyProtocol.IPv6ProxyAddress)) {
        socket.destroy();
        return;
      }
      const seen = {
        source: formatAddress(address.sourceAddress, address.sourcePort),
        destination: formatAddress(address.destinationAddress, address.destinationPort),
      };
      headers.push(seen);
      socket.write(`dst=${seen.destination}\n`);
      if (pending.length > length) socket.write(pending.subarray(length));
      socket.pipe(socket);
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve({ server, headers }));
  });
}

/** A network namespace whose only way out for TCP is the redirector. */
interface Jail {
  process: ChildProcess;
  pid: number;
  stderr: () => string;
}

/**
 * `unshare -n` runs the setup script, which execs the redirector: its pid holds the namespace,
 * and clients join it with nsenter. The route needs `src 127.0.0.1`: with a bare
 * `default dev lo` the connect picks source 0.0.0.0 and the redirected handshake never completes.
 */
async function startJail(redirector: string, gatewaySocket: string): Promise<Jail> {
  const v6 = ipv6
    ? `ip -6 route add default dev lo src ::1
nft -f - <<'NFT'
table ip6 srtgw {
  chain out {
    type nat hook output priority -100;
    ip6 daddr ::1 return
    meta l4proto tcp redirect to :${REDIRECT_PORT}
  }
}
NFT`
    : '';
  const script = `set -e
ip link set lo up
ip route add default dev lo src 127.0.0.1
nft -f - <<'NFT'
table ip srtgw {
  chain out {
    type nat hook output priority -100;
    ip daddr 127.0.0.0/8 return
    meta l4proto tcp redirect to :${REDIRECT_PORT}
  }
}
NFT
${v6}
exec "$0" --listen-port ${REDIRECT_PORT} --gateway-socket "$1"
`;
  // detached: its own process group, so afterAll can kill the redirector and its children at once.
  const child = spawn('unshare', ['-n', 'sh', '-c', script, redirector, gatewaySocket], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redirector not ready in ${READY_TIMEOUT_MS} ms:\n${stderr}`)), READY_TIMEOUT_MS);
    child.stderr?.on('data', (text: string) => {
      stderr += text;
      if (stderr.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`jail setup exited (${code ?? signal}) before the redirector listened:\n${stderr}`));
    });
  });
  if (child.pid === undefined) throw new Error('unshare has no pid');
  return { process: child, pid: child.pid, stderr: () => stderr };
}

function stopJail(jail: Jail | undefined): void {
  if (!jail || jail.process.exitCode !== null || jail.process.signalCode !== null) return;
  try {
    process.kill(-jail.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

// The client runs inside the namespace and knows nothing of the redirector: it just dials.
const CLIENT = String.raw`
import hashlib, json, os, socket, sys, threading, time
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])

def read_all(s):
    chunks = []
    while True:
        d = s.recv(65536)
        if not d:
            return b"".join(chunks)
        chunks.append(d)

if mode == "hello":
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    sys.stdout.buffer.write(read_all(s))
elif mode == "big":
    payload = os.urandom(1 << 20)
    s = socket.create_connection((host, port), timeout=20)
    def send():
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
    t = threading.Thread(target=send)
    t.start()
    reply = read_all(s)
    t.join()
    head, _, body = reply.partition(b"\n")
    print(json.dumps({"head": head.decode(), "sent": hashlib.sha256(payload).hexdigest(),
                      "received": hashlib.sha256(body).hexdigest(), "length": len(body)}))
elif mode == "many":
    results = {}
    def one(p):
        s = socket.create_connection((host, p), timeout=10)
        s.sendall(b"n%d" % p)
        s.shutdown(socket.SHUT_WR)
        results[p] = read_all(s).decode()
    threads = [threading.Thread(target=one, args=(port + i,)) for i in range(20)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps(results))
elif mode == "closed":
    start = time.monotonic()
    try:
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(b"hello")
        data = s.recv(100)
        outcome = "eof" if data == b"" else "data"
    except ConnectionResetError:
        outcome = "reset"
    except socket.timeout:
        outcome = "timeout"
    except OSError as e:
        outcome = "error " + str(e)
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - start}))
`;

async function runClient(jail: Jail, mode: string, host: string, port: number): Promise<string> {
  const { stdout } = await execFileAsync('nsenter', ['-t', String(jail.pid), '-n', 'python3', '-c', CLIENT, mode, host, String(port)], {
    timeout: 30_000,
    maxBuffer: 4 << 20,
  });
  return stdout;
}

describe.skipIf(skip !== null)('native redirector in a network namespace', () => {
  let dir: string;
  let redirector: string;
  let gateway: FakeGateway;
  let jail: Jail | undefined;
  let jailWithoutGateway: Jail | undefined;

  beforeAll(async () => {
    redirector = buildRedirector();
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-redirector-'));
    gateway = await startFakeGateway(join(dir, 'gateway.sock'));
    jail = await startJail(redirector, join(dir, 'gateway.sock'));
    jailWithoutGateway = await startJail(redirector, join(dir, 'absent.sock'));
  });

  afterAll(async () => {
    stopJail(jail);
    stopJail(jailWithoutGateway);
    if (gateway) await new Promise<void>((resolve) => gateway.server.close(() => resolve()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints its usage for -h', () => {
    expect(execFileSync(redirector, ['-h'], { encoding: 'utf8' })).toContain('--gateway-socket PATH');
  });

  it('hands a redirected IPv4 connection to the gateway with the dialled address', async () => {
    const reply = await runClient(jail!, 'hello', '203.0.113.9', 443);
    expect(reply).toBe('dst=203.0.113.9:443\nhello');
    expect(gateway.headers).toContainEqual({ source: expect.stringMatching(/^127\.0\.0\.1:\d+$/), destination: '203.0.113.9:443' });
  });

  it.skipIf(!ipv6)('hands a redirected IPv6 connection to the gateway with the dialled address', async () => {
    const reply = await runClient(jail!, 'hello', '2001:db8::9', 8443);
    expect(reply).toBe('dst=[2001:db8::9]:8443\nhello');
  });

  it('relays 1 MiB both ways intact', async () => {
    const result = JSON.parse(await runClient(jail!, 'big', '198.51.100.20', 80)) as Record<string, unknown>;
    expect(result.head).toBe('dst=198.51.100.20:80');
    expect(result.length).toBe(1 << 20);
    expect(result.received).toBe(result.sent);
  });

  it('keeps concurrent connections apart', async () => {
    const results = JSON.parse(await runClient(jail!, 'many', '203.0.113.10', 2000)) as Record<string, string>;
    for (let i = 0; i < 20; i++) expect(results[String(2000 + i)]).toBe(`dst=203.0.113.10:${2000 + i}\nn${2000 + i}`);
  });

  it('closes the connection at once when the gateway is absent (fail closed)', async () => {
    const result = JSON.parse(await runClient(jailWithoutGateway!, 'closed', '203.0.113.9', 443)) as { outcome: string; seconds: number };
    expect(['reset', 'eof']).toContain(result.outcome);
    expect(result.seconds).toBeLessThan(2);
  });
});
