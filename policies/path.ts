// Request paths and the path globs rules are written with. A path is put in one canonical form
// before any glob sees it, so that an encoding trick cannot make a request look like another.

export type NormalizedPath = { readonly path: string } | { readonly error: string };
export type NormalizedGlob = { readonly glob: string } | { readonly error: string };

/** A path glob compiled once at load time; `matches` takes a path from normalizePath(). */
export interface PathGlob {
  /** The normalised glob text. */
  readonly source: string;
  matches(path: string): boolean;
}

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const HASH = 0x23;
const BACKSLASH = 0x5c;

/**
 * Normalises a request target's path: query string dropped, percent-encoded unreserved
 * characters decoded, other escapes upper-cased, "//" runs collapsed, "." and ".." segments
 * resolved (never above the root). An encoded "/" (%2F) stays encoded and is never a separator.
 * Errors are phrases that follow the word "path".
 */
export function normalizePath(target: string): NormalizedPath {
  const queryStart = target.indexOf('?');
  const raw = queryStart < 0 ? target : target.slice(0, queryStart);
  if (raw.charCodeAt(0) !== SLASH) return { error: 'must start with "/"' };
  const scan = scanPath(raw);
  if (typeof scan === 'string') return { error: scan };
  if (!scan) return { path: raw };
  const decoded = decodeUnreserved(raw);
  if (decoded.error !== undefined) return { error: decoded.error };
  return resolveSegments(decoded.text);
}

/**
 * Why a request path may be read as another path by an upstream that decodes it, or null when every
 * common reader sees the path the policy judges. normalizePath() resolves "%2e%2e" and keeps "%2F"
 * opaque, but an upstream that percent-decodes before resolving dot segments (python's
 * http.server, static file servers, Windows servers that take "\" for "/") would turn
 * "/ok/..%2Fno/secret" into "/no/secret": so such paths are refused rather than forwarded.
 * Encoded slashes without a dot segment beside them stay allowed (GitLab project paths,
 * "/api/v4/projects/group%2Fproject"), and so do encoded unreserved characters in names
 * ("/file%2Ejson"). Raw backslashes are refused too. Errors are phrases that follow the word
 * "path"; the input is a path as sent (absolute-form: before any URL parser touched it), without
 * its query string.
 */
export function findAmbiguousEncoding(path: string): string | null {
  // Windows servers and WHATWG URL parsers read "\" as "/".
  if (path.includes('\\')) return 'contains a backslash; percent-encode it as %5C';
  if (!path.includes('%')) return null;
  // SECURITY: every hazard below lets a decoding upstream serve a path the policy never judged —
  // policies/path.test.ts "findAmbiguousEncoding", test/e2e/path-traversal.test.ts.
  const once = decodeOnce(path);
  if (typeof once !== 'string') return once.error;
  const twice = /%(?:2e|2f|5c|[01][0-9a-f]|7f|c0|c1|e0%[89]|f0%8)/i.exec(once);
  if (twice) return `has a double percent-encoded "${twice[0]}" ("%25" then an escape); a server that decodes twice would read another path`;
  const rawSegments = path.split('/');
  for (const rawSegment of rawSegments) {
    const segment = decodeUnreserved(rawSegment).text ?? rawSegment;
    if ((segment === '.' || segment === '..') && rawSegment.includes('%')) {
      return `has a percent-encoded "${segment}" segment ("${rawSegment}"); write the path it leads to`;
    }
    if (/^\.+(?:%20)+$/.test(segment)) return `has a dot segment padded with encoded spaces ("${rawSegment}"); some servers trim them and read ".."`;
    const pieces = segment.split(/%2F|%5C|%3B/);
    if (pieces.length > 1 && pieces.some((piece) => /^\.+(?:%20)*$/.test(piece))) {
      return `has a "." or ".." next to an encoded "/", "\\" or ";" ("${rawSegment}"); a server that decodes it would climb out of the path`;
    }
  }
  return null;
}

/**
 * The path decoded once, byte for byte (as latin1 text), or why it cannot be forwarded: an encoded
 * control character, or an overlong UTF-8 sequence (servers with lax UTF-8 decoders read
 * "%c0%ae" as "." and "%c0%af" as "/").
 */
