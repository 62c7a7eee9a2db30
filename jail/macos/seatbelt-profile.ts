// The Seatbelt profile (SBPL, for `sandbox-exec -p`) of one macOS run: deny by default, the few
// operations ordinary command-line programs need to start, the shared filesystem rules
// (jail/filesystem-rules.ts), and one way out: a TCP connection to the gateway's loopback port.
//
// ORDER — in SBPL the LAST rule that matches an operation decides it. The profile is emitted as:
//  1. (deny default): everything not allowed below is refused (and logged with this run's tag).
//  2. Processes, system information, Mach services, POSIX IPC: operations without paths.
//  3. The filesystem rule points, shallowest first; each point's rule covers its subtree, so a
//     deeper point (a later rule) overrides a shallower one exactly where the shared evaluator says
//     it does: "/" read-only, cwd read-write, cwd/.git/hooks read-only, ~/.ssh hidden, an allowRead
//     inside it readable again, a denyRead inside that hidden again. No two points at one depth
//     nest, so the order among them does not matter.
//  4. Metadata of hidden directories above a reopened path (realpath() must stat each component).
//  5. Rename pins: no writable directory above a protected path may be renamed or created, or
//     `mv .git x; mkdir .git` would carry .git/hooks' protection away (Seatbelt matches paths,
//     not inodes). After 3, which allowed writing there.
//  6. Devices (/dev/null, terminals): after 3, whose "/" rule denies every write.
//  7. Network: the gateway's port; with allowLocalBinding, listening on loopback; last, an explicit
//     deny of mDNSResponder so nothing above can ever let a name resolve inside.
// test/e2e/jail-macos.test.ts runs the result on a Mac; seatbelt-profile.test.ts checks the text,
// its order (with a small last-match-wins evaluator) and its quoting on every platform.
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { isWithin } from '../filesystem/canonical-path.js';
import { filesystemAccess, type FilesystemAccess, type FilesystemRule, type ResolvedFilesystemRules } from '../filesystem-rules.js';
import { macosCanonicalPath, type Realpath } from './macos-path.js';

export interface SeatbeltProfileOptions {
  /** Port of the gateway's explicit proxy on loopback: the only address the command can connect to. */
  proxyPort: number;
  /** Let the command listen on loopback (network-bind and network-inbound on localhost). Default: refused. */
  allowLocalBinding?: boolean;
  /** Host directories writable on top of the rules, e.g. the run's own TMPDIR. A hidden one is an error. */
  extraWritable?: readonly { path: string; reason: string }[];
  /** Carried by every denial in the system log, to find this run's (seatbelt-violations.ts). */
  logTag: string;
  /** realpath(3) used to canonicalise paths (tests on Linux inject one). Default: the host's. */
  realpath?: Realpath;
}

/** What one path of the profile allows, on macOS terms (there is no private /tmp there). */
export interface MacosFilesystemPoint {
  /** Canonical macOS path (/private/tmp, symlinks resolved). */
  readonly path: string;
  readonly access: Exclude<FilesystemAccess, 'private'>;
  /** `literal` for an existing file, `subpath` for everything else (a missing path may become a directory). */
  readonly filter: 'literal' | 'subpath';
  readonly reason: string;
}

/** sandbox-exec rejects a string literal longer than this ("Error reading string"). */
export const SBPL_MAX_STRING_BYTES = 1024;

/**
 * An SBPL string literal: `"` and `\` escaped; control characters (a line break, NUL, DEL) are
 * rejected, as is a string longer than sandbox-exec reads.
 */
