// Stable codes beside every decision's English reason: the reason says what happened in words a
// user can act on and may be reworded; the code does not change, so alerts, dashboards, scripts
// and the sandboxed program branch on it. They appear in audit lines and decision events
// (`code`), and in the JSON body of the gateway's own 4xx/5xx answers. Documented in
// docs/monitoring.md ("Reason codes"); reason-codes.test.ts holds that list and this one equal.

/** Every code, each with what it means. Add codes; never rename or reuse one. */
export const REASON_CODE_MEANINGS = {
  // Allowed
  'allowed-by-rule': 'a rule allows the request or TCP connection (the rule id says which)',
  'checked-per-request': 'a tunnel or jail connection opened for a host some rule may allow; each request on it is checked',
  'approved-unknown-host': "the library's onUnknownHost approved this host and port",
  'monitor-mode': 'report mode (--monitor) opened a connection no rule allows; its requests are reported',
  'name-allowed': 'DNS: a rule may allow the name, which got a synthetic address',
  'record-type-not-answered': 'DNS: a name a rule may allow, asked for a record type the gateway never answers (empty answer)',
  // The policy
  'host-not-allowed': 'no rule allows the host (on this port, for a tunnel or TCP connection)',
  'port-not-allowed': 'rules allow the host, but not on this port',
  'method-not-allowed': 'rules allow the host and port, but not this method',
  'path-not-allowed': 'rules allow the host, port and method, but not this path',
  'denied-by-rule': 'a deny rule matches (the rule id says which)',
  'invalid-host': 'the host is not a valid host name or IP address',
  // Framing and authority (before the policy)
  'malformed-request': 'the request is not well-formed HTTP, or names its host in conflicting ways',
  'headers-too-large': 'the request head is larger than the gateway accepts (431)',
  'ambiguous-path': 'the path is encoded so that servers would read it differently (a double escape, an encoded "/" or "..", a backslash)',
  'invalid-path': 'the path cannot be normalised: an invalid percent escape, an ambiguous segment ("..;"), or no leading "/"',
  'not-a-proxy-request': 'an origin-form request sent to the explicit proxy (send absolute-form or use CONNECT)',
  'upgrade-not-supported': 'an HTTP upgrade other than WebSocket',
  'authority-mismatch': 'the request names another host or port than the connection it came on (421)',
  // TLS with the client
  'sni-host-mismatch': 'the TLS server name is not the host the tunnel or connection is for',
  'tls-no-server-name': 'a handshake without a TLS server name failed',
  'tls-handshake-failed': 'the TLS handshake with the client failed',
  'no-certificate': 'no certificate can be issued for the host',
  'node-unsupported': 'the node that runs the gateway lacks an internal it needs to terminate TLS',
  // Credentials and budgets
  'credential-over-plain-http': 'the rule injects a credential, which the gateway sends only over https',
  'credential-in-request': 'the request carries a credential its rule refuses (the gateway injects its own, or only listed ones pass)',
  'credential-missing': 'the rule requires a credential and the request has none',
  'budget-exceeded': "the request would cross its rule's egress budget (429)",
  'budget-state-unavailable': "the rule has an egress budget and the shared budget state (serve --state) cannot be reached to count the request (429, fail closed)",
  // Clients of the explicit proxy (policy `clients:`, srt-gw serve)
  'rule-not-for-client': 'a rule allows the request, but not for the authenticated client (its `rules:` in `clients:` leave it out)',
  'client-credentials-missing': 'the policy names clients and the request carries no Proxy-Authorization (nor a client certificate) (407)',
  'client-credentials-malformed': 'Proxy-Authorization is not one well-formed Basic or Bearer value, or came more than once (407)',
  'client-credentials-invalid': 'the token or Basic password matches no client (407)',
  'client-certificate-unverified': "the client certificate does not verify against serve's --client-ca (407)",
  'client-certificate-not-allowed': 'the client certificate verifies but matches no client of the policy (407)',
  'client-token-malformed': 'the bearer token is not a well-formed JWT (407)',
  'client-token-expired': 'the JWT or issued token has expired (407)',
  'client-token-not-yet-valid': 'the JWT is not valid yet (nbf or iat in the future) (407)',
  'client-token-wrong-audience': "the JWT's audience is not the client's (407)",
  'client-token-wrong-issuer': "the JWT's issuer is not the client's (407)",
  'client-token-unknown-key': "the JWT's key id is in none of the client's keys (407)",
  'client-token-bad-signature': "the JWT's signature does not verify (407)",
  'client-token-subject-not-allowed': "the JWT's subject matches none of the client's subjects (407)",
  'client-token-invalid-claims': 'the JWT lacks a claim the gateway requires, or has one of the wrong type (407)',
  'client-token-revoked': 'the issued token was revoked (srt-gw token revoke) (407)',
  'client-token-revocations-unavailable': 'the revocation list could not be read, so issued tokens are refused (407)',
  'client-token-keys-unavailable': "the client's keys (JWKS file or URL, issued-token key) could not be read (407)",
  // The destination and the upstream
  'private-destination': 'the host resolved to a private address no rule opens',
  'upstream-dns': 'the upstream host did not resolve (502)',
  'upstream-refused': 'the upstream refused the connection (502)',
  'upstream-certificate': "the upstream's certificate did not verify (502)",
  'upstream-timeout': 'the upstream did not answer in time (502)',
  'upstream-reset': 'the upstream reset the connection (502)',
  'upstream-error': 'any other upstream failure (502)',
  'upstream-proxy-refused': 'the upstream proxy (--upstream-proxy) could not be reached, or closed the connection before answering CONNECT (502)',
  'upstream-proxy-auth-failed': 'the upstream proxy answered CONNECT with 407: its credentials are missing or wrong (502)',
  'upstream-proxy-denied': 'the upstream proxy answered CONNECT with 403: its own policy refuses the host (502)',
  'upstream-proxy-timeout': 'the upstream proxy did not open the tunnel in time, or answered 504/408 (502)',
  'upstream-proxy-certificate': "the https:// upstream proxy's certificate did not verify (502)",
  'upstream-proxy-error': 'the upstream proxy answered CONNECT with another status, or with a malformed answer (502)',
  // DNS refusals
  'wildcard-cap-reached': "DNS: the name is new under a wildcard rule that admitted its cap of names",
  'query-refused': 'DNS: the query is of a kind the gateway refuses (zone transfer, class, EDNS version), or failed',
  'rate-limited': 'DNS: the client sent more queries than its rate allows',
  'malformed-query': 'DNS: the packet is not a well-formed query',
} as const;