function decodeOnce(path: string): string | { error: string } {
  let out = '';
  let previousEscaped = -1;
  for (let i = 0; i < path.length; i++) {
    const char = path[i]!;
    if (char !== '%') {
      out += char;
      previousEscaped = -1;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { error: `has an invalid percent escape "${path.slice(i, i + 3)}"; write "%" as %25` };
    const byte = parseInt(hex, 16);
    if (byte < 0x20 || byte === 0x7f) return { error: `contains an encoded control character (%${hex.toUpperCase()})` };
    const overlong =
      byte === 0xc0 || byte === 0xc1 || (previousEscaped === 0xe0 && byte >= 0x80 && byte <= 0x9f) || (previousEscaped === 0xf0 && byte >= 0x80 && byte <= 0x8f);
    if (overlong) return { error: `contains an overlong UTF-8 sequence ("${path.slice(Math.max(0, previousEscaped >= 0 ? i - 3 : i), i + 3)}"); lax decoders read these as "." or "/"` };
    out += String.fromCharCode(byte);
    previousEscaped = byte;
    i += 2;
  }
  return out;
}

/**
 * Normalises a glob the way normalizePath() normalises paths, except that "." and ".." segments
 * and query strings are errors (a rule written with them is a mistake), and "**" must be a
 * whole segment. Errors are phrases that follow the field name.
 */
export function normalizePathGlob(glob: string): NormalizedGlob {
  if (glob.charCodeAt(0) !== SLASH) return { error: 'must start with "/"' };
  if (glob.includes('?')) return { error: 'must not contain "?"; rules match the path only and the query string is ignored' };
  const scan = scanPath(glob);
  if (typeof scan === 'string') return { error: scan };
  const decoded = decodeUnreserved(glob);
  if (decoded.error !== undefined) return { error: decoded.error };
  const segments = decoded.text.split('/');
  const kept: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] ?? '';
    const isLast = i === segments.length - 1;
    if (segment === '.' || segment === '..' || isAmbiguousDotSegment(segment)) {
      return { error: 'must not contain "." or ".." segments; write the path they lead to' };
    }
    if (segment.includes('**') && segment !== '**') {
      return { error: 'has "**" inside a segment; "**" must be a whole segment, as in "/v1/**"' };
    }
    if (segment.length > 0 || isLast) kept.push(segment);
  }
  return { glob: `/${kept.join('/')}` };
}

/**
 * Compiles a glob: "*" matches within one segment ("*" as a whole segment needs at least one
 * character), "**" as a whole segment matches zero or more segments, so "/v1/**" matches "/v1",
 * "/v1/" and "/v1/a/b".
 */
export function compilePathGlob(glob: string): PathGlob | { readonly error: string } {
  const normalized = normalizePathGlob(glob);
  if ('error' in normalized) return normalized;
  const source = normalized.glob;
  if (!source.includes('*')) return { source, matches: (path) => path === source };
  if (source.endsWith('/**') && !source.slice(0, -3).includes('*')) {
    const prefix = source.slice(0, -3);
    const prefixWithSlash = `${prefix}/`;
    return { source, matches: (path) => path === prefix || path.startsWith(prefixWithSlash) };
  }
  const segments = source.slice(1).split('/').map(compileSegment);
  return { source, matches: (path) => matchSegments(segments, path.slice(1).split('/')) };
}

/** Whether a raw request path matches a glob; both are normalised first (invalid input never matches). */
export function pathMatchesGlob(path: string, glob: string): boolean {
  const normalized = normalizePath(path);
  const compiled = compilePathGlob(glob);
  if ('error' in normalized || 'error' in compiled) return false;
  return compiled.matches(normalized.path);
}

/**
 * One pass over the path: returns an error phrase for characters that have no place in a path,
 * else whether the slow path (decoding, dot segments, "//") is needed.
 */
function scanPath(raw: string): string | boolean {
  let needsWork = false;
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code <= 0x20 || code >= 0x7f) return 'contains a space, control or non-ASCII character; percent-encode it';
    if (code === HASH) return 'contains "#"; a request path has no fragment';
    // SECURITY: some servers read "\" as "/", which would let "/v1\..\admin" pass a "/v1/**"
    // rule and reach /admin — path.test.ts "backslash is rejected".
    if (code === BACKSLASH) return 'contains a backslash; percent-encode it as %5C';
    if (code === PERCENT) needsWork = true;
    else if (code === SLASH) {
      const next = raw.charCodeAt(i + 1);
      if (next === SLASH || next === DOT) needsWork = true;
    }
  }
  return needsWork;
}

