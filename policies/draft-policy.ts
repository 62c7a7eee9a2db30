// A draft policy from the requests one run made (`srt-gw run --write-policy FILE`): one allow
// rule per host (and port, when not 443 or 80) with the methods and path prefixes seen, and
// counts as YAML comments. Pure: observed requests in, YAML text out; a person reviews it.
import { parseHostPattern } from './host.js';
import { normalizePath, normalizePathGlob } from './path.js';
import { HTTP_METHOD_PATTERN } from './schema.js';

/** What the gateway did with a request: allowed it, refused it, or let it through in --monitor mode. */
export type ObservedOutcome = 'allowed' | 'denied' | 'would-be-denied';

export interface ObservedRequest {
  /** Normalised host name or IP literal, as the audit log has it. */
  readonly host: string;
  readonly port: number;
  readonly method: string;
  /** The request path (a query string is ignored). */
  readonly path: string;
  readonly outcome: ObservedOutcome;
  /** How many requests this entry stands for. Default 1. */
  readonly count?: number;
}

export interface DraftPolicyOptions {
  /** What the traffic came from, for the header comment ("srt-gw run -- npm install"). */
  readonly source?: string;
  /** Names looked up but never requested: listed as comments, never made rules. */
  readonly lookedUpOnly?: readonly string[];
}

