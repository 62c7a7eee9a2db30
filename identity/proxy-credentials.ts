// Reads the credentials a client sends the gateway in Proxy-Authorization: `Bearer TOKEN`, or
// `Basic base64(CLIENT:TOKEN)` (what proxy URLs such as http://ci:TOKEN@gateway:8080 make clients
// send). Strict: anything else is "malformed", and no input makes it throw.

/** Longer values are refused before any decoding: no credential a client needs is this long. */
export const MAX_PROXY_AUTHORIZATION_LENGTH = 8192;

export type ProxyCredentials =
  | { readonly scheme: 'bearer'; readonly token: string }
  /** `username` names the client (may be empty: then the token alone says who it is). */
  | { readonly scheme: 'basic'; readonly username: string; readonly token: string };

export type ProxyAuthorization =
  | { readonly kind: 'missing' }
  /** `problem` says what is wrong with the header, never what it holds. */
  | { readonly kind: 'malformed'; readonly problem: string }
  | { readonly kind: 'credentials'; readonly credentials: ProxyCredentials };

/** RFC 6750 b64token: what a Bearer token may be spelled with. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
/** RFC 4648 base64 with its padding, in whole quanta. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** "Scheme SP credentials": one or more spaces between, as RFC 9110 allows. */
const SCHEME_AND_CREDENTIALS = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +(\S+)$/;
const CONTROL_CHARACTER = /[\x00-\x1f\x7f]/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The credentials in a Proxy-Authorization header value as node gives it (undefined when absent). */
export function parseProxyAuthorization(value: string | readonly string[] | undefined): ProxyAuthorization {
  if (value === undefined) return { kind: 'missing' };
  if (typeof value !== 'string') {
    if (value.length === 0) return { kind: 'missing' };
    // SECURITY: two headers could each name a different client; refuse rather than pick one —
    // identity/proxy-credentials.test.ts "sent twice".
    if (value.length > 1) return { kind: 'malformed', problem: 'Proxy-Authorization must be sent once' };
    return parseProxyAuthorization(value[0]);
  }
  if (value.length > MAX_PROXY_AUTHORIZATION_LENGTH) return { kind: 'malformed', problem: `Proxy-Authorization is longer than ${MAX_PROXY_AUTHORIZATION_LENGTH} characters` };
  const match = SCHEME_AND_CREDENTIALS.exec(value.trim());
  if (match === null) return { kind: 'malformed', problem: 'Proxy-Authorization must be "Bearer TOKEN" or "Basic BASE64(CLIENT:TOKEN)"' };
  const scheme = match[1]!.toLowerCase();
  const credentials = match[2]!;
  if (scheme === 'bearer') {
    if (!BEARER_TOKEN.test(credentials)) return { kind: 'malformed', problem: 'the Bearer token has characters a token cannot have' };
    return { kind: 'credentials', credentials: { scheme: 'bearer', token: credentials } };
  }
  if (scheme === 'basic') return parseBasic(credentials);
  return { kind: 'malformed', problem: `the scheme must be Bearer or Basic (got ${JSON.stringify(match[1]!.slice(0, 20))})` };
}

function parseBasic(encoded: string): ProxyAuthorization {
  if (!BASE64.test(encoded)) return { kind: 'malformed', problem: 'the Basic credentials are not base64' };
  let decoded: string;
  try {
    decoded = utf8.decode(Buffer.from(encoded, 'base64'));
  } catch {
    return { kind: 'malformed', problem: 'the Basic credentials are not UTF-8 text' };
  }
  const colon = decoded.indexOf(':');
  if (colon === -1) return { kind: 'malformed', problem: 'the Basic credentials must be CLIENT:TOKEN' };
  const username = decoded.slice(0, colon);
  const token = decoded.slice(colon + 1);
  if (token === '') return { kind: 'malformed', problem: 'the Basic credentials have no token after the ":"' };
  if (CONTROL_CHARACTER.test(decoded)) return { kind: 'malformed', problem: 'the Basic credentials hold control characters' };
  return { kind: 'credentials', credentials: { scheme: 'basic', username, token } };
}
