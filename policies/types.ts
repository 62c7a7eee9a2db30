// The runtime shape of a policy: what the matcher works on. The YAML file shape lives in
// schema.ts; loader.ts converts one into the other and is the only place validation happens.
import type { ReasonCode } from '../reason-codes.js';

export type RuleAction = 'allow' | 'deny';

/** Where a rule came from, so decisions and errors can point at file:line:column. */
export interface SourceLocation {
  /** The policy file as named (the root as given, others relative to it), or "preset:NAME". */
  file: string;
  line: number;
  column: number;
  /** For what came from an extended file or preset: the `extends:` entry that brought it in. */
  extendedAt?: SourceLocation;
}

/** A file or preset a policy extends, directly or through another extended file. */
export interface ExtendedSource {
  readonly kind: 'file' | 'preset';
  /** "preset:github", or the file as named in messages ("conf/team.yaml"). */
  readonly name: string;
  /** Absolute path of the file read (for a preset, the shipped YAML file). */
  readonly path: string;
  /** The `extends:` entry that names it. */
  readonly extendedAt: SourceLocation;
  /** A preset's parameters after defaults, as used. */
  readonly parameters?: Readonly<Record<string, unknown>>;
  /**
   * Set when the same file (or preset with the same parameters) was already extended elsewhere:
   * where it was first extended. A repeat adds nothing to the policy.
   */
  readonly repeatOf?: SourceLocation;
}

/** Where a policy that uses `extends:` came from: the root file and everything it pulled in. */
export interface PolicyOrigin {
  /** The root policy file as named. */
  readonly file: string;
  /** Every `extends:` entry, depth first in merge order, repeats included (marked). */
  readonly extended: readonly ExtendedSource[];
}

export interface Rule {
  /** Unique within a policy; appears in audit lines, metrics and 403 bodies. */
  readonly id: string;
  /**
   * Normalised host pattern: lower case, punycode, no trailing dot. Either an exact name
   * ("api.example.test"), a wildcard ("*.example.test": subdomains only, never the apex),
   * an IP literal ("203.0.113.9", "::1") or a CIDR ("203.0.113.0/24", "fd00::/8").
   */
  readonly host: string;
  /** Undefined = any port. */
  readonly port?: number;
  /** Upper-case method names; undefined = any method. */
  readonly methods?: readonly string[];
  /** Path globs ("*" one segment, "**" any depth); undefined = any path. */
  readonly paths?: readonly string[];
  readonly action: RuleAction;
  /** "http": requests are terminated and checked; "tcp": an opaque TCP stream (jail only). */
  readonly protocol: 'http' | 'tcp';
  /** What the gateway does with the credential each request carries (allow http rules only). */
  readonly credentials?: readonly CredentialRule[];
  /** Limits on request bytes (line, headers, body) sent under this rule (allow http rules only). */
  readonly budget?: EgressBudget;
  readonly source?: SourceLocation;
}

/** Where a request carries a credential. */
export type CredentialLocation =
  /**
   * A header (lower-case name). For `authorization` the scheme says how the value is framed:
   * "bearer" (`Bearer <token>`) or "basic" (`Basic base64(user:password)`, the password being the
   * credential); every other header carries the credential as its whole value ("raw").
   */
  | { readonly kind: 'header'; readonly name: string; readonly scheme: 'raw' | 'bearer' | 'basic'; readonly username?: string }
  /** A query parameter; names compare after percent-decoding, ignoring case. */
  | { readonly kind: 'query'; readonly name: string };

/** Where the gateway reads a secret it injects. Read by the gateway only, never by the jail. */
export type SecretSource =
  | { readonly kind: 'env'; readonly name: string }
  /** `path` is absolute ("~" and paths relative to the policy file already resolved). */
  | { readonly kind: 'file'; readonly path: string; readonly written: string }
  /** Run without a shell in `cwd` (the policy file's directory); its trimmed stdout is the secret. */
  | { readonly kind: 'command'; readonly argv: readonly string[]; readonly cwd: string };

export type CredentialAction =
  /** Replace the credential with the secret; refuse any value but the placeholder (or none). */
  | { readonly kind: 'inject'; readonly source: SecretSource }
  /** Forward only values whose SHA-256 (lower-case hex) is listed. */
  | { readonly kind: 'require'; readonly sha256: readonly string[] }
  /** Remove the credential before forwarding. */
  | { readonly kind: 'strip' };

export interface CredentialRule {
  readonly location: CredentialLocation;
  readonly action: CredentialAction;
  readonly source?: SourceLocation;
}

/** Request bytes (line, headers, body) a rule may send: in any 60-second window, and in the gateway's lifetime (a run). */
export interface EgressBudget {
  readonly requestBytesPerMinute?: number;
  readonly requestBytesPerRun?: number;
}

export type FilesystemPolicyKey = 'denyRead' | 'allowRead' | 'allowWrite' | 'denyWrite';

/** One path of the `filesystem:` section, kept as written; the jail resolves it (jail/filesystem-rules.ts). */
export interface FilesystemPathEntry {
  /** As written: absolute, "~", "~/...", or relative to `baseDirectory`. */
  readonly path: string;
  /** Absolute directory of the policy file (symlinks not resolved yet). */
  readonly baseDirectory: string;
  readonly source?: SourceLocation;
}

/**
 * The `filesystem:` section. Reads are allowed by default except built-in credential paths and
 * denyRead; allowRead reopens paths inside those; writes are denied except the working directory,
 * the jail's private /tmp and allowWrite; denyWrite wins over allowWrite.
 */
