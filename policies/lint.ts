// Review checks for a policy that already validates: rules that can never decide, allow/deny
// overlaps, wildcards that reach other people's hosts, secrets written into the file. Pure: a
// Policy in, findings out; `srt-gw policy check` prints them.
import { describeLocation, describeSecretSource } from './credentials.js';
import { parseHostPattern, type HostPattern } from './host.js';
import { pathMatchesGlob } from './path.js';
import { formatLocation } from './source-location.js';
import type { Policy, Rule, SourceLocation } from './types.js';

export type FindingSeverity = 'error' | 'warning';

export interface Finding {
  readonly severity: FindingSeverity;
  /** Stable id of the check, e.g. "shadowed-rule". */
  readonly code: string;
  /** The rule the finding is about; absent for a finding about an `extends:` entry. */
  readonly ruleId?: string;
  readonly source?: SourceLocation;
  readonly message: string;
}

/**
 * What `policy check` may know about the machine the gateway will run on. Lint stays pure: the
 * CLI passes process.env and a file test; without them the checks that need them are skipped.
 */
export interface LintEnvironment {
  readonly env?: Readonly<Record<string, string | undefined>>;
  fileExists?(path: string): boolean;
}

interface LintCheck {
  readonly code: string;
  readonly severity: FindingSeverity;
  /** Messages about rules; the table adds code, severity and source. */
  run(rules: readonly Rule[], environment: LintEnvironment): Iterable<{ rule: Rule; message: string }>;
}

// One entry per check. An inject with no secret source, or a require entry that is not a SHA-256,
// never gets this far: the loader refuses them with file:line:column.
const CHECKS: readonly LintCheck[] = [
  { code: 'shadowed-rule', severity: 'warning', run: shadowedRules },
  { code: 'unreachable-rule', severity: 'warning', run: rulesCoveredByDeny },
  { code: 'overlapping-allow-deny', severity: 'warning', run: overlappingAllowDeny },
  { code: 'broad-wildcard', severity: 'warning', run: broadWildcards },
  { code: 'plaintext-secret', severity: 'error', run: plaintextSecrets },
  { code: 'uncontrolled-credentials', severity: 'warning', run: uncontrolledCredentials },
  { code: 'empty-credential-allowed', severity: 'warning', run: emptyCredentialAllowed },
  { code: 'inject-source-unavailable', severity: 'warning', run: unavailableInjectSources },
  { code: 'widens-preset', severity: 'warning', run: rulesWideningPresets },
];

const PRESET_FILE_PREFIX = 'preset:';

export function lintPolicy(policy: Policy, environment: LintEnvironment = {}): Finding[] {
  const findings: Finding[] = [];
  for (const check of CHECKS) {
    for (const { rule, message } of check.run(policy.rules, environment)) {
      findings.push({ severity: check.severity, code: check.code, ruleId: rule.id, ...(rule.source ? { source: rule.source } : {}), message });
    }
  }
  const order = new Map(policy.rules.map((rule, index) => [rule.id, index]));
  const position = (finding: Finding) => (finding.ruleId === undefined ? -1 : (order.get(finding.ruleId) ?? 0));
  findings.sort((a, b) => position(a) - position(b) || checkOrder(a) - checkOrder(b));
  return [...repeatedExtends(policy), ...findings];
}

/** The same file, or the same preset with the same parameters, extended twice: the repeat adds nothing. */
function repeatedExtends(policy: Policy): Finding[] {
  return (policy.origin?.extended ?? [])
    .filter((source) => source.repeatOf !== undefined)
    .map((source) => ({
      severity: 'warning',
      code: 'repeated-extends',
      source: source.extendedAt,
      message: `${source.name} is extended again here, but it is already extended at ${formatLocation(source.repeatOf!)}; a repeat adds nothing, so remove one`,
    }));
}

function checkOrder(finding: Finding): number {
  return CHECKS.findIndex((check) => check.code === finding.code);
}