/** Decodes %xx of unreserved characters, upper-cases the hex of the rest. */
function decodeUnreserved(raw: string): { text: string; error?: undefined } | { text?: undefined; error: string } {
  let out = '';
  let copiedUpTo = 0;
  for (let i = raw.indexOf('%'); i >= 0; i = raw.indexOf('%', i + 1)) {
    const hex = raw.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { error: `has an invalid percent escape "${raw.slice(i, i + 3)}"; write "%" as %25` };
    const byte = parseInt(hex, 16);
    if (byte === 0) return { error: 'contains an encoded NUL (%00)' };
    out += raw.slice(copiedUpTo, i) + (isUnreserved(byte) ? String.fromCharCode(byte) : `%${hex.toUpperCase()}`);
    copiedUpTo = i + 3;
  }
  return { text: out + raw.slice(copiedUpTo) };
}

/** RFC 3986 remove_dot_segments plus "//" collapsing; `decoded` starts with "/". */
function resolveSegments(decoded: string): NormalizedPath {
  const segments = decoded.split('/');
  const kept: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] ?? '';
    const isLast = i === segments.length - 1;
    if (segment === '..') kept.pop();
    else if (segment !== '.' && segment !== '') {
      // SECURITY: "..;" is ".." to Tomcat and Spring but a plain name to us, so it could climb
      // out of a "/v1/**" rule upstream — path.test.ts "..; segment is rejected".
      if (isAmbiguousDotSegment(segment)) return { error: `has an ambiguous segment "${segment}"; servers disagree whether it means "." or ".."` };
      kept.push(segment);
      continue;
    }
    // A "." or ".." or empty last segment leaves a directory: keep its trailing slash.
    if (isLast) kept.push('');
  }
  return { path: `/${kept.join('/')}` };
}

function isAmbiguousDotSegment(segment: string): boolean {
  return segment.startsWith('.;') || segment.startsWith('..;');
}

function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    (byte >= 0x30 && byte <= 0x39) ||
    byte === 0x2d ||
    byte === DOT ||
    byte === 0x5f ||
    byte === 0x7e
  );
}

type SegmentMatcher =
  | { readonly kind: 'any-depth' }
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'non-empty' }
  | { readonly kind: 'wildcard'; readonly parts: readonly string[] };

function compileSegment(segment: string): SegmentMatcher {
  if (segment === '**') return { kind: 'any-depth' };
  if (segment === '*') return { kind: 'non-empty' };
  if (!segment.includes('*')) return { kind: 'literal', text: segment };
  return { kind: 'wildcard', parts: segment.split('*') };
}

/**
 * Glob matching over segments with "**" as the star. Remembering only the last "**" is enough
 * because "**" matches any run of segments, which keeps this O(segments × glob) whatever a
 * client sends (a backtracking RegExp would not be).
 */
function matchSegments(glob: readonly SegmentMatcher[], path: readonly string[]): boolean {
  let g = 0;
  let p = 0;
  let starGlob = -1;
  let starPath = 0;
  while (p < path.length) {
    const matcher = glob[g];
    if (matcher?.kind === 'any-depth') {
      starGlob = g++;
      starPath = p;
    } else if (matcher !== undefined && segmentMatches(matcher, path[p] ?? '')) {
      g++;
      p++;
    } else if (starGlob >= 0) {
      g = starGlob + 1;
      p = ++starPath;
    } else {
      return false;
    }
  }
  while (glob[g]?.kind === 'any-depth') g++;
  return g === glob.length;
}

function segmentMatches(matcher: SegmentMatcher, segment: string): boolean {
  switch (matcher.kind) {
    case 'literal':
      return segment === matcher.text;
    case 'non-empty':
      return segment.length > 0;
    case 'wildcard':
      return wildcardMatches(matcher.parts, segment);
    default:
      return false;
  }
}

/** parts = the segment glob split on "*": first is a prefix, last a suffix, the rest in order between. */
function wildcardMatches(parts: readonly string[], segment: string): boolean {
  const first = parts[0] ?? '';
  const last = parts[parts.length - 1] ?? '';
  if (segment.length < first.length + last.length) return false;
  if (!segment.startsWith(first) || !segment.endsWith(last)) return false;
  let at = first.length;
  const end = segment.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const part = parts[i] ?? '';
    const found = segment.indexOf(part, at);
    if (found < 0 || found + part.length > end) return false;
    at = found + part.length;
  }
  return true;
}