export function sbplString(value: string): string {
  // SECURITY: a path is the only text in the profile a user (or a repository) chooses; unescaped,
  // `x")(allow default)` would end the string and add a rule — seatbelt-profile.test.ts "hostile paths".
  if (/[\u0000-\u001f\u007f]/.test(value)) {
    throw new SrtGwError(ErrorCodes.JAIL_FILESYSTEM_INVALID, `${JSON.stringify(value)} contains a control character (a line break, tab or NUL); the macOS jail cannot name it in its profile: rename it or leave it out of the policy`);
  }
  const escaped = value.replace(/[\\"]/g, (char) => `\\${char}`);
  if (Buffer.byteLength(escaped) > SBPL_MAX_STRING_BYTES) {
    throw new SrtGwError(ErrorCodes.JAIL_FILESYSTEM_INVALID, `${JSON.stringify(value.slice(0, 80))}... is longer than the ${SBPL_MAX_STRING_BYTES} bytes sandbox-exec reads in one string`);
  }
  return `"${escaped}"`;
}

/** The shared rules as macOS sees them: the jail's "private" /tmp and /run are the host's, shared and writable. */
export function macosFilesystemPoints(rules: ResolvedFilesystemRules, options: Pick<SeatbeltProfileOptions, 'extraWritable' | 'realpath'> = {}): MacosFilesystemPoint[] {
  // No mount namespace: what Linux makes a private empty /tmp is the host's own /tmp here. The
  // shared evaluator decides below it once "private" reads "writable", so the CA directory or a
  // denyRead under /tmp stays hidden instead of turning into scratch space.
  const shared: ResolvedFilesystemRules = {
    ...rules,
    rules: rules.rules.map((rule): FilesystemRule => (rule.effect === 'private' ? { ...rule, effect: 'allow-write', reason: SHARED_TMP_REASON } : rule)),
  };
  const decided: { path: string; access: Exclude<FilesystemAccess, 'private'>; kind: 'directory' | 'file'; exists: boolean; reason: string }[] = [];
  for (const point of rules.points) {
    if (point.access !== 'private') {
      decided.push({ path: point.path, access: point.access, kind: point.kind, exists: point.exists, reason: point.rule.reason });
      continue;
    }
    // Nothing is there to share (a Linux /run on a Mac): no rule.
    if (point.rule.path === point.path && point.rule.origin.kind === 'jail' && !point.exists) continue;
    const { access, rule } = filesystemAccess(shared, point.path);
    decided.push({ path: point.path, access: access === 'private' ? 'read-write' : access, kind: point.kind, exists: point.exists, reason: rule.reason });
  }
  for (const extra of options.extraWritable ?? []) {
    const { access, rule } = filesystemAccess(shared, extra.path);
    if (access === 'hidden') {
      throw new SrtGwError(ErrorCodes.JAIL_FILESYSTEM_INVALID, `${extra.path} (${extra.reason}) is hidden by the filesystem rules (${rule.reason}); the macOS jail needs it writable`);
    }
    decided.push({ path: extra.path, access: 'read-write', kind: 'directory', exists: true, reason: extra.reason });
  }

  const byPath = new Map<string, MacosFilesystemPoint>();
  for (const point of decided) {
    const path = macosCanonicalPath(point.path, options.realpath);
    const next: MacosFilesystemPoint = { path, access: point.access, filter: point.kind === 'file' && point.exists ? 'literal' : 'subpath', reason: point.reason };
    const earlier = byPath.get(path);
    // Two host spellings of one macOS path (/tmp and /private/tmp): the stricter wins.
    if (earlier === undefined || STRICTNESS[next.access] > STRICTNESS[earlier.access]) byPath.set(path, next);
  }
  return [...byPath.values()].sort((a, b) => depthOf(a.path) - depthOf(b.path) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

const STRICTNESS: Record<MacosFilesystemPoint['access'], number> = { 'read-write': 0, 'read-only': 1, hidden: 2 };

const SHARED_TMP_REASON = "writable: the host's own directory, shared with other programs (macOS has no private /tmp; docs/macos.md)";

/** The whole profile text for one run. */
export function seatbeltProfile(rules: ResolvedFilesystemRules, options: SeatbeltProfileOptions): string {
  if (!Number.isInteger(options.proxyPort) || options.proxyPort < 1 || options.proxyPort > 65535) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `the gateway's proxy port must be 1-65535 (got ${options.proxyPort})`);
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(options.logTag)) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `the log tag must be 1-64 letters, digits, "-" or "_" (got ${JSON.stringify(options.logTag)})`);
  }
  const tagged = `(with message ${sbplString(options.logTag)})`;
  const points = macosFilesystemPoints(rules, options);
  const lines: string[] = [
    '(version 1)',
    '; srt-gw: generated for one `srt-gw run` (jail/macos/seatbelt-profile.ts). The last matching rule wins.',
    `(deny default ${tagged})`,
    '',
    ...BASE_RULES,
    '',
    '; --- 3. filesystem: the shared rules (jail/filesystem-rules.ts), shallowest first',
    ...points.flatMap((point) => filesystemRule(point, tagged)),
  ];

  const traversal = reopenedTraversal(points);
  if (traversal.length > 0) {
    lines.push('', '; --- 4. stat() of hidden directories above a path allowRead reopened (realpath walks them)');
    lines.push(`(allow file-read-metadata ${traversal.map((path) => `(literal ${sbplString(path)})`).join(' ')})`);
  }
  const pins = renamePins(points);
  if (pins.length > 0) {
    lines.push('', '; --- 5. writable directories above a protected path cannot be renamed away or created in its place');
    // SECURITY: Seatbelt follows names, not inodes: `mv .git x; mkdir .git` (or `mv x .git` when
    // .git is missing) would leave a .git/hooks no rule names — seatbelt-profile.test.ts "rename pins".
    lines.push(`(deny file-write-unlink file-write-create ${pins.map((path) => `(literal ${sbplString(path)})`).join(' ')} ${tagged})`);
  }
  lines.push('', ...DEVICE_RULES, '', ...networkRules(options, tagged), '');
  return lines.join('\n');
}

