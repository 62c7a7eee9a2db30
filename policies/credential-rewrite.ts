// The credentials step of the gateway's request pipeline, as a pure function: applies the
// deciding rule's credential rules to the headers and query string about to be forwarded. Secrets
// come in resolved (the gateway reads them); nothing is read or logged here, and no message ever
// holds a credential value. `policy explain` runs it too, with a stand-in for the secret.
import { createHash } from 'node:crypto';
import type { ReasonCode } from '../reason-codes.js';
import { describeLocation } from './credentials.js';
import type { CredentialLocation, CredentialRule } from './types.js';

/** A credential rule ready for the request path: inject rules carry their secret and placeholder. */
export type ResolvedCredential =
  | { readonly rule: CredentialRule; readonly kind: 'inject'; readonly secret: string; readonly placeholder: string }
  | { readonly rule: CredentialRule; readonly kind: 'require'; readonly sha256: ReadonlySet<string> }
  | { readonly rule: CredentialRule; readonly kind: 'strip' };

/** Replace `from` (a secret, or an encoding of it) with `to` (the placeholder) in responses. */
export interface MaskPair {
  readonly from: string;
  readonly to: string;
}

/** What the step did, for the audit line: never the value. */
export type CredentialOutcome = 'injected' | 'required-ok' | 'stripped';

export type CredentialStepResult =
  | {
      readonly ok: true;
      /** Flat [name, value, ...] list to forward. */
      readonly headers: string[];
      /** The query string to forward: "" or "?..." . */
      readonly query: string;
      /** The strongest thing done (injected > required-ok > stripped), null when nothing applied. */
      readonly outcome: CredentialOutcome | null;
      /** Injected secrets and how to mask them in the response (secret → placeholder). */
      readonly masks: MaskPair[];
    }
  | { readonly ok: false; readonly reason: string; readonly code: CredentialRefusalCode };

const OUTCOME_RANK: Record<CredentialOutcome, number> = { stripped: 1, 'required-ok': 2, injected: 3 };

/** One credential as carried by the request. */
interface Carried {
  /** The credential itself (header value, Bearer token, Basic password, decoded parameter value); null when the framing is wrong. */
  readonly value: string | null;
  /** For Basic: the user name sent. */
  readonly username?: string;
}

/** Applies each of `credentials` in order; the first refusal ends the step. */
export function applyCredentials(ruleId: string, credentials: readonly ResolvedCredential[], headers: readonly string[], query: string): CredentialStepResult {
  let currentHeaders = [...headers];
  let currentQuery = query;
  let outcome: CredentialOutcome | null = null;
  const masks: MaskPair[] = [];
  for (const credential of credentials) {
    const location = credential.rule.location;
    let result: PartResult<object>;
    if (location.kind === 'query') {
      const part = applyToQuery(ruleId, credential, location, currentQuery);
      if (part.ok) currentQuery = part.query;
      result = part;
    } else {
      const part = applyToHeaders(ruleId, credential, location, currentHeaders);
      if (part.ok) currentHeaders = part.headers;
      result = part;
    }
    if (!result.ok) return result;
    masks.push(...result.masks);
    if (outcome === null || OUTCOME_RANK[result.outcome] > OUTCOME_RANK[outcome]) outcome = result.outcome;
  }
  return { ok: true, headers: currentHeaders, query: currentQuery, outcome, masks };
}

/** Why the credentials step refused a request (reason-codes.ts). */
export type CredentialRefusalCode = Extract<ReasonCode, 'credential-in-request' | 'credential-missing'>;

type Refusal = { ok: false; reason: string; code: CredentialRefusalCode };

type PartResult<T> = ({ ok: true; outcome: CredentialOutcome; masks: MaskPair[] } & T) | Refusal;

