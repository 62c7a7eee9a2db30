// The redirector's channel mode (what srt-gw run uses): in a real network namespace with
// nftables redirecting every TCP connect to it, it must hand each accepted socket itself to the
// gateway over node's IPC channel, naming the address the program dialled, so the gateway talks
// to the program's own socket; and when the gateway's end of the channel closes it must stop, so
// that new connections are refused (fail closed).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Socket } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { buildRedirector } from '../support/native-build.js';

const skip = capabilityGate(missingRoot(), missingCommand('nft'), missingCommand('unshare'), missingCommand('nsenter'), missingCommand('ip'), missingCommand('cc'), missingCommand('python3'));
const ipv6 = existsSync('/proc/net/if_inet6');
const execFileAsync = promisify(execFile);
const REDIRECT_PORT = 15002;

interface Handed {
  message: Record<string, unknown>;
  /** The handed-over socket's peer, read as it arrives. */
  peer: string | undefined;
}

const SETUP = `set -e
ip link set lo up
ip route add default dev lo src 127.0.0.1
${ipv6 ? 'ip -6 route add default dev lo src ::1' : ''}
nft -f - <<'NFT'
table inet srtgw {
  chain out {
    type nat hook output priority -100;
    ip daddr 127.0.0.0/8 return
    ip6 daddr ::1 return
    meta l4proto tcp redirect to :${REDIRECT_PORT}
  }
}
NFT
exec "$0" --listen-port ${REDIRECT_PORT} --gateway-channel 3 --ready-fd 4
`;

// Dials, sends "ping", prints what comes back: the program knows nothing of the redirector.
const CLIENT = String.raw`
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"ping")
print(s.recv(100).decode())
`;

describe.skipIf(skip !== null)('srt-gw-redirector --gateway-channel (hands sockets to the gateway)', () => {
  let redirector: ChildProcess;
  const handed: Handed[] = [];
  let stderr = '';

  beforeAll(async () => {
    const binary = buildRedirector();
    // fd 3: node's IPC channel (the gateway's side stays here); fd 4: the ready pipe.
    redirector = spawn('unshare', ['-n', 'sh', '-c', SETUP, binary], { stdio: ['ignore', 'ignore', 'pipe', 'ipc', 'pipe'] });
    redirector.stderr?.setEncoding('utf8');
    redirector.stderr?.on('data', (text: string) => (stderr += text));
    redirector.on('message', (message: unknown, handle: unknown) => {
      if (handle instanceof Socket) {
        handed.push({ message: message as Record<string, unknown>, peer: handle.remoteAddress });
        handle.once('data', (chunk) => handle.end(`pong:${String(chunk)}`));
      }
    });
    const ready = redirector.stdio[4]!;
    let said = '';
    await new Promise<void>((resolve, reject) => {
      ready.on('data', (chunk: Buffer) => (said += chunk.toString()));
      ready.once('end', () => (said === 'ready\n' ? resolve() : reject(new Error(`no ready line: ${JSON.stringify(said)} ${stderr}`))));
    });
  });

  afterAll(() => {
    if (redirector.exitCode === null) redirector.kill('SIGKILL');
  });

  const dial = (host: string, port: number) =>
    execFileAsync('nsenter', ['-t', String(redirector.pid), '-n', 'python3', '-c', CLIENT, host, String(port)], { timeout: 10_000 });

  it('hands the program\'s own IPv4 socket over, naming the address and port it dialled', async () => {
    const { stdout } = await dial('203.0.113.9', 443);
    expect(stdout.trim()).toBe('pong:ping');
    const last = handed.at(-1)!;
    expect(last.message).toEqual({ srtgw: 'redirected', address: '203.0.113.9', port: 443, source: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    // The gateway holds the program's TCP socket itself: its peer is the program, not a relay.
    expect(last.peer).toBe('127.0.0.1');
  });

  it.runIf(ipv6)('does the same for IPv6', async () => {
    const { stdout } = await dial('2001:db8::9', 8443);
    expect(stdout.trim()).toBe('pong:ping');
    expect(handed.at(-1)!.message).toEqual({ srtgw: 'redirected', address: '2001:db8::9', port: 8443, source: expect.stringMatching(/^\[::1\]:\d+$/) });
  });

  it('runs as one process: no relay child per connection', async () => {
    await Promise.all([dial('203.0.113.10', 80), dial('203.0.113.11', 80), dial('203.0.113.12', 80)]);
    // ps exits 1 when nothing matches, which is the expected answer here.
    const children = await execFileAsync('ps', ['--no-headers', '-o', 'pid', '--ppid', String(redirector.pid)]).catch((error: { stdout: string }) => error);
    expect(children.stdout.trim()).toBe('');
  });

  it('stops when the gateway closes its end, and new connections are refused (fail closed)', async () => {
    const exited = new Promise<number | null>((resolve) => redirector.once('exit', (code) => resolve(code)));
    // Keep the namespace alive after the redirector is gone, to dial into it.
    const holder = spawn('nsenter', ['-t', String(redirector.pid), '-n', 'sleep', '30'], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const before = handed.length;
    redirector.disconnect();
    expect(await exited).toBe(1);
    expect(stderr).toContain('the gateway closed its channel');
    const refused = await execFileAsync('nsenter', ['-t', String(holder.pid), '-n', 'python3', '-c', CLIENT, '203.0.113.9', '443'], { timeout: 10_000 }).catch((error: { stderr: string }) => error);
    expect(refused.stderr).toMatch(/ConnectionRefusedError/);
    expect(handed.length).toBe(before);
    holder.kill('SIGKILL');
  });
});
