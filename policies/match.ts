// The policy decision: pure (no files, sockets or time). compilePolicy() does the work once —
// hosts indexed, globs compiled — so decide() is a few map lookups per request.
import { BoundedMap } from '../bounded-map.js';
import { ErrorCodes, SrtGwError } from '../errors.js';
import type { ReasonCode } from '../reason-codes.js';
import {
  isIpLiteral,
  matchHostPattern,
  normalizeHost,
  parseHostPattern,
  parseIpAddress,
  type HostPattern,
  type IpAddress,
} from './host.js';
import { compilePathGlob, normalizePath, type PathGlob } from './path.js';
import { DEFAULT_DENY_RULE_ID, type Decision, type Policy, type RequestFacts, type Rule } from './types.js';

export interface CompiledPolicy {
  readonly policy: Policy;
  /** The decision for one HTTP request: a matching deny wins, else the first matching allow, else default deny. */
  decide(facts: RequestFacts): Decision;
  /**
   * Whether any http allow rule could match this host (and port, when given), with no deny rule
   * that covers the whole host. For CONNECT pre-checks and DNS answers.
   */
  couldAllowHost(host: string, port?: number): boolean;
  /** The decision for an opaque TCP stream: protocol tcp rules only. */
  tcpRuleFor(host: string, port: number): Decision;
  /**
   * Whether a name may get an address from the gateway's DNS: some http rule could allow it, or
   * some tcp rule allows it on any port (ssh to a git host has no HTTP rule at all).
   */
  couldResolveHost(host: string): boolean;
}

interface CompiledRule {
  readonly rule: Rule;
  /** Position in the policy: candidates are kept in this order so "first allow" holds. */
  readonly index: number;
  readonly host: HostPattern;
  readonly port: number | undefined;
  readonly methods: ReadonlySet<string> | null;
  readonly paths: readonly PathGlob[] | null;
  readonly allows: boolean;
  /** A rule without methods or paths: it decides for every request to its host and port. */
  readonly coversWholeHost: boolean;
}

/** The rules whose host pattern matches one host, split by protocol, in policy order. */
interface HostCandidates {
  /** The normalised host, or null when the host is not a valid name or IP literal. */
  readonly host: string | null;
  readonly http: readonly CompiledRule[];
  readonly tcp: readonly CompiledRule[];
  readonly httpHasDeny: boolean;
}

/** Hosts whose candidate rules are remembered; a client cycling names only costs a rebuild. */
const CANDIDATE_CACHE_SIZE = 4096;
const MAX_NAMED_RULES = 3;
const MAX_SHOWN_PATH = 120;