/** "policy.yaml:12:5: warning: rule api-read is shadowed by rule api-all (line 4) [shadowed-rule]" */
export function formatFinding(finding: Finding): string {
  const where = finding.source ? formatLocation(finding.source) : '<policy>';
  const extended = finding.source?.extendedAt === undefined ? '' : ` (extended at ${formatLocation(finding.source.extendedAt)})`;
  return `${where}: ${finding.severity}: ${finding.message} [${finding.code}]${extended}`;
}

function* shadowedRules(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  for (let j = 0; j < rules.length; j++) {
    const later = rules[j]!;
    for (let i = 0; i < j; i++) {
      const earlier = rules[i]!;
      if (earlier.action !== later.action || !ruleCovers(earlier, later)) continue;
      const what = later.action === 'allow' ? 'never decides' : 'is redundant';
      yield { rule: later, message: `rule ${later.id} is shadowed by rule ${earlier.id}${lineOf(earlier, later)}: it matches every request ${later.id} matches, so ${later.id} ${what}` };
      break;
    }
  }
}

function* rulesCoveredByDeny(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  for (const allow of rules) {
    if (allow.action !== 'allow') continue;
    const deny = rules.find((rule) => rule.action === 'deny' && ruleCovers(rule, allow));
    if (deny) yield { rule: allow, message: `rule ${allow.id} can never allow anything: rule ${deny.id}${lineOf(deny, allow)} denies every request it matches` };
  }
}

function* overlappingAllowDeny(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  for (const allow of rules) {
    if (allow.action !== 'allow') continue;
    for (const deny of rules) {
      if (deny.action !== 'deny' || deny.protocol !== allow.protocol || ruleCovers(deny, allow)) continue;
      if (!hostsOverlap(allow.host, deny.host) || !portsOverlap(allow, deny) || !methodsOverlap(allow, deny) || !pathsOverlap(allow, deny)) continue;
      yield {
        rule: allow,
        message: `allow rule ${allow.id} and deny rule ${deny.id}${lineOf(deny, allow)} both match some requests to ${overlapHost(allow.host, deny.host)}; the deny wins there, check that is intended`,
      };
    }
  }
}

/** Two-label suffixes where every subdomain belongs to someone else (a small slice of the Public Suffix List). */
const SHARED_SUFFIXES = new Set([
  'github.io', 'githubusercontent.com', 'herokuapp.com', 'vercel.app', 'netlify.app', 'pages.dev', 'workers.dev',
  'cloudfront.net', 'amazonaws.com', 'appspot.com', 'azurewebsites.net', 'blogspot.com', 'firebaseapp.com', 'web.app', 'ngrok.io',
]);
/** Second-level labels that ccTLDs register under ("co.uk", "com.au", "ac.jp"). */
const CCTLD_SECOND_LEVELS = new Set(['co', 'com', 'net', 'org', 'gov', 'edu', 'ac', 'or', 'ne', 'go', 'gob', 'nic', 'mil', 'ltd', 'plc', 'nom', 'gen']);

function* broadWildcards(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  for (const rule of rules) {
    const parsed = parseHostPattern(rule.host);
    if ('error' in parsed) continue;
    const pattern = parsed.pattern;
    if (pattern.kind === 'any-name') {
      yield { rule, message: `rule ${rule.id} matches every host name ("*"); name the hosts it is meant for` };
    } else if (pattern.kind === 'subdomains' && isPublicSuffix(pattern.suffix.slice(1))) {
      yield { rule, message: `rule ${rule.id} host "${rule.host}" matches every site under the public suffix ${pattern.suffix.slice(1)}; name the site, such as "*.example${pattern.suffix}"` };
    } else if (pattern.kind === 'range' && pattern.range.prefix < (pattern.range.family === 4 ? 8 : 16)) {
      yield { rule, message: `rule ${rule.id} host ${rule.host} covers a large part of the ${pattern.range.family === 4 ? 'IPv4' : 'IPv6'} internet; name a smaller block` };
    }
  }
}

