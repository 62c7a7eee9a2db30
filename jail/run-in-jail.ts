// `srt-gw run`: one command in the jail, with the gateway embedded in this process. Starts the
// gateway on private sockets, builds the jail's files (trust bundle, filesystem rules), runs the
// command, and on every exit path closes the gateway and removes what the run created.
import type { StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { buildTrustBundle, MACOS_SYSTEM_CA_BUNDLE, SYSTEM_CA_BUNDLE } from '../ca/trust-bundle.js';
import { defaultCaDir } from '../ca/paths.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { PACKAGE_ROOT } from '../package-root.js';
import type { Gateway, GatewayOptions, JailEndpoints } from '../gateway/gateway.js';
import type { ObservedTraffic } from '../gateway/audit/observed-traffic.js';
import type { DeletesMode, Policy, WriteMode } from '../policies/types.js';
import { credentialPlaceholders, credentialSecretFiles } from '../policies/credentials.js';
import { DenialCollector, type Denial } from './denial-summary.js';
import { resolveFilesystemRules } from './filesystem-rules.js';
import type { Jail, JailedProcess, PreparedJail } from './jail.js';
import { jailEnvironment } from './jail-environment.js';
import { heldFileMessage, PlantedFilesCheck, writableRoots } from './planted-files.js';
import { CreatedMountPoints, sweepCreatedMountPoints } from './linux/created-mount-points.js';
import { LinuxJail } from './linux/linux-jail.js';
import { NATIVE_BUILD_DIR, NATIVE_HELPER_FILES } from './linux/native-helpers.js';
import type { MacosJailedProcess } from './macos/macos-jail.js';
import type { Change } from './overlay/held-changes-store.js';
import type { RemoteGateway, RemoteGatewayOptions } from './remote-gateway.js';
import { RunDirectory, sweepLeftovers } from './run-directory.js';
import { ensureStateDirectory } from './state-directory.js';

/** What a run is given besides its command and policy: shared by runInJail and the library's run(). */
export interface JailRunSettings {
  /**
   * Run through this started gateway (startGateway) instead of one of the run's own: its policy,
   * CA, audit log and onUnknownHost approvals are shared by every run and client of it, and it
   * stays open after the run. The gateway options below are then ignored.
   * Linux: a run reports only its own denials; macOS: every denial the gateway made meanwhile.
   */
  gateway?: Gateway;
  /** The command's working directory (writable inside the jail). Default: process.cwd(). */
  cwd?: string;
  /** The environment the jail's is built from (proxy variables removed, CA variables set). Default: process.env. */
  env?: NodeJS.ProcessEnv;
  caDir?: string;
  upstreamCaFiles?: readonly string[];
  /** Allowed traffic leaves through this proxy (CONNECT); see GatewayOptions.upstreamProxy. */
  upstreamProxy?: GatewayOptions['upstreamProxy'];
  resolve?: GatewayOptions['resolve'];
  dnsUpstream?: readonly string[];
  /** Audit log: a file path, a file descriptor, or false (the default) for none. */
  auditLog?: GatewayOptions['auditLog'];
  metrics?: GatewayOptions['metrics'];
  monitor?: boolean;
  upstreamTimeoutMs?: number;
  /** See GatewayOptions.onUnknownHost: approvals last for this run (or the shared gateway's life). */
  onUnknownHost?: GatewayOptions['onUnknownHost'];
  unknownHostTimeoutMs?: number;
  /**
   * 'overlay' (Linux): the command's writes to its writable directories are reviewed after the
   * run; the safe ones are applied, the rest held for `srt-gw changes` (docs/overlay.md).
   * Default: the policy's filesystem.writeMode, else 'direct'.
   */
  writeMode?: WriteMode;
  /** With writeMode 'overlay': apply or hold deletions. Default: the policy's filesystem.deletes, else 'apply'. */
  deletes?: DeletesMode;
}

export interface RunInJailOptions extends JailRunSettings {
  command: string;
  args?: readonly string[];
  /** Required unless `gateway` is given (whose policy then applies). */
  policy?: Policy;
  /** Policy files in use: read-only inside the jail. */
  policyFiles?: readonly string[];
  stdio?: StdioOptions;
  /** Called once the command runs, with its handle (signals, stdio pipes) and the gateway. */
  onStart?: (started: { process: JailedProcess; gateway: Gateway }) => void;
  /**
   * Send the jail's traffic to this remote `srt-gw serve` (jail/remote-gateway.ts), which decides
   * and terminates TLS, instead of an embedded gateway: the policy's network rules, the gateway
   * options and `gateway` are then unused, and onStart is not called (onRemoteStart is). Linux.
   */
  remoteGateway?: RemoteGatewayOptions;
  onRemoteStart?: (started: { process: JailedProcess }) => void;
  /** Default: the platform's jail. */
  jail?: Jail;
  /**
   * Write a draft policy from this run's requests here once it ends (atomically), as
   * `srt-gw run --write-policy FILE` does: gateway/audit/observed-traffic.ts.
   */
  writePolicy?: string;
}

export interface RunResult {
  /** The command's exit status (128+N when signal N killed it; 125 when the jail could not start). */
  exitCode: number;
  denials: Denial[];
  /** Denials beyond the summary's bound (the audit log has them all). */
  omittedDenials: number;
  /** writeMode overlay: the changes applied to the host after the run (empty otherwise). */
  applied: readonly Change[];
  /** writeMode overlay: the changes held for review, each with its reason (empty otherwise). */
  held: readonly Change[];
  /** writeMode overlay, when something is held: the id for `srt-gw changes show|apply|drop`. */
  changesId?: string;
  /**
   * Protected paths that did not exist, shown read-only and empty in the jail so the command
   * could not create them (a repository's .git, editor and agent settings): a command that
   * failed may have tried to. Absolute; empty with writeMode overlay and on macOS.
   */
  readOnlyPlaceholders: readonly string[];
}

/** This platform's jail; the macOS backend loads only on macOS. */
export async function platformJail(): Promise<Jail> {
  if (process.platform === 'linux') return new LinuxJail();
  // Not yet run on a real Mac: docs/macos.md says what is and is not verified.
  if (process.platform === 'darwin') return new (await import('./macos/macos-jail.js')).MacosJail();
  throw new SrtGwError(ErrorCodes.JAIL_UNAVAILABLE, `srt-gw run has no jail for ${process.platform}; on this platform use srt-gw serve as an explicit proxy`);
}

/** Runs through a shared gateway get labels of their own, so their denials can be told apart. */
let sharedRuns = 0;

export async function runInJail(options: RunInJailOptions): Promise<RunResult> {
  const jail = options.jail ?? (await platformJail());
  jail.checkAvailable();
  if (options.remoteGateway !== undefined && jail.platform !== 'linux') {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway runs only with the Linux jail for now; on ${jail.platform}, point the programs at the remote gateway as an explicit proxy`);
  }
  const shared = options.gateway ?? null;
  const policy = options.policy ?? shared?.policy.policy;
  if (!policy) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'run needs a policy (or a started gateway to run through)');
  const cwd = resolve(options.cwd ?? process.cwd());
  // Relative paths given to a run (the CLI's flags, the library's options) start from the
  // caller's directory, as they would for any other program: the jail's rules need them absolute.
  const caDir = shared ? shared.ca.dir : resolve(options.caDir ?? defaultCaDir(options.env ?? process.env));
  const auditLog = typeof options.auditLog === 'string' ? resolve(options.auditLog) : (options.auditLog ?? false);
  const upstreamCaFiles = options.upstreamCaFiles?.map((file) => resolve(file));
  const hostEnv = options.env ?? process.env;
  const writeMode = options.writeMode ?? policy.filesystem?.writeMode ?? 'direct';
  const stateDirectory = ensureStateDirectory(hostEnv);
  const filesystem = resolveFilesystemRules(policy.filesystem, {
    home: homedir(),
    cwd,
    // SECURITY: the CA key and the files injected secrets are read from never enter the jail,
    // whatever allowRead says — test/e2e/jail-credentials.test.ts.
    // SECURITY: the audit log is the record of what the command did; a command that could
    // read or rewrite it could learn other runs' traffic or erase its own — test/e2e/run-paths.test.ts.
    // SECURITY: the state directory records which policy files the user trusted; a jail that
    // could write it would trust its own planted policy — test/e2e/policy-trust.test.ts.
    alwaysHidden: [
      caDir,
      stateDirectory,
      ...credentialSecretFiles(policy),
      ...(typeof auditLog === 'string' ? [createAuditLogFile(auditLog)] : []),
    ],
    alwaysReadOnly: (options.policyFiles ?? []).map((file) => resolve(file)),
    ownCode: [join(PACKAGE_ROOT, 'dist'), NATIVE_BUILD_DIR],
    platform: jail.platform,
    reviewedWrites: writeMode === 'overlay',
  });
  // The review code (and the schema its records are checked with) loads only for overlay runs.
  const reviewed =
    writeMode === 'overlay'
      ? (await import('./overlay/reviewed-writes.js')).ReviewedWrites.start({
          filesystem,
          stateDirectory,
          command: [options.command, ...(options.args ?? [])],
          deletes: options.deletes ?? policy.filesystem?.deletes ?? 'apply',
          init: join(NATIVE_BUILD_DIR, NATIVE_HELPER_FILES.init),
        })
      : null;

  const runDirectory = RunDirectory.create();
  let mountPoints: CreatedMountPoints | null = null;
  // What runs killed with SIGKILL left (their directories, their mount points) goes while this one
  // starts, once bubblewrap is on its way; awaited below, so no sweep outlives the run. This run's
  // directory listens and its record is written by then: neither sweep takes them for a dead run's.
  let sweeps: Promise<unknown> | null = null;
  const startSweeps = (): Promise<unknown> =>
    (sweeps ??= Promise.all([sweepLeftovers(runDirectory.parent), jail.platform === 'linux' ? sweepCreatedMountPoints(runDirectory.parent) : null]));
  /** Set while the command's jail may still run: its mount points must stay until it has ended. */
  let running: JailedProcess | null = null;
  let gateway: Gateway | null = shared;
  let endpoints: JailEndpoints | null = null;
  let collector: DenialCollector | null = null;
  let observed: ObservedTraffic | null = null;
  let result: RunResult;
  let prepared: PreparedJail | null = null;
  let planted: PlantedFilesCheck | null = null;
  let stopUpstreamWarmUp: (() => void) | null = null;
  let remote: RemoteGateway | null = null;
  try {
    // The jail is built while the gateway starts (bwrap, the network rules, the helpers); its
    // command waits until start() below. The trust bundle is filled in once the CA is loaded.
    const caBundle = runDirectory.writeJailFile('ca-bundle.pem', '');
    // This run records its mount points before bubblewrap makes them.
    if (jail.platform === 'linux') mountPoints = CreatedMountPoints.record(filesystem, runDirectory.path);
    prepared = jail.prepare({
      command: options.command,
      args: options.args ?? [],
      cwd,
      env: jailEnvironment(hostEnv, jail.caBundlePathInJail, credentialPlaceholders(policy)),
      filesystem,
      caBundle,
      runDirectory,
      stdio: options.stdio,
      allowLocalBinding: policy.jail?.allowLocalBinding === true,
      allowUnixSockets: policy.jail?.allowUnixSockets ?? [],
      ...(reviewed === null ? {} : { overlay: reviewed.overlay }),
    });
    void startSweeps();
    // While bubblewrap builds the jail; its command has not started, so nothing is planted yet.
    // With reviewed writes nothing lands on the host unreviewed: the review holds such files.
    if (reviewed === null) planted = PlantedFilesCheck.start(writableRoots(filesystem));
    // The gateway's code (tls, http, dns and the rest) loads only now, while bubblewrap builds
    // the jail on the other core, instead of before the jail could start.
    // Probed before the command runs: an unreachable remote, or one that refuses the token, is an
    // error at start (exit 125), not a command that finds no network.
    if (options.remoteGateway !== undefined) remote = await (await import('./remote-gateway.js')).RemoteGateway.connect(options.remoteGateway);
    else gateway ??= await (await import('../gateway/gateway.js')).startGateway({
      policy,
      caDir,
      upstreamCaFiles,
      upstreamProxy: options.upstreamProxy,
      resolve: options.resolve,
      dnsUpstream: options.dnsUpstream,
      auditLog,
      metrics: options.metrics,
      monitor: options.monitor,
      upstreamTimeoutMs: options.upstreamTimeoutMs,
      secretEnv: hostEnv,
      onUnknownHost: options.onUnknownHost,
      unknownHostTimeoutMs: options.unknownHostTimeoutMs,
    });
    // A run of its own gateway is that gateway's only client: every decision is this run's.
    const clientLabel = shared ? `jail-${process.pid}-${++sharedRuns}` : 'jail';
    const opened = remote ? await remote.openJailEndpoints(runDirectory.dnsSocketPath, clientLabel) : await gateway!.openJailEndpoints(runDirectory.dnsSocketPath, clientLabel);
    endpoints = opened;
    if (remote) {
      runDirectory.rewriteJailFile(caBundle, buildTrustBundle(remote.caPem, SYSTEM_CA_BUNDLE));
      const jailed = (running = prepared.start({ acceptRedirected: opened.acceptRedirected, dnsSocket: opened.dnsSocket, proxyAddress: { host: '127.0.0.1', port: 0 } }));
      prepared = null;
      options.onRemoteStart?.({ process: jailed });
      const exitCode = await jailed.exited;
      running = null;
      const outcome = reviewed?.review(true);
      const { denials, omitted } = remote.denials();
      result = {
        exitCode,
        denials,
        omittedDenials: omitted,
        applied: outcome?.applied ?? [],
        held: outcome?.held ?? [],
        ...(outcome !== undefined && outcome.held.length > 0 ? { changesId: outcome.id } : {}),
        readOnlyPlaceholders: mountPoints?.paths ?? [],
      };
      return result;
    }
    if (gateway === null) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'run has no gateway');
    // On macOS the jail reaches the gateway's explicit proxy, where runs cannot be told apart.
    collector = new DenialCollector(gateway.events, shared && jail.platform === 'linux' ? { clientLabel } : {});
    if (options.writePolicy !== undefined) {
      observed = new (await import('../gateway/audit/observed-traffic.js')).ObservedTraffic(gateway.events, shared && jail.platform === 'linux' ? { clientLabel } : {});
    }
    const systemBundle = jail.platform === 'darwin' ? MACOS_SYSTEM_CA_BUNDLE : SYSTEM_CA_BUNDLE;
    runDirectory.rewriteJailFile(caBundle, buildTrustBundle(readFileSync(gateway.ca.certPath, 'utf8'), systemBundle));
    stopUpstreamWarmUp = prepareUpstreamOnFirstUse(gateway);
    const jailed = (running = prepared.start({
      acceptRedirected: opened.acceptRedirected,
      dnsSocket: opened.dnsSocket,
      proxyAddress: gateway.address,
    }));
    prepared = null;
    options.onStart?.({ process: jailed, gateway });
    const exitCode = await jailed.exited;
    running = null;
    // The jail has ended (its overlays with it): its writes are reviewed now. A command's failure
    // is still a finished run; only srt-gw's own failure or death leaves everything held.
    const outcome = reviewed?.review(true);
    const { denials, omitted } = collector.denials();
    // On macOS the kernel's own refusals (Seatbelt's log) join the gateway's.
    const platform = 'violations' in jailed ? await (jailed as MacosJailedProcess).violations() : { denials: [], omitted: 0 };
    result = {
      exitCode,
      denials: [...denials, ...platform.denials],
      omittedDenials: omitted + platform.omitted,
      applied: outcome?.applied ?? [],
      held: outcome?.held ?? [],
      ...(outcome !== undefined && outcome.held.length > 0 ? { changesId: outcome.id } : {}),
      readOnlyPlaceholders: mountPoints?.paths ?? [],
    };
  } finally {
    // A run that failed before its jail started sweeps all the same.
    const sweeping = startSweeps();
    stopUpstreamWarmUp?.();
    // The gateway failed to start: the held command never runs.
    await prepared?.abort();
    // SECURITY: a run that failed in srt-gw applies nothing; its writes stay held for
    // `srt-gw changes` — test/e2e/overlay-writes.test.ts.
    reviewed?.interrupt();
    collector?.stop();
    await endpoints?.close();
    if (!shared) await gateway?.close();
    runDirectory.dispose();
    // SECURITY: removing a mount point detaches the protection mounted on it, so only once the
    // jail has ended (bwrap exited; its whole jail dies with it) — test/e2e/jail-leftovers.test.ts.
    const created = mountPoints;
    // SECURITY: what the jail planted for the host to run later (a repository with
    // core.fsmonitor, an .envrc) is moved aside once it has ended, after its empty mount points
    // are gone — test/e2e/jail-planting.test.ts.
    const check = planted;
    const holdPlanted = async () => {
      await created?.remove();
      try {
        for (const held of check?.hold() ?? []) process.stderr.write(`${heldFileMessage(held, cwd)}\n`);
      } catch (error) {
        process.stderr.write(`srt-gw: could not check ${cwd} for files the command left for the host to run: ${(error as Error).message}\n`);
      }
    };
    if (running === null) await holdPlanted();
    else void running.exited.then(holdPlanted, holdPlanted);
    await sweeping;
    observed?.stop();
  }
  // Once the gateway has closed, so the requests that ended with the command are in it too.
  if (observed && options.writePolicy !== undefined) observed.writeDraft(options.writePolicy, `the command ${basename(options.command)}`);
  return result;
}

/**
 * Loads the gateway's upstream client (undici and the upstream trust store, tens of ms of CPU) as
 * soon as the jail first uses the network, at its first DNS query or connection: before the first
 * request, which would otherwise wait for it, yet never for a command that does not connect (most
 * of the short commands an agent runs), whose exit a timed warm-up would hold up on a busy machine.
 * Returns what ends the watch (once the run ends).
 */
function prepareUpstreamOnFirstUse(gateway: Gateway): () => void {
  let watching = true;
  let scheduled = false;
  const firstUse = () => {
    if (scheduled) return;
    scheduled = true;
    // On the next turn: the answer or connection at hand goes first, and the listeners are not
    // removed while the gateway is still calling them.
    setImmediate(() => {
      if (!watching) return; // the run ended meanwhile
      stop();
      void gateway.prepareUpstream().catch(() => undefined);
    });
  };
  const unsubscribe = [
    gateway.events.on('dns', firstUse),
    gateway.events.on('connections', (event) => {
      if (event.delta > 0) firstUse();
    }),
  ];
  const stop = () => {
    if (!watching) return;
    watching = false;
    for (const off of unsubscribe) off();
  };
  return stop;
}

/** The audit log exists before the jail is built, so that the jail hides a file and creates no mount point for it. */
function createAuditLogFile(path: string): string {
  try {
    closeSync(openSync(path, 'a', 0o600));
  } catch (error) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--log ${path}: cannot open the audit log (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
  return path;
}

/** Where `srt-gw run` looks for a policy when none is named, in order. */
export function policyCandidates(cwd: string, home: string = homedir()): string[] {
  return [join(cwd, '.srt-gw.yaml'), join(home, '.config', 'srt-gw', 'policy.yaml')];
}

/** The project's srt settings, picked up when no srt-gw policy exists. */
export function srtSettingsCandidate(cwd: string): string {
  return join(cwd, '.srt.json');
}
