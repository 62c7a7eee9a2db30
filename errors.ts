// Every error srt-gw raises on purpose: one base class with a stable `code`, so callers (the CLI,
// the library API, tests) branch on codes, never on message text. Messages say what to do.

export const ErrorCodes = {
  /** A policy file does not parse or does not validate; the message names file:line:column. */
  POLICY_INVALID: 'SRTGW_POLICY_INVALID',
  /** A decision table (`srt-gw policy test`) does not parse or validate; the message names file:line:column. */
  TABLE_INVALID: 'SRTGW_TABLE_INVALID',
  /** An srt settings file (srt's JSON) cannot be converted. */
  SRT_SETTINGS_INVALID: 'SRTGW_SRT_SETTINGS_INVALID',
  /** A policy file cannot be read. */
  POLICY_UNREADABLE: 'SRTGW_POLICY_UNREADABLE',
  /**
   * A policy file that `srt-gw run` found on its own (./.srt-gw.yaml, ./.srt.json, or a file they
   * extend) was not trusted in this exact content with `srt-gw policy trust`.
   */
  POLICY_UNTRUSTED: 'SRTGW_POLICY_UNTRUSTED',
  /** The CA directory or key is unusable (wrong permissions, corrupt PEM, ...). */
  CA_INVALID: 'SRTGW_CA_INVALID',
  /**
   * The jail's filesystem rules cannot be applied: the policy hides the working directory, makes
   * "/" writable, or a path cannot be handed to bubblewrap (a line break or NUL in it).
   */
  JAIL_FILESYSTEM_INVALID: 'SRTGW_JAIL_FILESYSTEM_INVALID',
  /** `srt-gw run` cannot build its jail here (bubblewrap, nftables or a native helper missing or failing). */
  JAIL_UNAVAILABLE: 'SRTGW_JAIL_UNAVAILABLE',
  /**
   * A secret a credential rule injects cannot be read at start or reload (env var unset or empty,
   * file missing, command failing, a value that cannot be sent); the message never holds the value.
   */
  CREDENTIAL_UNAVAILABLE: 'SRTGW_CREDENTIAL_UNAVAILABLE',
  /**
   * A held change set of a reviewed-writes run (`srt-gw changes`) does not exist, has no such
   * path, or cannot be applied; the message names the id or path.
   */
  CHANGES_INVALID: 'SRTGW_CHANGES_INVALID',
  /** A command-line flag or library option is invalid. */
  CONFIG_INVALID: 'SRTGW_CONFIG_INVALID',
  /** A listener could not bind. */
  LISTEN_FAILED: 'SRTGW_LISTEN_FAILED',
  /**
   * The node that runs srt-gw lacks an internal the gateway relies on where node offers no public
   * way (gateway/node-internals.ts); the message names it. Run srt-gw on the node it supports.
   */
  NODE_UNSUPPORTED: 'SRTGW_NODE_UNSUPPORTED',
  /** The upstream host name did not resolve. */
  UPSTREAM_DNS: 'SRTGW_UPSTREAM_DNS',
  /**
   * An allowed name resolved to a private address (loopback, RFC 1918, link-local, the gateway's
   * own, ...) that no rule, allowPrivateDestinations entry or --resolve pin opens.
   */
  UPSTREAM_PRIVATE_DESTINATION: 'SRTGW_UPSTREAM_PRIVATE_DESTINATION',
  /** The upstream refused or reset the connection. */
  UPSTREAM_REFUSED: 'SRTGW_UPSTREAM_REFUSED',
  /** The upstream certificate did not verify. */
  UPSTREAM_CERT: 'SRTGW_UPSTREAM_CERT',
  /** The upstream did not answer in time. */
  UPSTREAM_TIMEOUT: 'SRTGW_UPSTREAM_TIMEOUT',
  /**
   * The upstream proxy (--upstream-proxy) failed: refused, timed out, asked for or rejected
   * credentials, refused the CONNECT, or its certificate did not verify; the message says which.
   */
  UPSTREAM_PROXY: 'SRTGW_UPSTREAM_PROXY',
  /**
   * The remote gateway of `srt-gw run --gateway` cannot be used: unreachable, its certificate did
   * not verify, or it refused the token (407); the message says which.
   */
  REMOTE_GATEWAY: 'SRTGW_REMOTE_GATEWAY',
  /** Every synthetic DNS address is taken (names are never silently reassigned). */
  DNS_POOL_EXHAUSTED: 'SRTGW_DNS_POOL_EXHAUSTED',
  /** Any other upstream failure. */
  UPSTREAM_FAILED: 'SRTGW_UPSTREAM_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export class SrtGwError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SrtGwError';
    this.code = code;
  }
}

export function isSrtGwError(value: unknown, code?: ErrorCode): value is SrtGwError {
  return value instanceof SrtGwError && (code === undefined || value.code === code);
}