function isPublicSuffix(suffix: string): boolean {
  const labels = suffix.split('.');
  if (labels.length === 1) return true;
  if (labels.length !== 2) return false;
  return SHARED_SUFFIXES.has(suffix) || (labels[1]!.length === 2 && CCTLD_SECOND_LEVELS.has(labels[0]!));
}

const SECRET_PATTERNS: readonly { name: string; pattern: RegExp }[] = [
  { name: 'an Anthropic/OpenAI-style API key', pattern: /\bsk-[A-Za-z0-9_-]{16,}/ },
  { name: 'a GitHub token', pattern: /\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})/ },
  { name: 'an AWS access key id', pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/ },
  { name: 'a Slack token', pattern: /\bxox[abprs]-[A-Za-z0-9-]{10,}/ },
  { name: 'a Google API key', pattern: /\bAIza[0-9A-Za-z_-]{35}/ },
  { name: 'a JSON Web Token', pattern: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\./ },
];
const MIN_RANDOM_TOKEN_LENGTH = 32;
/** Bits per character above which a long token reads as random (hex keys score 4, base64 ~5.5). */
const MIN_RANDOM_TOKEN_ENTROPY = 3.5;

function* plaintextSecrets(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  for (const rule of rules) {
    const fields: [string, string][] = [
      ['id', rule.id],
      ['host', rule.host],
      ...(rule.methods ?? []).map((method, i): [string, string] => [`methods[${i}]`, method]),
      ...(rule.paths ?? []).map((path, i): [string, string] => [`paths[${i}]`, path]),
      ...(rule.credentials ?? []).flatMap((credential, i) => credentialFields(credential, rule.credentials!.length > 1 ? `credentials[${i}]` : 'credentials')),
    ];
    for (const [field, value] of fields) {
      const kind = secretKind(value);
      if (kind !== null) {
        yield { rule, message: `rule ${rule.id} ${field} holds what looks like ${kind}; remove it from the policy and rotate it (credentials must never be written in a policy)` };
        break;
      }
    }
  }
}

/** The written strings of a credential rule where someone might paste a secret by mistake. */
function credentialFields(credential: NonNullable<Rule['credentials']>[number], prefix: string): [string, string][] {
  const fields: [string, string][] = [];
  const location = credential.location;
  fields.push([location.kind === 'query' ? `${prefix}.query` : `${prefix}.header`, location.name]);
  if (location.kind === 'header' && location.username !== undefined) fields.push([`${prefix}.username`, location.username]);
  const action = credential.action;
  if (action.kind === 'inject') {
    const source = action.source;
    if (source.kind === 'env') fields.push([`${prefix}.inject.env`, source.name]);
    else if (source.kind === 'file') fields.push([`${prefix}.inject.file`, source.written]);
    else source.argv.forEach((arg, i) => fields.push([`${prefix}.inject.command[${i}]`, arg]));
  }
  return fields;
}

/**
 * An allow rule with no credential rules on a host where another allow rule controls a credential:
 * requests the first rule decides go out with whatever key the client sends (the approved-domain
 * leak the other rule closes).
 */
function* uncontrolledCredentials(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  const controlled = rules.filter((rule) => rule.action === 'allow' && rule.protocol === 'http' && (rule.credentials?.length ?? 0) > 0);
  for (const rule of rules) {
    if (rule.action !== 'allow' || rule.protocol !== 'http' || rule.credentials !== undefined) continue;
    const other = controlled.find((candidate) => hostsOverlap(candidate.host, rule.host) && portsOverlap(candidate, rule));
    if (other === undefined) continue;
    const what = other.credentials!.map((credential) => describeLocation(credential.location)).join(', ');
    yield {
      rule,
      message: `rule ${rule.id} allows requests to ${overlapHost(rule.host, other.host)} without credential rules, while rule ${other.id}${lineOf(other, rule)} controls ${what} there: requests ${rule.id} decides carry whatever credential the client sends; give it the same credentials or narrow it`,
    };
  }
}