/** A rule with more distinct prefixes than this has its paths cut to first segments, then left out. */
export const MAX_PATHS_PER_RULE = 20;
const DEFAULT_PORTS: ReadonlySet<number> = new Set([443, 80]);
const MAX_LOOKED_UP_LISTED = 50;
/** Characters a path segment may have to be written into a glob as it is ("*" would be a wildcard). */
const PLAIN_SEGMENT = /^[A-Za-z0-9._~!$&'()+,;=:@%-]+$/;

/**
 * The path glob a request path is drafted as: its first two segments (or one, or the root) and
 * everything below them, so that /v1/messages/123 and /v1/messages/456 make one entry,
 * "/v1/messages/**". A segment that cannot be written into a glob as it is ends the prefix there;
 * "/**" means any path.
 */
export function draftPathGlob(path: string, segments = 2): string {
  const normalized = normalizePath(pathOf(path));
  if ('error' in normalized) return '/**';
  if (normalized.path === '/') return '/';
  const kept: string[] = [];
  for (const segment of normalized.path.split('/').slice(1, 1 + segments)) {
    if (!PLAIN_SEGMENT.test(segment) || segment === '.' || segment === '..') break;
    kept.push(segment);
  }
  const glob = `/${kept.map((s) => `${s}/`).join('')}**`;
  return 'error' in normalizePathGlob(glob) ? '/**' : glob;
}

/** The YAML text of the draft: `version: 1` and one allow rule per host (and non-default port). */
export function buildDraftPolicy(requests: readonly ObservedRequest[], options: DraftPolicyOptions = {}): string {
  const groups = new Map<string, RuleDraft>();
  let skipped = 0;
  const hostPorts = new Map<string, Set<number>>();
  const usable = requests.filter((request) => {
    const ok = isRuleHost(request.host) && HTTP_METHOD_PATTERN.test(request.method) && Number.isInteger(request.port) && request.port > 0 && request.port < 65536;
    if (!ok) skipped += request.count ?? 1;
    return ok;
  });
  for (const request of usable) {
    const ports = hostPorts.get(request.host) ?? new Set<number>();
    ports.add(request.port);
    hostPorts.set(request.host, ports);
  }
  for (const request of usable) {
    // A host seen only on 443/80 gets one rule for any port; one seen elsewhere too gets a rule per port.
    const onlyDefaultPorts = [...hostPorts.get(request.host)!].every((port) => DEFAULT_PORTS.has(port));
    const port = onlyDefaultPorts ? null : request.port;
    const key = `${request.host}\u0000${port ?? ''}`;
    let group = groups.get(key);
    if (!group) {
      group = { host: request.host, port, methods: new Map(), paths: new Map(), outcomes: new Map(), total: 0 };
      groups.set(key, group);
    }
    const count = request.count ?? 1;
    group.total += count;
    const method = request.method.toUpperCase();
    group.methods.set(method, (group.methods.get(method) ?? 0) + count);
    group.outcomes.set(request.outcome, (group.outcomes.get(request.outcome) ?? 0) + count);
    group.paths.set(request.path, (group.paths.get(request.path) ?? 0) + count);
  }

  const drafts = [...groups.values()].sort((a, b) => compareText(a.host, b.host) || (a.port ?? 0) - (b.port ?? 0));
  const total = drafts.reduce((sum, draft) => sum + draft.total, 0);
  const lines = [
    `# Draft policy: what ${options.source ?? 'one srt-gw run'} did, ${plural(total, 'request')} to ${plural(new Set(drafts.map((d) => d.host)).size, 'host')}.`,
    '# Every rule allows what was seen, nothing more and nothing judged: review the hosts, methods',
    '# and paths before you use it, and add credential rules where a secret should be injected.',
  ];
  if (skipped > 0) lines.push(`# ${plural(skipped, 'request')} with no usable host or method left out.`);
  lines.push('version: 1');
  if (drafts.length === 0) lines.push('rules: []');
  else lines.push('rules:');
  const ids = new Set<string>();
  for (const draft of drafts) lines.push(...ruleLines(draft, uniqueId(draft, ids)));
  const lookedUp = (options.lookedUpOnly ?? []).filter((name) => !hostPorts.has(name));
  if (lookedUp.length > 0) {
    lines.push('# Looked up but never requested (no rule drafted):');
    for (const name of [...lookedUp].sort(compareText).slice(0, MAX_LOOKED_UP_LISTED)) lines.push(`#   ${commentText(name)}`);
    if (lookedUp.length > MAX_LOOKED_UP_LISTED) lines.push(`#   ... and ${lookedUp.length - MAX_LOOKED_UP_LISTED} more`);
  }
  return `${lines.join('\n')}\n`;
}

interface RuleDraft {
  host: string;
  port: number | null;
  methods: Map<string, number>;
  /** Request path → count. */
  paths: Map<string, number>;
  outcomes: Map<ObservedOutcome, number>;
  total: number;
}

const OUTCOME_WORDS: Record<ObservedOutcome, string> = { allowed: 'allowed', denied: 'denied', 'would-be-denied': 'would have been denied (--monitor)' };

function ruleLines(draft: RuleDraft, id: string): string[] {
  const outcomes = (['allowed', 'would-be-denied', 'denied'] as const)
    .filter((outcome) => draft.outcomes.has(outcome))
    .map((outcome) => `${draft.outcomes.get(outcome)} ${OUTCOME_WORDS[outcome]}`);
  const lines = [`  # ${plural(draft.total, 'request')}: ${outcomes.join(', ')}`, `  - id: ${yamlScalar(id)}`, `    host: ${yamlScalar(draft.host)}`];
  if (draft.port !== null) lines.push(`    port: ${draft.port}`);
  const methods = [...draft.methods.keys()].sort(compareText);
  lines.push(`    methods: [${methods.map(yamlScalar).join(', ')}] # ${methods.map((m) => `${m} ${draft.methods.get(m)}`).join(', ')}`);
  const globs = pathGlobs(draft.paths);
  if (globs === null) {
    lines.push(`    # paths left out (any path): more than ${MAX_PATHS_PER_RULE} distinct prefixes were seen`);
  } else if (!(globs.size === 1 && globs.has('/**'))) {
    lines.push('    paths:');
    for (const [glob, count] of [...globs].sort(([a], [b]) => compareText(a, b))) lines.push(`      - ${yamlScalar(glob)} # ${count}`);
  }
  return lines;
}

/** Glob → count, with globs another glob of the rule covers folded into it; null when there are too many. */
function pathGlobs(paths: ReadonlyMap<string, number>): Map<string, number> | null {
  for (const segments of [2, 1]) {
    const globs = new Map<string, number>();
    for (const [path, count] of paths) {
      const glob = draftPathGlob(path, segments);
      globs.set(glob, (globs.get(glob) ?? 0) + count);
    }
    // Each glob goes into the widest glob that covers it (covering is transitive, so that one is
    // covered by none): "/v1/**" takes "/v1/messages/**".
    const folded = new Map<string, number>();
    for (const [glob, count] of globs) {
      const widest = [...globs.keys()].filter((other) => covers(other, glob)).sort((a, b) => a.length - b.length)[0] ?? glob;
      folded.set(widest, (folded.get(widest) ?? 0) + count);
    }
    if (folded.size <= MAX_PATHS_PER_RULE) return folded;
  }
  return null;
}

/** Whether `outer` is another glob that matches every path `inner` matches (both from draftPathGlob). */
function covers(outer: string, inner: string): boolean {
  if (outer === inner || !outer.endsWith('/**')) return false;
  const prefix = outer.slice(0, -2); // "/a/" of "/a/**", "/" of "/**"
  return inner.startsWith(prefix) || inner === outer.slice(0, -3);
}

/** A request target as the audit log has it: a path, or an absolute-form URL (plain HTTP through the proxy). */
function pathOf(target: string): string {
  const withoutQuery = target.split(/[?#]/, 1)[0] ?? '';
  if (withoutQuery.startsWith('/')) return withoutQuery;
  const match = /^[a-z][a-z0-9+.-]*:\/\/[^/]*(\/.*)?$/i.exec(withoutQuery);
  return match ? (match[1] ?? '/') : withoutQuery;
}

/** A host a rule can name exactly: a host name or an IP address (never a pattern). */
function isRuleHost(host: string): boolean {
  // "-" is what the audit log says when a request named no host.
  if (!/[A-Za-z0-9]/.test(host)) return false;
  const parsed = parseHostPattern(host);
  return !('error' in parsed) && (parsed.pattern.kind === 'name' || parsed.pattern.kind === 'address');
}

/** The host (and port), in the characters an id may hold, made unique among `taken`. */
function uniqueId(draft: RuleDraft, taken: Set<string>): string {
  const stem = `${draft.host}${draft.port === null ? '' : `-${draft.port}`}`.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 56) || 'host';
  let id = stem;
  for (let n = 2; taken.has(id); n++) id = `${stem}-${n}`;
  taken.add(id);
  return id;
}

const YAML_WORDS = /^(true|false|null|yes|no|on|off|y|n|~)$/i;

/** A plain YAML scalar when it reads back as the same string, else a double-quoted one (JSON's escapes are YAML's). */
function yamlScalar(value: string): string {
  const plain = (/^[A-Za-z][A-Za-z0-9._-]*$/.test(value) && !YAML_WORDS.test(value)) || /^\/[A-Za-z0-9._~/*-]*$/.test(value);
  return plain ? value : JSON.stringify(value);
}

/** Text safe inside a comment line. */
function commentText(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