export interface FilesystemPolicy {
  readonly denyRead: readonly FilesystemPathEntry[];
  readonly allowRead: readonly FilesystemPathEntry[];
  readonly allowWrite: readonly FilesystemPathEntry[];
  readonly denyWrite: readonly FilesystemPathEntry[];
  /**
   * Where the command's writes to its writable roots go: 'direct' (absent: the default) in place;
   * 'overlay' to a private layer that is reviewed and applied after the run (docs/overlay.md).
   */
  readonly writeMode?: WriteMode;
  /** With writeMode 'overlay': apply the command's deletions (absent: 'apply') or hold them. */
  readonly deletes?: DeletesMode;
}

export type WriteMode = 'direct' | 'overlay';
export type DeletesMode = 'apply' | 'hold';

/**
 * The `jail:` section: how `srt-gw run`'s jail treats the command beyond its network requests and
 * files. Absent settings keep the default (false).
 */
export interface JailPolicy {
  /**
   * Let the command listen on loopback (macOS: network-bind and network-inbound on localhost; the
   * Seatbelt profile refuses them otherwise). Linux: no effect — the jail's loopback is its own, so
   * a listener there is always allowed and reachable only from inside the jail.
   */
  readonly allowLocalBinding?: boolean;
  /**
   * Host unix sockets the command may connect to, as written (absolute or "~/..."). On Linux every
   * other pathname unix socket that the jail's own processes did not bind is refused.
   */
  readonly allowUnixSockets?: readonly string[];
  /** Where each setting was written (for the merged policy: the file whose value is used). */
  readonly sources?: { readonly allowLocalBinding?: SourceLocation };
}

/** One `allowPrivateDestinations` entry: a CIDR block (an address is written as a /32 or /128). */
export interface PrivateDestinationEntry {
  /** Canonical CIDR text, such as "127.0.0.0/8" or "fd00::/8". */
  readonly range: string;
  readonly source?: SourceLocation;
}

export interface Policy {
  readonly version: 1;
  readonly rules: readonly Rule[];
  /** Absent when no file has a `filesystem:` section: the jail's defaults apply. */
  readonly filesystem?: FilesystemPolicy;
  /** Absent when no file has a `jail:` section: every setting is off. */
  readonly jail?: JailPolicy;
  /**
   * Private ranges (loopback, RFC 1918, link-local, ...) the gateway may connect to when an
   * allowed name resolves into them. Absent or empty: such addresses are refused unless a rule
   * names the address or its range.
   */
  readonly allowPrivateDestinations?: readonly PrivateDestinationEntry[];
  /** Absent when no file has a `dns:` section: the defaults apply. */
  readonly dns?: DnsPolicy;
  /**
   * Absent when no file has a `clients:` section. When present, `srt-gw serve` authenticates every
   * request as one of these clients (identity/authenticate-client.ts).
   */
  readonly clients?: readonly PolicyClient[];
  /** Present when the policy file uses `extends:`: the files and presets merged into it. */
  readonly origin?: PolicyOrigin;
}

/** Settings of the gateway's DNS for the sandbox. */
export interface DnsPolicy {
  /**
   * Distinct names one wildcard rule ("*.example.test", "*") admits per gateway run; later new
   * names under it are refused. Absent: 300.
   */
  readonly maxNamesPerWildcard?: number;
}

/** What the gateway knows about one request when it asks for a decision. */
export interface RequestFacts {
  /** Already normalised with normalizeHost(). */
  host: string;
  port: number;
  /** Upper case. */
  method: string;
  /** The request target's path, raw (not yet normalised), query string included or not. */
  path: string;
}

export interface Decision {
  action: RuleAction;
  /** The deciding rule's id, or "default-deny" when no rule matched. */
  ruleId: string;
  /** One sentence a user can act on; safe to send into the sandbox. */
  reason: string;
  /** The reason's stable code (reason-codes.ts): allowed-by-rule, host-not-allowed, path-not-allowed, ... */
  code: ReasonCode;
}

export const DEFAULT_DENY_RULE_ID = 'default-deny';

/** Where a JWT client's issuer keys come from. */
export type JwksSource =
  /** `path` is absolute ("~" and paths relative to the policy file already resolved). */
  | { readonly kind: 'file'; readonly path: string; readonly written: string }
  | { readonly kind: 'url'; readonly url: string };

/** How a client proves who it is: exactly one way per client. */
export type ClientCredential =
  /** A static token; `sha256` is its lower-case hex SHA-256. */
  | { readonly kind: 'token'; readonly sha256: string }
  /** A JWT signed by one of the issuer's keys; `subjects` are globs, absent = any subject. */
  | { readonly kind: 'jwt'; readonly issuer: string; readonly audience: string; readonly jwks: JwksSource; readonly subjects?: readonly string[] }
  /** A verified client certificate whose common name (`cn`) or one URI SAN (`uri`) matches the glob. */
  | { readonly kind: 'mtls'; readonly field: 'cn' | 'uri'; readonly pattern: string }
  /** A token minted by `srt-gw token issue --client ID`. */
  | { readonly kind: 'issued' };

/** The metrics label of requests from no client the policy names; no client may have this id. */
export const RESERVED_CLIENT_ID = 'other';

/** One entry of `clients:`. */
export interface PolicyClient {
  readonly id: string;
  readonly credential: ClientCredential;
  /** Ids of the allow rules this client may use (deny rules apply to all); absent = every rule. */
  readonly rules?: readonly string[];
  readonly source?: SourceLocation;
}