const SHA256_OF_EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function* emptyCredentialAllowed(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  for (const rule of rules) {
    for (const credential of rule.credentials ?? []) {
      if (credential.action.kind === 'require' && credential.action.sha256.includes(SHA256_OF_EMPTY)) {
        yield { rule, message: `rule ${rule.id} require lists the SHA-256 of the empty string, which no request can send as ${describeLocation(credential.location)}; hash the value without a trailing newline (printf %s "$VALUE" | sha256sum)` };
      }
    }
  }
}

/** One finding per missing source, on the first rule that needs it (a preset can have several). */
function* unavailableInjectSources(rules: readonly Rule[], environment: LintEnvironment): Iterable<{ rule: Rule; message: string }> {
  const missing = new Map<string, { rule: Rule; location: string; source: string; problem: string; others: string[] }>();
  for (const rule of rules) {
    for (const credential of rule.credentials ?? []) {
      const action = credential.action;
      if (action.kind !== 'inject') continue;
      const source = action.source;
      let problem: string | null = null;
      if (source.kind === 'env' && environment.env !== undefined && (environment.env[source.name] ?? '').trim() === '') {
        problem = `environment variable ${source.name} is ${environment.env[source.name] === undefined ? 'not set' : 'empty'} here`;
      } else if (source.kind === 'file' && environment.fileExists !== undefined && !environment.fileExists(source.path)) {
        problem = `file ${source.path} does not exist`;
      }
      if (problem === null) continue;
      const key = describeSecretSource(source);
      const known = missing.get(key);
      if (known === undefined) missing.set(key, { rule, location: describeLocation(credential.location), source: key, problem, others: [] });
      else if (known.rule !== rule && !known.others.includes(rule.id)) known.others.push(rule.id);
    }
  }
  for (const { rule, location, source, problem, others } of missing.values()) {
    const also = others.length === 0 ? '' : ` (as do ${others.length === 1 ? 'rule' : 'rules'} ${listIds(others)})`;
    yield { rule, message: `rule ${rule.id} injects ${location} from ${source}${also}, but ${problem}; the gateway will refuse to start with this policy until it is` };
  }
}

function listIds(ids: readonly string[]): string {
  const shown = ids.slice(0, 3).join(', ');
  return ids.length > 3 ? `${shown} and ${ids.length - 3} more` : shown;
}

/**
 * An allow rule written outside a preset for a host the preset governs, which the preset's rules
 * do not cover: it lets through what the preset was chosen to refuse (a push, a write, another
 * key) on that host. Rules the preset does cover are reported as shadowed instead.
 */
function* rulesWideningPresets(rules: readonly Rule[]): Iterable<{ rule: Rule; message: string }> {
  const presetRules = rules.filter((rule) => rule.source?.file.startsWith(PRESET_FILE_PREFIX) === true);
  for (const rule of rules) {
    if (rule.action !== 'allow' || rule.protocol !== 'http' || rule.source?.file.startsWith(PRESET_FILE_PREFIX) !== false) continue;
    const governing = presetRules.filter((candidate) => candidate.protocol === 'http' && hostsOverlap(candidate.host, rule.host) && portsOverlap(candidate, rule));
    if (governing.length === 0 || governing.some((candidate) => candidate.action === 'allow' && ruleCovers(candidate, rule))) continue;
    const presets = [...new Set(governing.map((candidate) => candidate.source!.file))];
    yield {
      rule,
      message: `rule ${rule.id} allows requests to ${overlapHost(rule.host, governing[0]!.host)} that ${presets.join(' and ')} does not allow there (its rules: ${listIds(governing.map((candidate) => candidate.id))}); check that widening the preset is intended`,
    };
  }
}