export type ReasonCode = keyof typeof REASON_CODE_MEANINGS;

/** Every reason code, in the order of the documentation. */
export const REASON_CODES = Object.keys(REASON_CODE_MEANINGS) as readonly ReasonCode[];

export function isReasonCode(value: unknown): value is ReasonCode {
  return typeof value === 'string' && Object.hasOwn(REASON_CODE_MEANINGS, value);
}

/** The kinds of upstream failure (RequestEvent.upstreamError). */
export type UpstreamFailureKind = 'dns' | 'refused' | 'certificate' | 'timeout' | 'reset' | 'other' | `proxy-${UpstreamProxyFailureKind}`;

/** How the upstream proxy (--upstream-proxy) failed: the code is `upstream-proxy-<kind>`. */
export type UpstreamProxyFailureKind = 'refused' | 'auth-failed' | 'denied' | 'timeout' | 'certificate' | 'error';

/** Every kind of upstream failure, in the order of the documentation. */
export const UPSTREAM_FAILURE_KINDS: readonly UpstreamFailureKind[] = [
  'dns', 'refused', 'certificate', 'timeout', 'reset', 'other',
  'proxy-refused', 'proxy-auth-failed', 'proxy-denied', 'proxy-timeout', 'proxy-certificate', 'proxy-error',
];

/** The code of an upstream failure of `kind`. */
export function upstreamFailureCode(kind: UpstreamFailureKind): ReasonCode {
  return kind === 'other' ? 'upstream-error' : `upstream-${kind}`;
}