export function compilePolicy(policy: Policy): CompiledPolicy {
  const byName = new Map<string, CompiledRule[]>();
  const bySuffix = new Map<string, CompiledRule[]>();
  const anyName: CompiledRule[] = [];
  const byAddress: CompiledRule[] = [];
  policy.rules.forEach((rule, index) => {
    const compiled = compileRule(rule, index);
    switch (compiled.host.kind) {
      case 'name':
        appendTo(byName, compiled.host.name, compiled);
        break;
      case 'subdomains':
        appendTo(bySuffix, compiled.host.suffix, compiled);
        break;
      case 'any-name':
        anyName.push(compiled);
        break;
      default:
        byAddress.push(compiled);
    }
  });

  const cache = new BoundedMap<string, HostCandidates>({ capacity: CANDIDATE_CACHE_SIZE });

  function candidatesFor(rawHost: string): HostCandidates {
    const cached = cache.get(rawHost);
    if (cached !== undefined) return cached;
    const host = normalizeHost(rawHost);
    let matching: CompiledRule[] = [];
    if (host !== null && isIpLiteral(host)) {
      const address: IpAddress | null = parseIpAddress(host);
      if (address !== null) matching = byAddress.filter((rule) => matchHostPattern(rule.host, host, address));
    } else if (host !== null) {
      matching = [...(byName.get(host) ?? []), ...anyName];
      // "*.example.test" is indexed as ".example.test": look up every suffix that starts at a
      // dot, which never includes the host itself, so a wildcard never matches its apex.
      for (let dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
        const rules = bySuffix.get(host.slice(dot));
        if (rules !== undefined) matching.push(...rules);
      }
      matching.sort((a, b) => a.index - b.index);
    }
    const http = matching.filter((rule) => rule.rule.protocol === 'http');
    const candidates: HostCandidates = {
      host,
      http,
      tcp: matching.filter((rule) => rule.rule.protocol === 'tcp'),
      httpHasDeny: http.some((rule) => !rule.allows),
    };
    cache.set(rawHost, candidates);
    return candidates;
  }

  function decide(facts: RequestFacts): Decision {
    const candidates = candidatesFor(facts.host);
    if (candidates.host === null) return defaultDeny(`host ${shown(facts.host)} is not a valid host name or IP address`, 'invalid-host');
    if (candidates.http.length === 0) return defaultDeny(`no rule allows host ${candidates.host}`, 'host-not-allowed');
    // SECURITY: rules see the normalised path, so "/v1/%2e%2e/admin" is judged as "/admin" and
    // cannot pass a "/v1/**" rule — match.test.ts "/v1/%2e%2e/admin cannot slip past".
    const normalized = normalizePath(facts.path);
    if ('error' in normalized) return defaultDeny(`request path ${normalized.error}`, 'invalid-path');
    const path = normalized.path;

    let firstAllow: CompiledRule | null = null;
    for (const rule of candidates.http) {
      if (!requestMatches(rule, facts.port, facts.method, path)) continue;
      if (!rule.allows) return deniedBy(rule);
      if (firstAllow === null) {
        firstAllow = rule;
        // A later deny could still win; without any deny for this host the first allow decides.
        if (!candidates.httpHasDeny) break;
      }
    }
    if (firstAllow !== null) return allowedBy(firstAllow);
    return explainNoMatch(candidates.http, candidates.host, facts.port, facts.method, path);
  }

  function couldAllowHost(host: string, port?: number): boolean {
    const candidates = candidatesFor(host);
    let allowed = false;
    for (const rule of candidates.http) {
      if (rule.allows) {
        if (port === undefined || rule.port === undefined || rule.port === port) allowed = true;
      } else if (rule.coversWholeHost && (rule.port === undefined || rule.port === port)) {
        return false;
      }
    }
    return allowed;
  }

  function tcpRuleFor(host: string, port: number): Decision {
    const candidates = candidatesFor(host);
    if (candidates.host === null) return defaultDeny(`host ${shown(host)} is not a valid host name or IP address`, 'invalid-host');
    let firstAllow: CompiledRule | null = null;
    for (const rule of candidates.tcp) {
      if (rule.port !== port) continue;
      if (!rule.allows) return deniedBy(rule);
      firstAllow ??= rule;
    }
    if (firstAllow !== null) return allowedBy(firstAllow);
    const allowing = candidates.tcp.filter((rule) => rule.allows);
    if (allowing.length === 0) return defaultDeny(`no tcp rule allows host ${candidates.host}`, 'host-not-allowed');
    return defaultDeny(`${describeRules(allowing)} tcp to ${candidates.host} but not port ${port}`, 'port-not-allowed');
  }

  function couldResolveHost(host: string): boolean {
    return couldAllowHost(host) || candidatesFor(host).tcp.some((rule) => rule.allows);
  }

  return { policy, decide, couldAllowHost, tcpRuleFor, couldResolveHost };
}