function applyToHeaders(
  ruleId: string,
  credential: ResolvedCredential,
  location: Extract<CredentialLocation, { kind: 'header' }>,
  headers: string[],
): PartResult<{ headers: string[] }> {
  const positions: number[] = [];
  const carried: Carried[] = [];
  const wanted = headerFoldKey(location.name);
  for (let i = 0; i < headers.length; i += 2) {
    // SECURITY: "x_api_key" and "X.Api-Key" are the same header to CGI, WSGI, PHP and Rack
    // (HTTP_X_API_KEY), so every spelling that folds to the credential's name is the credential:
    // stripped by strip, checked by require, and refused by inject unless it carries the
    // placeholder or nothing (refused rather than stripped: it is a key the sandbox brought, and
    // the refusal says so) — policies/credential-rewrite.test.ts "spellings",
    // test/e2e/credentials.test.ts "header spellings".
    if (headerFoldKey(headers[i]!) !== wanted) continue;
    const value = headers[i + 1] ?? '';
    // An empty header carries no credential: treat it like an absent one.
    if (value.trim() === '') {
      positions.push(i);
      continue;
    }
    positions.push(i);
    carried.push(readHeaderCredential(location, value));
  }
  const without = (): string[] => headers.filter((_, index) => !positions.some((position) => index === position || index === position + 1));
  const where = describeLocation(location);

  switch (credential.kind) {
    case 'strip':
      return { ok: true, headers: without(), outcome: 'stripped', masks: [] };
    case 'require': {
      const refusal = checkRequired(ruleId, where, credential.sha256, carried);
      if (refusal !== null) return refusal;
      return { ok: true, headers, outcome: 'required-ok', masks: [] };
    }
    case 'inject': {
      // SECURITY: any value but the placeholder is refused, so a key brought in by the sandbox
      // (an attacker's own API key) never reaches the upstream — the approved-domain leak,
      // test/e2e/credentials.test.ts "the approved-domain attack".
      if (carried.some((item) => item.value !== credential.placeholder)) return { ok: false, reason: injectRefusal(ruleId, where, credential), code: 'credential-in-request' };
      const username = location.username ?? carried.find((item) => item.username !== undefined)?.username ?? '';
      const value = injectedHeaderValue(location, credential.secret, username);
      const rewritten = without();
      // Where the first one was (after the gateway's Host), else at the end.
      const insertAt = positions.length > 0 ? positions[0]! : rewritten.length;
      rewritten.splice(insertAt, 0, location.name, value);
      const masks = maskPairs(credential.secret, credential.placeholder);
      if (location.scheme === 'basic') masks.push({ from: value.slice('Basic '.length), to: basicToken(username, credential.placeholder) });
      return { ok: true, headers: rewritten, outcome: 'injected', masks };
    }
  }
}

function readHeaderCredential(location: Extract<CredentialLocation, { kind: 'header' }>, value: string): Carried {
  if (location.scheme === 'raw') return { value };
  if (location.scheme === 'bearer') {
    const match = /^\s*bearer +([^\s].*?)\s*$/i.exec(value);
    return { value: match ? match[1]! : null };
  }
  const match = /^\s*basic +([A-Za-z0-9+/]+={0,2})\s*$/i.exec(value);
  if (!match) return { value: null };
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  // A Basic value that does not decode to "user:password" is not a credential we can judge.
  if (colon < 0 || Buffer.from(decoded, 'utf8').toString('base64').replace(/=+$/, '') !== match[1]!.replace(/=+$/, '')) return { value: null };
  return { value: decoded.slice(colon + 1), username: decoded.slice(0, colon) };
}

function injectedHeaderValue(location: Extract<CredentialLocation, { kind: 'header' }>, secret: string, username: string): string {
  if (location.scheme === 'bearer') return `Bearer ${secret}`;
  if (location.scheme === 'basic') return `Basic ${basicToken(username, secret)}`;
  return secret;
}

function basicToken(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/**
 * The name CGI, WSGI, PHP and Rack give a request header, case and separators folded:
 * "x-api-key", "X_API_KEY", "x.api.key" and "x-api-key_" are all "x_api_key". Node's parser
 * accepts any token character in a name ("_", ".", "~", ...), and these stacks turn each of them
 * into "_"; runs and trailing separators fold too, so no spelling a stack might trim gets through.
 */
export function headerFoldKey(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '');
}

/**
 * The name common server stacks read for a query parameter written `rawName`, folded: form-decoded
 * ("k%65y", "+" for a space, IIS's "%u0065"), cut at a NUL (C strings end there: "key%00x"), cut
 * at "[" (PHP and Rack read "key[]" and "key[x]" as the array "key"), case-folded (ASP.NET
 * ignores case), and "." and spaces made "_" as PHP does, with runs and ends of separators folded
 * like header names ("key." and "key " are "key").
 */
export function queryFoldKey(rawName: string): string {
  let name = decodeLeniently(rawName);
  const nul = name.indexOf('\0');
  if (nul >= 0) name = name.slice(0, nul);
  const bracket = name.indexOf('[', 1);
  if (bracket > 0) name = name.slice(0, bracket);
  return headerFoldKey(name);
}

/**
 * Whether a parameter name that does not fold to `wanted` could still be read as it by a stack
 * that decodes differently: one that decodes twice ("k%2565y"), or one that drops a stray "%"
 * ("ke%y"). Stripping such a name would guess which reading the upstream takes, so it is refused.
 */
function readsAsOnSomeStack(rawName: string, wanted: string): boolean {
  if (!rawName.includes('%')) return false;
  if (queryFoldKey(decodeLeniently(rawName)) === wanted) return true;
  return /%(?![0-9a-fA-F]{2}|u[0-9a-fA-F]{4})/.test(rawName) && queryFoldKey(rawName.replace(/%/g, '')) === wanted;
}

