// The Linux jail: bubblewrap makes new user, network, PID, IPC and UTS namespaces and the
// filesystem view; srt-gw-jail-init (native/jail-init.c) then wires the network namespace to the
// gateway and runs the command without capabilities, in nested namespaces where neither the
// gateway's sockets nor the helpers are visible.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { isIP, Socket } from 'node:net';
import { homedir, constants as osConstants } from 'node:os';
import { basename, delimiter, dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { OriginalDestination } from '../../gateway/listeners/proxy-protocol-header.js';
import { JAIL_SETUP_FAILED, type Jail, type JailedProcess, type JailGatewayEndpoints, type JailPrepareOptions, type JailSpawnOptions, type PreparedJail } from '../jail.js';
import { bwrapFilesystemArgs } from './bwrap-filesystem.js';
import { findNativeHelpers, NATIVE_BUILD_DIR, type NativeHelpers } from './native-helpers.js';
import { JAIL_PORTS, jailNftRuleset } from './nft-rules.js';

/** Where the run directory's parts appear inside the jail (under the jail's private /run). */
export const JAIL_PATHS = {
  gatewayDir: '/run/srt-gw/gateway',
  jailDir: '/run/srt-gw/jail',
  helpersDir: '/run/srt-gw/bin',
  /** The upper and work directories of reviewed writes; the init unmounts it once the overlays are up. */
  overlayLayersDir: '/run/srt-gw/layers',
} as const;

/** Distribution CA bundle files the trust bundle is mounted over, where they exist. */
export const DISTRIBUTION_CA_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt', // Debian, Ubuntu, Alpine, Arch
  '/etc/pki/tls/certs/ca-bundle.crt', // Fedora, RHEL
  '/etc/ssl/ca-bundle.pem', // openSUSE
  '/etc/ssl/cert.pem', // Alpine, macOS-style
] as const;

/**
 * Capabilities the init needs in the jail's user namespace (never the command: it drops them
 * all before exec): NET_ADMIN for lo, routes and nftables; SYS_ADMIN for the command's mount and
 * PID namespaces and its /proc; SETFCAP to map uid 0 into the command's user namespace (the
 * kernel asks for it since 5.12); NET_BIND_SERVICE for the helpers' ports below 1024.
 */
const INIT_CAPABILITIES = ['CAP_NET_ADMIN', 'CAP_SYS_ADMIN', 'CAP_SETFCAP', 'CAP_NET_BIND_SERVICE'] as const;

export interface BwrapInvocation {
  bwrap: string;
  nft: string;
  helpers: NativeHelpers;
  uid: number;
  gid: number;
  /** File descriptor numbers in bwrap's process: the control pipe, bwrap's JSON status, the gateway channel. */
  controlFd: number;
  statusFd: number;
  channelFd: number;
  /** Host paths of the files mounted into the jail. */
  nftRules: string;
  hostsFile: string;
  emptyFile: string;
  /** jail.allowUnixSockets, "~" expanded and symlinks resolved (see allowedUnixSocketPaths). */
  allowedUnixSockets?: readonly string[];
}

/**
 * jail.allowUnixSockets as host paths: "~" is the caller's home, and an existing path is replaced
 * by its real path, so a symlinked socket (Docker Desktop's, colima's) is checked as the socket it
 * names. The init compares the inode the command connects to with these paths' at each connect,
 * so a daemon that starts or restarts later is still matched.
 */
export function allowedUnixSocketPaths(entries: readonly string[], home: string = homedir()): string[] {
  return [
    ...new Set(
      entries.map((entry) => {
        const path = entry === '~' ? home : entry.startsWith('~/') ? join(home, entry.slice(2)) : entry;
        try {
          return realpathSync(path);
        } catch {
          return path;
        }
      }),
    ),
  ];
}

/** The jail's private /run and /tmp hide the host's; an allowed socket there is mounted in. */
const PRIVATE_IN_JAIL = ['/run/', '/tmp/'] as const;