/**
 * Section 2. Each allow is here because ordinary command-line programs (shells, git, curl, node,
 * python, compilers) fail to start or misbehave without it; none reaches the network or another
 * program's data. What is not here is refused: notably com.apple.SecurityServer and trustd (the
 * keychain: secrets), launchservicesd (`open` starts apps outside the jail), cfprefsd (writing
 * preferences other programs read), configd, mDNSResponder, distributed notifications, iokit-open.
 */
const BASE_RULES: readonly string[] = [
  '; --- 2. processes, system information, Mach services, IPC',
  '; Children inherit this profile: the command may run what it likes, inside it.',
  '(allow process-exec)',
  '(allow process-fork)',
  '; Signals and process information only within this sandbox (shells, job control, ps of its own children).',
  '(allow signal (target same-sandbox))',
  '(allow process-info* (target same-sandbox))',
  '; Kernel parameters (CPU count, page size, OS version: every runtime reads them at start) ...',
  '(allow sysctl-read)',
  '; ... except other processes\' arguments and environment, which can hold secrets.',
  '(deny sysctl-read (sysctl-name-prefix "kern.procargs"))',
  '; host_processor_info(): libuv\'s os.cpus() (Node sizes its worker pools with it).',
  '(allow mach-host*)',
  '(allow mach-lookup',
  '  ; getpwuid()/getpwnam(): git, ssh, python\'s expanduser, whoami resolve the user through it.',
  '  (global-name "com.apple.system.opendirectoryd.libinfo")',
  '  ; getgrouplist() and mbr_* membership checks (ls -l, access checks in libraries).',
  '  (global-name "com.apple.system.opendirectoryd.membership")',
  '  ; notify(3): libc registers for time zone and configuration changes at start.',
  '  (global-name "com.apple.system.notification_center")',
  '  ; confstr(_CS_DARWIN_USER_TEMP_DIR), asked by Foundation and some toolchains for the temp dir.',
  '  (global-name "com.apple.bsd.dirhelper")',
  '  ; os_log and syslog(3): a program\'s own log messages (they stay on this machine).',
  '  (global-name "com.apple.logd")',
  '  (global-name "com.apple.system.logger"))',
  '; POSIX semaphores and shared memory: python multiprocessing (SemLock), shared_memory.',
  '(allow ipc-posix-sem)',
  '(allow ipc-posix-shm)',
];

