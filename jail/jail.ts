// The seam between `srt-gw run` and the operating system: one Jail backend per platform (Linux:
// bubblewrap + network namespace, macOS: Seatbelt), driven by the same run logic and tested by the
// same end-to-end test body.
import type { ChildProcess, StdioOptions } from 'node:child_process';
import type { Socket } from 'node:net';
import type { ListenAddress } from '../gateway/gateway.js';
import type { OriginalDestination } from '../gateway/listeners/proxy-protocol-header.js';
import type { ResolvedFilesystemRules } from './filesystem-rules.js';
import type { JailOverlay } from './overlay/reviewed-writes.js';
import type { RunDirectory } from './run-directory.js';

/** Where the jailed command's traffic goes; a backend uses the endpoints it declared in `needs`. */
export interface JailGatewayEndpoints {
  /** Takes a connection the jail's redirector handed over, with the address the program dialled (Linux). */
  acceptRedirected(socket: Socket, destination: OriginalDestination): void;
  /** Length-framed DNS from the jail's DNS forwarder (Linux). */
  readonly dnsSocket: string;
  /** The explicit proxy (macOS, where traffic is steered by proxy variables). */
  readonly proxyAddress: ListenAddress;
}

export interface JailSpawnOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** The command's environment, already built by jailEnvironment(). */
  readonly env: Readonly<Record<string, string>>;
  readonly filesystem: ResolvedFilesystemRules;
  /** Host path of the trust bundle (system CAs + the srt-gw CA). */
  readonly caBundle: string;
  /** Where the jail path of the bundle is; the env names this path. */
  readonly runDirectory: RunDirectory;
  readonly gateway: JailGatewayEndpoints;
  /**
   * Let the command listen on loopback (the policy's jail.allowLocalBinding). Default false.
   * macOS: without it the Seatbelt profile refuses every bind and accept. Linux: ignored — the
   * jail's network namespace has a loopback of its own, where listening always works and nothing
   * outside the jail can connect.
   */
  readonly allowLocalBinding?: boolean;
  /**
   * Host unix sockets the command may connect to (the policy's jail.allowUnixSockets, absolute or
   * "~/..."). Linux: every other pathname unix socket the jail did not bind itself is refused.
   */
  readonly allowUnixSockets?: readonly string[];
  /** stdin, stdout, stderr as for child_process.spawn. Default: inherit all three. */
  readonly stdio?: StdioOptions;
  /**
   * Reviewed writes (filesystem.writeMode overlay): the command's writes to these roots go to
   * the upper layers instead of the host (jail/overlay/reviewed-writes.ts). Linux only: the macOS
   * jail refuses it.
   */
  readonly overlay?: JailOverlay;
}

/** What a jail needs before the gateway is up: everything but the gateway's endpoints. */
export type JailPrepareOptions = Omit<JailSpawnOptions, 'gateway'>;

/**
 * A jail being built while the gateway starts (on two cores the two overlap: `srt-gw run -- true`
 * starts ~20 ms sooner); the command is held until start().
 */
export interface PreparedJail {
  /** Lets the command run, its traffic going to `gateway`. Once only. */
  start(gateway: JailGatewayEndpoints): JailedProcess;
  /** The gateway did not start: removes the jail without ever running the command; resolves once it is gone. */
  abort(): Promise<void>;
}

export interface JailedProcess {
  /** The process srt-gw started (bwrap, sandbox-exec); its stdio pipes when stdio asked for them. */
  readonly child: ChildProcess;
  /** The command's exit status: its code, or 128+N when signal N killed it; 125 when the jail could not start. */
  readonly exited: Promise<number>;
  /** Passes a signal to the command (not to the jail's helpers). */
  signal(signal: NodeJS.Signals): void;
}

export interface Jail {
  readonly platform: NodeJS.Platform;
  /** The path inside the jail where the trust bundle appears (what CA variables name). */
  readonly caBundlePathInJail: string;
  /** Throws JAIL_UNAVAILABLE with what to install when this machine cannot run the jail. */
  checkAvailable(): void;
  /** prepare(options) and start(options.gateway) at once. */
  spawn(options: JailSpawnOptions): JailedProcess;
  /**
   * Starts building the jail for a gateway that is not ready yet. The trust bundle at
   * `options.caBundle` may still be written until start(); the Linux jail's DNS socket is
   * `options.runDirectory.dnsSocketPath`.
   */
  prepare(options: JailPrepareOptions): PreparedJail;
}

/** Exit status when the jail itself could not be set up (as `env`, `docker run`, `timeout` do). */
export const JAIL_SETUP_FAILED = 125;