/** The whole bwrap command line for one run (pure: tested in linux-jail.test.ts). */
export function bwrapArguments(options: JailPrepareOptions, invocation: BwrapInvocation): string[] {
  const { runDirectory } = options;
  const inJail = (hostPath: string, hostDir: string, jailDir: string) => join(jailDir, hostPath.slice(hostDir.length + 1));
  const args = [
    '--unshare-user',
    '--uid', '0',
    '--gid', '0',
    '--unshare-net',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    '--hostname', 'srt-gw-jail',
    '--die-with-parent',
    // SECURITY: the command cannot push keystrokes into the caller's terminal (TIOCSTI) —
    // also refused by the init's seccomp filter.
    '--new-session',
    '--cap-drop', 'ALL',
    ...INIT_CAPABILITIES.flatMap((cap) => ['--cap-add', cap]),
    // overlayfs does its work (the work directory it makes mode 000, copy-ups, whiteouts) with
    // the credentials of whoever mounted it: the init needs DAC_OVERRIDE for reviewed writes. It
    // acts only on the caller's own files (the only uid mapped) and is dropped before the command.
    ...(options.overlay === undefined ? [] : ['--cap-add', 'CAP_DAC_OVERRIDE']),
    '--json-status-fd', String(invocation.statusFd),
    // node tells a child where its IPC channel is; the command is not node's child and must not
    // go looking for one (it could not reach it: the init closes every descriptor but stdio).
    '--unsetenv', 'NODE_CHANNEL_FD',
    '--unsetenv', 'NODE_CHANNEL_SERIALIZATION_MODE',
    ...bwrapFilesystemArgs(options.filesystem, { emptyFile: invocation.emptyFile }),
    // The socket file itself, not its directory: nothing else of the host's /run or /tmp appears.
    ...(invocation.allowedUnixSockets ?? []).filter((path) => PRIVATE_IN_JAIL.some((dir) => path.startsWith(dir))).flatMap((path) => ['--ro-bind-try', path, path]),
    '--ro-bind', runDirectory.gatewayDir, JAIL_PATHS.gatewayDir,
    '--ro-bind', runDirectory.jailDir, JAIL_PATHS.jailDir,
    '--ro-bind', dirname(invocation.helpers.init), JAIL_PATHS.helpersDir,
    '--ro-bind', invocation.hostsFile, '/etc/hosts',
    ...(options.overlay === undefined ? [] : ['--bind', options.overlay.layersDir, JAIL_PATHS.overlayLayersDir]),
  ];
  for (const bundle of DISTRIBUTION_CA_BUNDLES) {
    if (existsSync(bundle)) args.push('--ro-bind', options.caBundle, bundle);
  }
  const helper = (key: keyof NativeHelpers) => join(JAIL_PATHS.helpersDir, basename(invocation.helpers[key]));
  args.push(
    '--chdir', options.cwd,
    '--',
    helper('init'),
    '--nft', invocation.nft,
    '--nft-rules', inJail(invocation.nftRules, runDirectory.jailDir, JAIL_PATHS.jailDir),
    '--redirector', helper('redirector'),
    '--redirect-port', String(JAIL_PORTS.redirectPort),
    '--gateway-channel', String(invocation.channelFd),
    '--dns-forwarder', helper('dnsForwarder'),
    '--dns-port', String(JAIL_PORTS.dnsPort),
    '--dns-socket', inJail(runDirectory.dnsSocketPath, runDirectory.gatewayDir, JAIL_PATHS.gatewayDir),
    '--hide', JAIL_PATHS.gatewayDir,
    '--uid', String(invocation.uid),
    '--gid', String(invocation.gid),
    '--control-fd', String(invocation.controlFd),
    ...(invocation.allowedUnixSockets ?? []).flatMap((path) => ['--allow-unix-socket', path]),
    ...(options.overlay === undefined ? [] : ['--overlay-layers', JAIL_PATHS.overlayLayersDir, ...options.overlay.roots.flatMap((root) => ['--overlay', root])]),
    '--',
    options.command,
    ...options.args,
  );
  return args;
}