/** Section 6: after the filesystem, whose "/" rule refuses every write. */
const DEVICE_RULES: readonly string[] = [
  '; --- 6. devices',
  '(allow file-read* file-write* file-ioctl (literal "/dev/null") (literal "/dev/zero"))',
  '(allow file-read* (literal "/dev/random") (literal "/dev/urandom"))',
  '; The inherited terminal (isatty, tcgetattr, writes) and new pseudo-terminals (openpty: script, expect, pty tests).',
  '; The command runs in its own session (no controlling terminal), so TIOCSTI cannot type into yours.',
  '(allow pseudo-tty)',
  '(allow file-read* file-write* file-ioctl (literal "/dev/tty") (literal "/dev/ptmx") (regex #"^/dev/ttys[0-9]+$"))',
  '; Its own standard streams by name (>/dev/stderr): these only duplicate descriptors it holds.',
  '(allow file-read* file-write* (literal "/dev/stdin") (literal "/dev/stdout") (literal "/dev/stderr") (regex #"^/dev/fd/[0-9]+$"))',
];

function networkRules(options: SeatbeltProfileOptions, tagged: string): string[] {
  const lines = [
    '; --- 7. network: the gateway is the only way out',
    // SECURITY: every other address is refused, so a program that ignores the proxy variables is
    // cut off, never let out — test/e2e/jail-macos.test.ts "a raw connect elsewhere is refused".
    // Seatbelt names loopback only as "localhost" (127.0.0.1 and ::1; not ::ffff:127.0.0.1).
    `(allow network-outbound (remote ip ${sbplString(`localhost:${options.proxyPort}`)}))`,
  ];
  if (options.allowLocalBinding === true) {
    lines.push(
      '; allowLocalBinding: the command may listen, on loopback only; connecting to itself still goes through the gateway.',
      '(allow network-bind (local ip "localhost:*"))',
      '(allow network-inbound (local ip "localhost:*"))',
    );
  }
  lines.push(
    '; No name resolves inside: names are resolved by the gateway, from the proxy request.',
    // SECURITY: a DNS query is a channel out (tunnelling) — DESIGN.md "DNS tunnelling".
    `(deny network-outbound (remote unix-socket (path-literal "/private/var/run/mDNSResponder")) ${tagged})`,
  );
  return lines;
}

function filesystemRule(point: MacosFilesystemPoint, tagged: string): string[] {
  const filter = `(${point.filter} ${sbplString(point.path)})`;
  const comment = `; ${oneLine(point.reason)}`;
  switch (point.access) {
    case 'hidden':
      return [comment, `(deny file-read* file-write* ${filter} ${tagged})`];
    case 'read-only':
      return [comment, `(allow file-read* ${filter})`, `(deny file-write* ${filter} ${tagged})`];
    case 'read-write':
      return [comment, `(allow file-read* file-write* ${filter})`];
  }
}

/** The deepest point at or above a canonical macOS `path`: what decides it (points sorted shallowest first). */
export function macosPointFor(points: readonly MacosFilesystemPoint[], path: string): MacosFilesystemPoint | undefined {
  let found: MacosFilesystemPoint | undefined;
  for (const point of points) if (isWithin(path, point.path)) found = point;
  return found;
}

function accessAt(points: readonly MacosFilesystemPoint[], path: string): MacosFilesystemPoint['access'] {
  return macosPointFor(points, path)?.access ?? 'read-only';
}

/** Hidden directories strictly above a readable point. */
function reopenedTraversal(points: readonly MacosFilesystemPoint[]): string[] {
  const paths = new Set<string>();
  for (const point of points) {
    if (point.access === 'hidden') continue;
    for (const above of ancestorsOf(point.path)) if (accessAt(points, above) === 'hidden') paths.add(above);
  }
  return [...paths].sort();
}

/** Writable directories above a hidden or read-only point. */
function renamePins(points: readonly MacosFilesystemPoint[]): string[] {
  const paths = new Set<string>();
  for (const point of points) {
    if (point.access === 'read-write') continue;
    for (const above of ancestorsOf(point.path)) if (accessAt(points, above) === 'read-write') paths.add(above);
  }
  return [...paths].sort();
}

/** Parent, grandparent, ... up to but not including "/". */
function ancestorsOf(path: string): string[] {
  const ancestors: string[] = [];
  for (let at = path.lastIndexOf('/'); at > 0; at = path.lastIndexOf('/', at - 1)) ancestors.push(path.slice(0, at));
  return ancestors;
}

function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, '?');
}

function depthOf(path: string): number {
  return path === '/' ? 0 : path.split('/').length - 1;
}