/** A query parameter as written: its text and, when it names the credential, the decoded value. */
interface QueryPart {
  separator: string;
  text: string;
  matches: boolean;
  /** Its name is spelt so that some stacks read it as the credential's and others do not. */
  ambiguous: boolean;
  value: string | null;
}

function applyToQuery(
  ruleId: string,
  credential: ResolvedCredential,
  location: Extract<CredentialLocation, { kind: 'query' }>,
  query: string,
): PartResult<{ query: string }> {
  const parts = splitQuery(query, location.name);
  const where = describeLocation(location);
  // SECURITY: a name that only some stacks read as the credential's is refused, not guessed at —
  // policies/credential-rewrite.test.ts "spellings".
  if (parts.some((part) => part.ambiguous)) {
    return { ok: false, reason: `rule ${ruleId} refuses a query parameter whose name servers decode differently, one reading of which is ${location.name}; send it encoded once`, code: 'credential-in-request' };
  }
  const matching = parts.filter((part) => part.matches);
  // Parameters without a value ("?key" or "?key=") carry no credential.
  const carried: Carried[] = matching.filter((part) => part.value !== null && part.value !== '').map((part) => ({ value: part.value }));
  switch (credential.kind) {
    case 'strip':
      return { ok: true, query: joinQuery(parts.filter((part) => !part.matches)), outcome: 'stripped', masks: [] };
    case 'require': {
      const refusal = checkRequired(ruleId, where, credential.sha256, carried);
      if (refusal !== null) return refusal;
      return { ok: true, query, outcome: 'required-ok', masks: [] };
    }
    case 'inject': {
      if (carried.some((item) => item.value !== credential.placeholder)) return { ok: false, reason: injectRefusal(ruleId, where, credential), code: 'credential-in-request' };
      const text = `${encodeURIComponent(location.name)}=${encodeURIComponent(credential.secret)}`;
      const first = parts.findIndex((part) => part.matches);
      const kept = parts.filter((part, index) => !part.matches || index === first);
      if (first >= 0) kept[kept.indexOf(parts[first]!)] = { ...parts[first]!, text, matches: false };
      else kept.push({ separator: '&', text, matches: false, ambiguous: false, value: null });
      return { ok: true, query: joinQuery(kept), outcome: 'injected', masks: maskPairs(credential.secret, credential.placeholder) };
    }
  }
}

/**
 * Splits "?a=1&key=x;b" into parameters. ";" counts as a separator too, because some servers
 * split on it: a "key" hidden behind one must still be seen. A parameter names the credential
 * when its name folds to the same as `name` (queryFoldKey): "KEY", "k%65y", "key[]", "key%00".
 */
function splitQuery(query: string, name: string): QueryPart[] {
  if (query === '' || query === '?') return [];
  const wanted = queryFoldKey(name);
  const parts: QueryPart[] = [];
  const body = query.slice(1);
  const pattern = /([&;]?)([^&;]*)/g;
  for (let match = pattern.exec(body); match !== null && match[0] !== ''; match = pattern.exec(body)) {
    const text = match[2]!;
    const equals = text.indexOf('=');
    const rawName = equals < 0 ? text : text.slice(0, equals);
    // SECURITY: every spelling a common stack folds to the credential's name is the credential —
    // policies/credential-rewrite.test.ts "spellings", test/e2e/credentials.test.ts "query spellings".
    const matches = text !== '' && queryFoldKey(rawName) === wanted;
    const ambiguous = !matches && text !== '' && readsAsOnSomeStack(rawName, wanted);
    parts.push({ separator: match[1] ?? '', text, matches, ambiguous, value: matches ? (equals < 0 ? null : decodeComponent(text.slice(equals + 1))) : null });
  }
  return parts;
}

function joinQuery(parts: readonly QueryPart[]): string {
  const kept = parts.filter((part) => part.text !== '' || part.separator === '');
  if (kept.length === 0 || kept.every((part) => part.text === '')) return '';
  return `?${kept.map((part, index) => (index === 0 ? part.text : `${part.separator || '&'}${part.text}`)).join('')}`;
}

/**
 * Form-style decoding as lenient servers do it: "+" is a space, each valid "%XX" a byte, IIS's
 * "%uXXXX" a UTF-16 unit, and anything else (a stray "%", bytes that are not UTF-8) is kept or
 * replaced, never an error.
 */
function decodeLeniently(text: string): string {
  const spaced = text.replace(/\+/g, ' ').replace(/%u([0-9a-fA-F]{4})/g, (_match, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return char === '%' ? '%25' : char;
  });
  const pieces: Buffer[] = [];
  let copiedUpTo = 0;
  for (const escape of spaced.matchAll(/%[0-9a-fA-F]{2}/g)) {
    pieces.push(Buffer.from(spaced.slice(copiedUpTo, escape.index), 'utf8'), Buffer.from([parseInt(escape[0].slice(1), 16)]));
    copiedUpTo = escape.index + 3;
  }
  pieces.push(Buffer.from(spaced.slice(copiedUpTo), 'utf8'));
  return Buffer.concat(pieces).toString('utf8');
}

