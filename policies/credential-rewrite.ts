// The credentials step of the gateway's request pipeline, as a pure function: applies the
// deciding rule's credential rules to the headers and query string about to be forwarded. Secrets
// come in resolved (the gateway reads them); nothing is read or logged here, and no message ever
// holds a credential value. `policy explain` runs it too, with a stand-in for the secret.
import { createHash } from 'node:crypto';
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
  | { readonly ok: false; readonly reason: string };

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

type PartResult<T> = ({ ok: true; outcome: CredentialOutcome; masks: MaskPair[] } & T) | { ok: false; reason: string };

function applyToHeaders(
  ruleId: string,
  credential: ResolvedCredential,
  location: Extract<CredentialLocation, { kind: 'header' }>,
  headers: string[],
): PartResult<{ headers: string[] }> {
  const positions: number[] = [];
  const carried: Carried[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== location.name) continue;
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
      if (refusal !== null) return { ok: false, reason: refusal };
      return { ok: true, headers, outcome: 'required-ok', masks: [] };
    }
    case 'inject': {
      // SECURITY: any value but the placeholder is refused, so a key brought in by the sandbox
      // (an attacker's own API key) never reaches the upstream — the approved-domain leak,
      // test/e2e/credentials.test.ts "the approved-domain attack".
      if (carried.some((item) => item.value !== credential.placeholder)) return { ok: false, reason: injectRefusal(ruleId, where, credential) };
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

/** A query parameter as written: its text and, when it names the credential, the decoded value. */
interface QueryPart {
  separator: string;
  text: string;
  matches: boolean;
  value: string | null;
}

function applyToQuery(
  ruleId: string,
  credential: ResolvedCredential,
  location: Extract<CredentialLocation, { kind: 'query' }>,
  query: string,
): PartResult<{ query: string }> {
  const parts = splitQuery(query, location.name);
  const matching = parts.filter((part) => part.matches);
  // Parameters without a value ("?key" or "?key=") carry no credential.
  const carried: Carried[] = matching.filter((part) => part.value !== null && part.value !== '').map((part) => ({ value: part.value }));
  const where = describeLocation(location);
  switch (credential.kind) {
    case 'strip':
      return { ok: true, query: joinQuery(parts.filter((part) => !part.matches)), outcome: 'stripped', masks: [] };
    case 'require': {
      const refusal = checkRequired(ruleId, where, credential.sha256, carried);
      if (refusal !== null) return { ok: false, reason: refusal };
      return { ok: true, query, outcome: 'required-ok', masks: [] };
    }
    case 'inject': {
      if (carried.some((item) => item.value !== credential.placeholder)) return { ok: false, reason: injectRefusal(ruleId, where, credential) };
      const text = `${encodeURIComponent(location.name)}=${encodeURIComponent(credential.secret)}`;
      const first = parts.findIndex((part) => part.matches);
      const kept = parts.filter((part, index) => !part.matches || index === first);
      if (first >= 0) kept[kept.indexOf(parts[first]!)] = { ...parts[first]!, text, matches: false };
      else kept.push({ separator: '&', text, matches: false, value: null });
      return { ok: true, query: joinQuery(kept), outcome: 'injected', masks: maskPairs(credential.secret, credential.placeholder) };
    }
  }
}

/**
 * Splits "?a=1&key=x;b" into parameters. ";" counts as a separator too, because some servers
 * split on it: a "key" hidden behind one must still be seen.
 */
function splitQuery(query: string, name: string): QueryPart[] {
  if (query === '' || query === '?') return [];
  const wanted = name.toLowerCase();
  const parts: QueryPart[] = [];
  const body = query.slice(1);
  const pattern = /([&;]?)([^&;]*)/g;
  for (let match = pattern.exec(body); match !== null && match[0] !== ''; match = pattern.exec(body)) {
    const text = match[2]!;
    const equals = text.indexOf('=');
    const rawName = equals < 0 ? text : text.slice(0, equals);
    const matches = text !== '' && decodeComponent(rawName).toLowerCase() === wanted;
    parts.push({ separator: match[1] ?? '', text, matches, value: matches ? (equals < 0 ? null : decodeComponent(text.slice(equals + 1))) : null });
  }
  return parts;
}

function joinQuery(parts: readonly QueryPart[]): string {
  const kept = parts.filter((part) => part.text !== '' || part.separator === '');
  if (kept.length === 0 || kept.every((part) => part.text === '')) return '';
  return `?${kept.map((part, index) => (index === 0 ? part.text : `${part.separator || '&'}${part.text}`)).join('')}`;
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

function checkRequired(ruleId: string, where: string, allowed: ReadonlySet<string>, carried: readonly Carried[]): string | null {
  if (carried.length === 0) return `rule ${ruleId} requires a ${where} and the request has none`;
  // Every copy must be allowed: an upstream may read the first or the last of several.
  for (const item of carried) {
    if (item.value === null || !allowed.has(sha256Hex(item.value))) return `rule ${ruleId} refuses the ${where} sent: it is not one of the credentials this rule allows`;
  }
  return null;
}

function injectRefusal(ruleId: string, where: string, credential: Extract<ResolvedCredential, { kind: 'inject' }>): string {
  const action = credential.rule.action;
  const env = action.kind === 'inject' && action.source.kind === 'env' ? ` (srt-gw run puts it in $${action.source.name})` : '';
  return `rule ${ruleId} refuses the ${where} sent: the gateway adds this credential itself, so send none or the placeholder${env}`;
}

/** The secret as it may come back in a response (as is, percent-encoded, JSON-escaped) → the placeholder. */
function maskPairs(secret: string, placeholder: string): MaskPair[] {
  const pairs: MaskPair[] = [{ from: secret, to: placeholder }];
  for (const form of [encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]) {
    if (!pairs.some((pair) => pair.from === form)) pairs.push({ from: form, to: placeholder });
  }
  return pairs;
}

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}