/** Looks a program up on PATH and in the sbin directories an ordinary user's PATH may lack. */
export function findProgram(name: string, path: string | undefined = process.env.PATH): string | null {
  const dirs = [...(path ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'].filter((dir) => dir.startsWith('/'));
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

const HOSTS_FILE = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tsrt-gw-jail\n';

export class LinuxJail implements Jail {
  readonly platform = 'linux' as const;
  readonly caBundlePathInJail = DISTRIBUTION_CA_BUNDLES[0];
  private tools: { bwrap: string; nft: string; helpers: NativeHelpers } | null = null;

  constructor(private readonly nativeBuildDir: string = NATIVE_BUILD_DIR) {}

  checkAvailable(): void {
    if (this.tools) return;
    const bwrap = findProgram('bwrap');
    if (!bwrap) throw unavailable('bubblewrap (bwrap) is not installed; install it: apt-get install bubblewrap (Fedora: dnf install bubblewrap)');
    const nft = findProgram('nft');
    if (!nft) throw unavailable('nftables (nft) is not installed; install it: apt-get install nftables (Fedora: dnf install nftables)');
    this.tools = { bwrap, nft, helpers: findNativeHelpers(this.nativeBuildDir) };
  }

  spawn(options: JailSpawnOptions): JailedProcess {
    return this.prepare(options).start(options.gateway);
  }

  prepare(options: JailPrepareOptions): PreparedJail {
    this.checkAvailable();
    const tools = this.tools!;
    const { runDirectory } = options;
    const invocation: BwrapInvocation = {
      ...tools,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      controlFd: 3,
      statusFd: 4,
      channelFd: 5,
      nftRules: runDirectory.writeJailFile('rules.nft', jailNftRuleset()),
      hostsFile: runDirectory.writeJailFile('hosts', HOSTS_FILE),
      // Readable: every hidden file reads as this one, empty (jail/linux/bwrap-filesystem.ts).
      emptyFile: runDirectory.writeJailFile('empty', '', 0o444),
      allowedUnixSockets: allowedUnixSocketPaths(options.allowUnixSockets ?? []),
    };
    const stdio = normalizeStdio(options.stdio);
    const child = spawn(tools.bwrap, bwrapArguments(options, invocation), {
      env: options.env,
      // fd 3 control pipe, fd 4 bwrap's status, fd 5 the channel over which the redirector hands
      // each connection's socket to the gateway (node's IPC channel carries descriptors).
      stdio: [...stdio, 'pipe', 'pipe', 'ipc'],
      // The command's cwd is set inside by --chdir; bwrap itself starts anywhere readable.
      cwd: '/',
    });
    holdOutput(child);
    let gateway: JailGatewayEndpoints | null = null;
    child.on('message', (message: unknown, handle: unknown) => {
      const destination = redirectedDestination(message);
      // Only sockets with a well-formed destination are served; anything else is dropped (and
      // nothing can connect before start(): the command is not running yet).
      if (handle instanceof Socket && destination && gateway) gateway.acceptRedirected(handle, destination);
      else if (handle instanceof Socket) handle.destroy();
    });
    const control = child.stdio[3] as NodeJS.WritableStream & { destroyed?: boolean };
    const status = child.stdio[4] as NodeJS.ReadableStream;
    control.on('error', () => undefined);
    // bwrap writes {"exit-code": N} only when the jail was built and its init ran to the end;
    // without it, bwrap failed while building the jail (its message is on stderr).
    let statusText = '';
    status.setEncoding('utf8');
    status.on('data', (chunk: string) => {
      if (statusText.length < 4096) statusText += chunk;
    });
    const exited = new Promise<number>((resolve, reject) => {
      child.once('error', (error: NodeJS.ErrnoException) =>
        reject(new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `cannot start bubblewrap (${tools.bwrap}): ${error.code ?? error.message}`, { cause: error })),
      );
      child.once('close', (code, signal) => {
        if (!/"exit-code"\s*:/.test(statusText)) resolve(JAIL_SETUP_FAILED);
        else if (code !== null) resolve(code);
        else resolve(128 + (osConstants.signals[signal as NodeJS.Signals] ?? 0));
      });
    });
    // Not awaited until start(): an early failure (bwrap missing) must not be an unhandled rejection.
    exited.catch(() => undefined);
    let state: 'prepared' | 'started' | 'aborted' = 'prepared';
    return {
      start(endpoints: JailGatewayEndpoints): JailedProcess {
        if (state !== 'prepared') throw new Error(`the jail was already ${state}`);
        if (endpoints.dnsSocket !== runDirectory.dnsSocketPath) {
          throw new Error(`the gateway's DNS socket must be ${runDirectory.dnsSocketPath} (the jail's forwarder was told so), not ${endpoints.dnsSocket}`);
        }
        state = 'started';
        gateway = endpoints;
        // The init holds the command until this byte: the gateway is listening now.
        if (!control.destroyed) control.write(GATEWAY_READY);
        return {
          child,
          exited,
          signal(signal: NodeJS.Signals) {
            const number = osConstants.signals[signal];
            if (number !== undefined && !control.destroyed) control.write(Buffer.from([number]));
          },
        };
      },
      async abort(): Promise<void> {
        if (state !== 'prepared') return;
        state = 'aborted';
        // The init reads end of file instead of the ready byte: it stops the helpers and exits
        // without running the command. Not SIGKILL first: killed in its first instants, bwrap can
        // leave its inner half running, which is then nobody's child.
        (control as NodeJS.WritableStream & { destroy(): void }).destroy();
        const gone = exited.then(() => true, () => true);
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ABORT_GRACE_MS)));
        if (!(await Promise.race([gone, late]))) {
          child.kill('SIGKILL');
          await gone;
        }
        clearTimeout(timer);
      },
    };
  }
}