/** Form-style decoding ("+" is a space); text that is not valid percent-encoding stays as written. */
function decodeComponent(text: string): string {
  const spaced = text.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    return spaced;
  }
}

function checkRequired(ruleId: string, where: string, allowed: ReadonlySet<string>, carried: readonly Carried[]): Refusal | null {
  if (carried.length === 0) return { ok: false, reason: `rule ${ruleId} requires a ${where} and the request has none`, code: 'credential-missing' };
  // Every copy must be allowed: an upstream may read the first or the last of several.
  for (const item of carried) {
    if (item.value === null || !allowed.has(sha256Hex(item.value))) {
      return { ok: false, reason: `rule ${ruleId} refuses the ${where} sent: it is not one of the credentials this rule allows`, code: 'credential-in-request' };
    }
  }
  return null;
}

function injectRefusal(ruleId: string, where: string, credential: Extract<ResolvedCredential, { kind: 'inject' }>): string {
  const action = credential.rule.action;
  const env = action.kind === 'inject' && action.source.kind === 'env' ? ` (srt-gw run puts it in $${action.source.name})` : '';
  return `rule ${ruleId} refuses the ${where} sent: the gateway adds this credential itself, so send none or the placeholder${env}`;
}

/** Encoded forms shorter than this are not masked: a short fragment would match unrelated text. */
const MIN_ENCODED_FORM = 8;

/**
 * The secret as an upstream may reflect it, each form → the placeholder (in the same encoding
 * where the form is a whole encoding, so a client that decodes it reads the placeholder): as is;
 * percent-encoded minimally, or every byte as %XX in upper and in lower case; JSON-escaped
 * minimally, with "\/", or every unit as \uXXXX (upper and lower hex); hex (upper and lower);
 * and base64, standard and URL-safe, as the characters that stay the same wherever the secret sits
 * in a larger base64 blob (its offset mod 3 is 0, 1 or 2). Transformations beyond these
 * (compression, encryption, hashing, other encodings) cannot be found: docs/credentials.md.
 */
export function maskPairs(secret: string, placeholder: string): MaskPair[] {
  const pairs: MaskPair[] = [];
  const add = (from: string, to: string, minLength = 0): void => {
    if (from.length < minLength || pairs.some((pair) => pair.from === from)) return;
    pairs.push({ from, to });
  };
  add(secret, placeholder);
  add(encodeURIComponent(secret), encodeURIComponent(placeholder));
  add(JSON.stringify(secret).slice(1, -1), JSON.stringify(placeholder).slice(1, -1));
  add(JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'), JSON.stringify(placeholder).slice(1, -1).replace(/\//g, '\\/'));
  for (const upper of [true, false]) {
    add(percentEncodeAll(secret, upper), percentEncodeAll(placeholder, upper), MIN_ENCODED_FORM);
    add(unicodeEscapeAll(secret, upper), unicodeEscapeAll(placeholder, upper), MIN_ENCODED_FORM);
    const hex = (text: string) => (upper ? Buffer.from(text, 'utf8').toString('hex').toUpperCase() : Buffer.from(text, 'utf8').toString('hex'));
    add(hex(secret), hex(placeholder), MIN_ENCODED_FORM);
  }
  for (const form of base64Fragments(secret)) add(form, placeholder, MIN_ENCODED_FORM);
  return pairs;
}

function percentEncodeAll(text: string, upper: boolean): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) out += `%${byte.toString(16).padStart(2, '0')}`;
  return upper ? out.toUpperCase() : out;
}

function unicodeEscapeAll(text: string, upper: boolean): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const hex = text.charCodeAt(i).toString(16).padStart(4, '0');
    out += `\\u${upper ? hex.toUpperCase() : hex}`;
  }
  return out;
}

/**
 * The base64 characters that encode only the secret's bits, for each offset (mod 3) at which the
 * secret may start inside a larger encoded blob, in standard and URL-safe alphabets. Characters
 * that also carry bits of the bytes before or after it differ with those bytes and are left out.
 */
export function base64Fragments(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const fragments: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const firstBit = offset * 8;
    const endBit = firstBit + bytes.length * 8;
    // Character i carries bits [6i, 6i + 6): stable when all of them are the secret's.
    const first = Math.ceil(firstBit / 6);
    const end = Math.floor(endBit / 6);
    if (end <= first) continue;
    const standard = encoded.slice(first, end);
    for (const form of [standard, standard.replace(/\+/g, '-').replace(/\//g, '_')]) {
      if (!fragments.includes(form)) fragments.push(form);
    }
  }
  return fragments;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}