/** What kind of secret a string looks like, or null. Exported for tests. */
export function secretKind(value: string): string | null {
  for (const { name, pattern } of SECRET_PATTERNS) if (pattern.test(value)) return name;
  for (const token of value.split(/[^A-Za-z0-9+/=_-]+|\//)) {
    // Commit and content hashes (sha1, sha256 in lower-case hex) are public identifiers, not keys.
    if (/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(token)) continue;
    if (token.length >= MIN_RANDOM_TOKEN_LENGTH && /[0-9]/.test(token) && /[A-Za-z]/.test(token) && entropy(token) >= MIN_RANDOM_TOKEN_ENTROPY) {
      return 'a random token (long, high-entropy string)';
    }
  }
  return null;
}

function entropy(text: string): number {
  const counts = new Map<string, number>();
  for (const char of text) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / text.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

/** Whether every request `inner` matches is also matched by `outer`. Conservative: false when unsure. */
export function ruleCovers(outer: Rule, inner: Rule): boolean {
  if (outer.protocol !== inner.protocol) return false;
  if (outer.port !== undefined && outer.port !== inner.port) return false;
  if (!hostCovers(outer.host, inner.host)) return false;
  if (outer.methods !== undefined && (inner.methods === undefined || !inner.methods.every((method) => outer.methods!.includes(method)))) return false;
  if (outer.paths === undefined) return true;
  if (inner.paths === undefined) return false;
  return inner.paths.every((path) => outer.paths!.some((glob) => globCovers(glob, path)));
}

function hostCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  const o = patternOf(outer);
  const i = patternOf(inner);
  if (o === null || i === null) return false;
  if (o.kind === 'any-name') return i.kind === 'name' || i.kind === 'subdomains';
  if (o.kind !== 'subdomains') return false;
  if (i.kind === 'name') return i.name.endsWith(o.suffix);
  return i.kind === 'subdomains' && (i.suffix === o.suffix || i.suffix.endsWith(o.suffix));
}

function hostsOverlap(a: string, b: string): boolean {
  return hostCovers(a, b) || hostCovers(b, a);
}

/** The more specific of two overlapping host patterns: what the overlap is about. */
function overlapHost(a: string, b: string): string {
  return hostCovers(a, b) ? b : a;
}

/**
 * Glob `outer` matches every path glob `inner` matches. "/v1/**" covers "/v1", "/v1/x/*"; "/*" covers
 * "/left-pad"; "/*\/-/*" covers "/a/-/*". Conservative: false when unsure.
 */
function globCovers(outer: string, inner: string): boolean {
  if (outer === inner || outer === '/**') return true;
  if (!inner.includes('*')) return pathMatchesGlob(inner, outer);
  if (outer.endsWith('/**') && !outer.slice(0, -'/**'.length).includes('*')) {
    const prefix = outer.slice(0, -'/**'.length);
    return inner === prefix || inner.startsWith(`${prefix}/`);
  }
  // Segment by segment, for globs without "**": an outer "*" covers any inner segment.
  if (outer.includes('**') || inner.includes('**')) return false;
  const outerSegments = outer.split('/');
  const innerSegments = inner.split('/');
  return outerSegments.length === innerSegments.length && outerSegments.every((segment, i) => segment === innerSegments[i] || segment === '*');
}

function portsOverlap(a: Rule, b: Rule): boolean {
  return a.port === undefined || b.port === undefined || a.port === b.port;
}

function methodsOverlap(a: Rule, b: Rule): boolean {
  return a.methods === undefined || b.methods === undefined || a.methods.some((method) => b.methods!.includes(method));
}

function pathsOverlap(a: Rule, b: Rule): boolean {
  if (a.paths === undefined || b.paths === undefined) return true;
  return a.paths.some((p) => b.paths!.some((q) => globCovers(p, q) || globCovers(q, p)));
}

function patternOf(host: string): HostPattern | null {
  const parsed = parseHostPattern(host);
  return 'error' in parsed ? null : parsed.pattern;
}

/** Where `rule` is, as seen from a finding about `subject`: "(line 12)" in the same file, else "(preset:github:38:5)". */
function lineOf(rule: Rule, subject: Rule): string {
  if (rule.source === undefined) return '';
  return rule.source.file === subject.source?.file ? ` (line ${rule.source.line})` : ` (${formatLocation(rule.source)})`;
}
