// Explains one decision for a reviewer: how the request was normalised, which rules name its
// host and why each did or did not match, and what the client would get. Pure; the CLI prints it.
import type { ReasonCode } from '../reason-codes.js';
import { applyCredentials, type ResolvedCredential } from './credential-rewrite.js';
import { describeBudget, describeCredentialRule, placeholderFor } from './credentials.js';
import { compilePolicy } from './match.js';
import { hostMatchesPattern, normalizeHost } from './host.js';
import { findAmbiguousEncoding, normalizePath, pathMatchesGlob } from './path.js';
import { describeOrigin } from './source-location.js';
import type { Decision, Policy, Rule } from './types.js';

/** A request as written by a person: "GET https://api.example.test/v1/x". */
export interface RequestLine {
  method: string;
  scheme: 'http' | 'https';
  /** The host as written (brackets removed from IPv6). */
  host: string;
  port: number;
  /** The path as written, query included; never normalised by a URL parser. */
  path: string;
}

export type ParsedRequestLine = { readonly request: RequestLine } | { readonly error: string };

const DEFAULT_PORTS = { http: 80, https: 443 } as const;
const URL_PATTERN = /^(https?):\/\/([^/?#]*)([^#]*)/i;

/**
 * Parses METHOD and URL without WHATWG URL, which would resolve "%2e%2e" before the policy sees
 * it and so hide the normalisation a reviewer needs to see.
 */
export function parseRequestUrl(method: string, url: string): ParsedRequestLine {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(method)) return { error: `method ${JSON.stringify(method)} is not an HTTP method` };
  const match = URL_PATTERN.exec(url);
  if (match === null) return { error: `URL ${JSON.stringify(url)} must start with http:// or https://` };
  const scheme = match[1]!.toLowerCase() as 'http' | 'https';
  const authority = match[2]!.slice(match[2]!.lastIndexOf('@') + 1);
  const hostPort = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(authority);
  if (hostPort === null || hostPort[1] === '') return { error: `URL ${JSON.stringify(url)} has no host` };
  const portText = hostPort[2];
  const port = portText === undefined || portText === '' ? DEFAULT_PORTS[scheme] : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { error: `URL ${JSON.stringify(url)} has an invalid port` };
  const rawHost = hostPort[1]!;
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  const path = match[3] === '' ? '/' : match[3]!;
  return { request: { method: method.toUpperCase(), scheme, host, port, path } };
}

/** Parses "GET https://host/path" (method, one space, URL). */
export function parseRequestText(text: string): ParsedRequestLine {
  const parts = text.trim().split(/\s+/);
  if (parts.length !== 2) return { error: `must be "METHOD URL", such as "GET https://api.example.test/v1/x" (got ${JSON.stringify(text)})` };
  return parseRequestUrl(parts[0]!, parts[1]!);
}

export interface RuleVerdict {
  readonly id: string;
  readonly line?: number;
  /** Where the rule was written, for a rule from an extended file or preset: "preset:github:38:5, extended at policy.yaml:3:5". */
  readonly from?: string;
  readonly action: Rule['action'];
  readonly host: string;
  readonly matched: boolean;
  /** The first field that did not match, or null when the rule matched. */
  readonly failedField: 'port' | 'method' | 'path' | null;
  /** One sentence: why it matched or not. */
  readonly detail: string;
}

export interface Explanation {
  readonly request: { readonly method: string; readonly url: string };
  readonly host: { readonly written: string; readonly normalized: string | null };
  readonly port: number;
  readonly path: { readonly written: string; readonly normalized: string | null; readonly error?: string };
  /** Every http rule whose host pattern matches the host, in policy order. */
  readonly rules: readonly RuleVerdict[];
  readonly decision: Decision;
  /** The 403 body the gateway sends for a deny (gateway/http/responses.ts denialResponse), else null. */
  readonly denyBody: string | null;
  /** What happens to the credentials of an allowed request: one sentence per credential rule of the deciding rule. */
  readonly credentials: readonly string[];
  /**
   * The credentials step run on the headers (and query) given, with a stand-in for the secret:
   * null when the deciding rule has no credential rules or the request is denied anyway.
   */
  readonly credentialCheck: { readonly outcome: 'injected' | 'required-ok' | 'stripped' | 'refused' | 'none'; readonly reason?: string; readonly code?: ReasonCode } | null;
  /** The deciding rule's egress budget ("1 MiB per minute and 100 MiB per run"), else null. */
  readonly budget: string | null;
  /** Remarks on the headers given and what this policy format does not check yet. */
  readonly notes: readonly string[];
}

export function explainRequest(policy: Policy, request: RequestLine, headers: readonly [string, string][] = []): Explanation {
  const decision = compilePolicy(policy).decide({ host: request.host, port: request.port, method: request.method, path: request.path });
  const host = normalizeHost(request.host);
  const normalized = normalizePath(request.path);
  const path = 'error' in normalized ? null : normalized.path;
  const rules =
    host === null
      ? []
      : policy.rules.filter((rule) => rule.protocol === 'http' && hostMatchesPattern(host, rule.host)).map((rule) => verdictFor(rule, request, path, policy.origin?.file));
  const notes: string[] = [];
  const queryStart = request.path.indexOf('?');
  const ambiguous = findAmbiguousEncoding(queryStart < 0 ? request.path : request.path.slice(0, queryStart));
  if (ambiguous !== null) {
    notes.push(`the gateway answers 400 before the policy is asked: request path ${ambiguous} (an upstream that decodes it could read another path)`);
  }
  for (const [name, value] of headers) {
    if (name.toLowerCase() === 'host' && normalizeHost(value.replace(/:\d+$/, '')) !== host) {
      notes.push(`Host header ${JSON.stringify(value)} differs from the URL host; the gateway answers 421 before the policy is asked (domain fronting check)`);
    }
  }
  const deciding = decision.action === 'allow' ? policy.rules.find((rule) => rule.id === decision.ruleId) : undefined;
  const credentialRules = deciding?.credentials ?? [];
  const credentialHeaders = new Set(credentialRules.flatMap((credential) => (credential.location.kind === 'header' ? [credential.location.name] : [])));
  const otherHeaders = headers.filter(([name]) => name.toLowerCase() !== 'host' && !credentialHeaders.has(name.toLowerCase()));
  if (otherHeaders.length > 0) {
    const why = credentialHeaders.size > 0 ? `only the credential header${credentialHeaders.size === 1 ? '' : 's'} ${[...credentialHeaders].join(', ')} of rule ${decision.ruleId} ${credentialHeaders.size === 1 ? 'is' : 'are'} read` : 'rules match on host, port, method and path, and no credential rule applies';
    notes.push(`headers given (${otherHeaders.map(([name]) => name).join(', ')}) do not affect the decision: ${why}`);
  }
  const credentialCheck = deciding && credentialRules.length > 0 ? checkCredentials(deciding, headers, request.path) : null;
  let denyBody = decision.action === 'deny' ? JSON.stringify({ error: 'denied', code: decision.code, rule: decision.ruleId, reason: decision.reason }) : null;
  if (credentialCheck?.outcome === 'refused') denyBody = JSON.stringify({ error: 'denied', code: credentialCheck.code, rule: decision.ruleId, reason: credentialCheck.reason ?? '' });
  const defaultPort = DEFAULT_PORTS[request.scheme] === request.port;
  return {
    request: { method: request.method, url: `${request.scheme}://${bracketed(request.host)}${defaultPort ? '' : `:${request.port}`}${request.path}` },
    host: { written: request.host, normalized: host },
    port: request.port,
    path: { written: request.path, normalized: path, ...('error' in normalized ? { error: normalized.error } : {}) },
    rules,
    decision,
    denyBody,
    credentials: deciding ? credentialRules.map((credential) => describeCredentialRule(credential, deciding.id)) : [],
    credentialCheck,
    budget: deciding?.budget ? describeBudget(deciding.budget) : null,
    notes,
  };
}

/** The gateway's credentials step on the given headers, with a stand-in secret (explain never reads one). */
function checkCredentials(rule: Rule, headers: readonly [string, string][], path: string): NonNullable<Explanation['credentialCheck']> {
  const resolved: ResolvedCredential[] = (rule.credentials ?? []).map((credential) => {
    const action = credential.action;
    if (action.kind === 'require') return { rule: credential, kind: 'require', sha256: new Set(action.sha256) };
    if (action.kind === 'strip') return { rule: credential, kind: 'strip' };
    return { rule: credential, kind: 'inject', secret: `<secret from ${action.source.kind}>`, placeholder: placeholderFor(action.source, rule.id) };
  });
  const flat = headers.flatMap(([name, value]) => [name.toLowerCase(), value]);
  const queryStart = path.indexOf('?');
  const result = applyCredentials(rule.id, resolved, flat, queryStart < 0 ? '' : path.slice(queryStart));
  if (!result.ok) return { outcome: 'refused', reason: result.reason, code: result.code };
  return { outcome: result.outcome ?? 'none' };
}

function verdictFor(rule: Rule, request: RequestLine, path: string | null, rootFile: string | undefined): RuleVerdict {
  // A rule of the policy file itself is "line N"; one from a file or preset it extends says which.
  const extended = rule.source !== undefined && rootFile !== undefined && rule.source.file !== rootFile;
  const base = {
    id: rule.id,
    ...(rule.source ? { line: rule.source.line } : {}),
    ...(extended ? { from: describeOrigin(rule.source) } : {}),
    action: rule.action,
    host: rule.host,
  };
  const fail = (failedField: 'port' | 'method' | 'path', detail: string): RuleVerdict => ({ ...base, matched: false, failedField, detail });
  if (rule.port !== undefined && rule.port !== request.port) return fail('port', `port ${request.port} is not ${rule.port}`);
  if (rule.methods !== undefined && !rule.methods.includes(request.method)) return fail('method', `method ${request.method} is not one of ${rule.methods.join(', ')}`);
  if (rule.paths !== undefined) {
    if (path === null) return fail('path', 'the path could not be normalised');
    if (!rule.paths.some((glob) => pathMatchesGlob(path, glob))) return fail('path', `path ${path} matches none of ${rule.paths.join(', ')}`);
  }
  const what = [rule.port === undefined ? 'any port' : `port ${rule.port}`, rule.methods === undefined ? 'any method' : request.method, rule.paths === undefined ? 'any path' : `path ${path ?? ''}`];
  return { ...base, matched: true, failedField: null, detail: `matches (${what.join(', ')})` };
}

function bracketed(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The explanation as text a reviewer can paste into a ticket. */
export function renderExplanation(explanation: Explanation): string {
  const lines: string[] = [];
  const { host, path } = explanation;
  lines.push(`request: ${explanation.request.method} ${explanation.request.url}`);
  lines.push(`host:    ${host.normalized === null ? `${host.written} (not a valid host name or IP address)` : arrow(host.written, host.normalized)}`);
  lines.push(`port:    ${explanation.port}`);
  lines.push(`path:    ${path.normalized === null ? `${path.written} (invalid: ${path.error ?? ''})` : arrow(path.written, path.normalized)}`);
  if (explanation.rules.length === 0) {
    lines.push('rules naming this host: none');
  } else {
    lines.push('rules naming this host:');
    for (const rule of explanation.rules) {
      const where = rule.from !== undefined ? ` (${rule.from})` : rule.line === undefined ? '' : ` (line ${rule.line})`;
      lines.push(`  ${rule.matched ? 'match   ' : 'no match'} ${rule.action} ${rule.id}${where}, host ${rule.host}: ${rule.detail}`);
    }
  }
  const decision = explanation.decision;
  lines.push(`decision: ${decision.action.toUpperCase()} by ${decision.ruleId}: ${decision.reason}`);
  if (decision.action === 'deny') {
    const matchingAllows = explanation.rules.filter((rule) => rule.matched && rule.action === 'allow');
    if (decision.ruleId !== 'default-deny' && matchingAllows.length > 0) {
      lines.push(`  (a matching deny wins over the matching allow ${matchingAllows.map((rule) => rule.id).join(', ')})`);
    }
    lines.push(`response: 403 ${explanation.denyBody ?? ''}`);
  }
  for (const credential of explanation.credentials) lines.push(`credentials: ${credential}`);
  const check = explanation.credentialCheck;
  if (check !== null) {
    if (check.outcome === 'refused') {
      lines.push(`credentials step: REFUSED: ${check.reason ?? ''}`);
      lines.push(`response: 403 ${explanation.denyBody ?? ''}`);
    } else {
      lines.push(`credentials step: ${check.outcome === 'none' ? 'nothing to do' : check.outcome} with the headers given`);
    }
  }
  if (explanation.budget !== null) lines.push(`budget: ${explanation.budget} of requests (line, headers and body); a request that would cross it gets 429`);
  for (const note of explanation.notes) lines.push(`note: ${note}`);
  return `${lines.join('\n')}\n`;
}

function arrow(written: string, normalized: string): string {
  return written === normalized ? written : `${written} → ${normalized}`;
}
