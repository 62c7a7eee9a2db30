// The runtime shape of a policy: what the matcher works on. The YAML file shape lives in
// schema.ts; loader.ts converts one into the other and is the only place validation happens.

export type RuleAction = 'allow' | 'deny';

/** Where a rule came from, so decisions and errors can point at file:line:column. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
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
  readonly source?: SourceLocation;
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
}

export interface Policy {
  readonly version: 1;
  readonly rules: readonly Rule[];
  /** Absent when the file has no `filesystem:` section: the jail's defaults apply. */
  readonly filesystem?: FilesystemPolicy;
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
}

export const DEFAULT_DENY_RULE_ID = 'default-deny';