/**
 * What the jail writes to stdout/stderr pipes before start() (its message when it fails while the
 * gateway starts) must reach whoever reads them after start(); node discards a child's unread
 * output once the child has exited. The pipes are read into buffers from the start.
 */
function holdOutput(child: ChildProcess): void {
  for (const name of ['stdout', 'stderr'] as const) {
    const source = child[name];
    if (source !== null) child[name] = source.pipe(new PassThrough());
  }
}

/** How long abort() lets a jail that is still being built end by itself before killing bwrap. */
const ABORT_GRACE_MS = 5000;

/** The control byte that releases the held command (signal numbers, which follow it, are 1-64). */
const GATEWAY_READY = Buffer.from([0]);

/** The redirector's message for a handed-over socket: {srtgw: "redirected", address, port, source}. */
export function redirectedDestination(message: unknown): OriginalDestination | null {
  if (typeof message !== 'object' || message === null) return null;
  const { srtgw, address, port, source } = message as Record<string, unknown>;
  if (srtgw !== 'redirected' || typeof address !== 'string' || isIP(address) === 0 || typeof source !== 'string') return null;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { address, port, source };
}

/** One entry of spawn's stdio array. */
type StdioEntry = Exclude<StdioOptions, string>[number];

/** The command's stdin, stdout and stderr; the jail's own descriptors follow them. */
function normalizeStdio(stdio: JailSpawnOptions['stdio']): StdioEntry[] {
  if (stdio === undefined) return ['inherit', 'inherit', 'inherit'];
  if (typeof stdio === 'string') return [stdio, stdio, stdio];
  return [0, 1, 2].map((index) => stdio[index] ?? 'inherit');
}

function unavailable(message: string): SrtGwError {
  return new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, message);
}