function compileRule(rule: Rule, index: number): CompiledRule {
  const host = parseHostPattern(rule.host);
  if ('error' in host) throw new SrtGwError(ErrorCodes.POLICY_INVALID, `rule ${rule.id}: host ${JSON.stringify(rule.host)} ${host.error}`);
  const paths =
    rule.paths?.map((glob) => {
      const compiled = compilePathGlob(glob);
      if ('error' in compiled) throw new SrtGwError(ErrorCodes.POLICY_INVALID, `rule ${rule.id}: path ${JSON.stringify(glob)} ${compiled.error}`);
      return compiled;
    }) ?? null;
  const methods = rule.methods === undefined ? null : new Set(rule.methods.map((method) => method.toUpperCase()));
  return {
    rule,
    index,
    host: host.pattern,
    port: rule.port,
    methods,
    paths,
    allows: rule.action === 'allow',
    coversWholeHost: methods === null && paths === null,
  };
}

function requestMatches(rule: CompiledRule, port: number, method: string, path: string): boolean {
  if (rule.port !== undefined && rule.port !== port) return false;
  if (rule.methods !== null && !rule.methods.has(method)) return false;
  if (rule.paths === null) return true;
  for (const glob of rule.paths) if (glob.matches(path)) return true;
  return false;
}

/**
 * Why no rule matched, naming the allow rules written for this host (not "*" rules, which name
 * no host) so the user knows which one to edit; its code says which part of the request no rule
 * allows: the host, the port, the method (no rule for this host and port has it) or the path.
 */
function explainNoMatch(candidates: readonly CompiledRule[], host: string, port: number, method: string, path: string): Decision {
  const request = `${method} ${shownPath(path)}`;
  const allowing = candidates.filter((rule) => rule.allows);
  const forThisHost = allowing.filter((rule) => rule.host.kind !== 'any-name');
  if (forThisHost.length === 0) return defaultDeny(allowing.length === 0 ? `no rule allows host ${host}` : `no rule allows ${request} on host ${host}`, 'host-not-allowed');
  const onPort = forThisHost.filter((rule) => rule.port === undefined || rule.port === port);
  if (onPort.length === 0) return defaultDeny(`${describeRules(forThisHost)} ${host} but not port ${port}`, 'port-not-allowed');
  const methodAllowed = onPort.some((rule) => rule.methods === null || rule.methods.has(method));
  return defaultDeny(`${describeRules(onPort)} ${host} but not ${request}`, methodAllowed ? 'path-not-allowed' : 'method-not-allowed');
}

/** "rule a allows", "rules a, b allow", "rules a, b, c and 2 more allow". */
function describeRules(rules: readonly CompiledRule[]): string {
  const ids = rules.slice(0, MAX_NAMED_RULES).map((rule) => rule.rule.id);
  if (rules.length === 1) return `rule ${ids[0] ?? ''} allows`;
  const more = rules.length > MAX_NAMED_RULES ? ` and ${rules.length - MAX_NAMED_RULES} more` : '';
  return `rules ${ids.join(', ')}${more} allow`;
}

function defaultDeny(reason: string, code: ReasonCode): Decision {
  return { action: 'deny', ruleId: DEFAULT_DENY_RULE_ID, reason, code };
}

function deniedBy(rule: CompiledRule): Decision {
  return { action: 'deny', ruleId: rule.rule.id, reason: `denied by rule ${rule.rule.id}`, code: 'denied-by-rule' };
}

function allowedBy(rule: CompiledRule): Decision {
  return { action: 'allow', ruleId: rule.rule.id, reason: `allowed by rule ${rule.rule.id}`, code: 'allowed-by-rule' };
}

function shown(host: string): string {
  return JSON.stringify(host.length > MAX_SHOWN_PATH ? `${host.slice(0, MAX_SHOWN_PATH)}...` : host);
}

function shownPath(path: string): string {
  return path.length > MAX_SHOWN_PATH ? `${path.slice(0, MAX_SHOWN_PATH)}...` : path;
}

function appendTo(index: Map<string, CompiledRule[]>, key: string, rule: CompiledRule): void {
  const list = index.get(key);
  if (list === undefined) index.set(key, [rule]);
  else list.push(rule);
}
