// A small reader for the Seatbelt profiles srt-gw generates, written for the tests and independent
// of the generator: it tokenises SBPL (lists, symbols, "strings", #"regexes", ; comments), checks
// that a profile uses only known operations and filters with every path a quoted absolute string,
// and evaluates file and network operations the way Seatbelt does (the last matching rule wins),
// so a test can ask "may the command write here?" of the text itself.

export type SbplNode =
  | { readonly type: 'list'; readonly items: readonly SbplNode[] }
  | { readonly type: 'symbol'; readonly name: string }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'regex'; readonly value: string }
  | { readonly type: 'number'; readonly value: number };

export class SbplSyntaxError extends Error {}

/** Parses a whole profile into its top-level forms; throws SbplSyntaxError on anything malformed. */
export function readSbpl(text: string): SbplNode[] {
  let at = 0;
  const stack: SbplNode[][] = [[]];
  const fail = (what: string): never => {
    const line = text.slice(0, at).split('\n').length;
    throw new SbplSyntaxError(`line ${line}: ${what}`);
  };
  const readQuoted = (): string => {
    // at is on the opening quote
    at++;
    let value = '';
    for (;;) {
      if (at >= text.length) fail('unterminated string');
      const char = text[at]!;
      if (/[\u0000-\u001f\u007f]/.test(char)) fail(`control character U+${char.charCodeAt(0).toString(16).padStart(4, '0')} in a string`);
      if (char === '"') {
        at++;
        return value;
      }
      if (char === '\\') {
        const next = text[at + 1];
        if (next !== '"' && next !== '\\') fail(`unknown escape \\${next ?? ''} in a string`);
        value += next;
        at += 2;
        continue;
      }
      value += char;
      at++;
    }
  };
  while (at < text.length) {
    const char = text[at]!;
    if (char === ' ' || char === '\n' || char === '\t' || char === '\r') {
      at++;
    } else if (char === ';') {
      while (at < text.length && text[at] !== '\n') at++;
    } else if (char === '(') {
      stack.push([]);
      at++;
    } else if (char === ')') {
      if (stack.length === 1) fail('unbalanced ")"');
      const items = stack.pop()!;
      stack[stack.length - 1]!.push({ type: 'list', items });
      at++;
    } else if (char === '"') {
      stack[stack.length - 1]!.push({ type: 'string', value: readQuoted() });
    } else if (char === '#' && text[at + 1] === '"') {
      at++;
      stack[stack.length - 1]!.push({ type: 'regex', value: readQuoted() });
    } else {
      const match = /^[A-Za-z0-9*_.:+-]+/.exec(text.slice(at));
      if (!match) fail(`unexpected character ${JSON.stringify(char)}`);
      const token = match![0];
      stack[stack.length - 1]!.push(/^[0-9]+$/.test(token) ? { type: 'number', value: Number(token) } : { type: 'symbol', name: token });
      at += token.length;
    }
  }
  if (stack.length !== 1) fail(`${stack.length - 1} unclosed "("`);
  return stack[0]!;
}

/** Every operation srt-gw's profiles may name. */
export const KNOWN_OPERATIONS = new Set([
  'default',
  'process-exec',
  'process-fork',
  'signal',
  'process-info*',
  'sysctl-read',
  'mach-host*',
  'mach-lookup',
  'ipc-posix-sem',
  'ipc-posix-shm',
  'pseudo-tty',
  'file-read*',
  'file-read-metadata',
  'file-write*',
  'file-write-unlink',
  'file-write-create',
  'file-ioctl',
  'network-outbound',
  'network-bind',
  'network-inbound',
]);

/** Filters (and the modifier `with`) with the shape of their arguments. */
const FILTER_SHAPES: Record<string, (args: readonly SbplNode[]) => string | null> = {
  literal: absolutePath,
  subpath: absolutePath,
  'path-literal': absolutePath,
  regex: (args) => (args.length === 1 && args[0]!.type === 'regex' && args[0]!.value.startsWith('^/') ? null : 'one #"^/..." regex'),
  target: (args) => (args.length === 1 && args[0]!.type === 'symbol' && args[0]!.name === 'same-sandbox' ? null : 'same-sandbox'),
  'global-name': (args) => (args.length === 1 && args[0]!.type === 'string' && /^[A-Za-z0-9._-]+$/.test(args[0]!.value) ? null : 'one service name'),
  'sysctl-name-prefix': (args) => (args.length === 1 && args[0]!.type === 'string' && /^[a-z0-9._]+$/.test(args[0]!.value) ? null : 'one sysctl name'),
  remote: (args) => socketAddress(args, true),
  local: (args) => socketAddress(args, false),
  with: (args) =>
    args.length === 2 && args[0]!.type === 'symbol' && args[0]!.name === 'message' && args[1]!.type === 'string' ? null : '(with message "...")',
};

/** `ip "localhost:PORT"` (remote and local) or `unix-socket (path-literal "/...")` (remote only). */
function socketAddress(args: readonly SbplNode[], unixAllowed: boolean): string | null {
  const [kind, address] = args;
  if (args.length !== 2 || kind?.type !== 'symbol') return 'ip "localhost:PORT" or unix-socket (path-literal ...)';
  if (kind.name === 'ip') return address?.type === 'string' && /^(localhost|\*):(\*|[0-9]{1,5})$/.test(address.value) ? null : '"localhost:PORT" or "*:PORT"';
  if (kind.name === 'unix-socket' && unixAllowed) return address === undefined ? 'a path' : validateFilter(address, ['path-literal']);
  return `no ${kind.name} address`;
}

function absolutePath(args: readonly SbplNode[]): string | null {
  return args.length === 1 && args[0]!.type === 'string' && args[0]!.value.startsWith('/') ? null : 'one quoted absolute path';
}

function validateFilter(node: SbplNode, allowed: readonly string[]): string | null {
  if (node.type !== 'list' || node.items[0]?.type !== 'symbol') return 'a filter must be a list starting with its name';
  const name = node.items[0].name;
  if (!allowed.includes(name)) return `unknown filter ${name}`;
  const problem = FILTER_SHAPES[name]!(node.items.slice(1));
  return problem === null ? null : `(${name} ...) needs ${problem}`;
}

const TOP_LEVEL_FILTERS = ['literal', 'subpath', 'regex', 'target', 'global-name', 'sysctl-name-prefix', 'remote', 'local', 'with'];

/** Throws SbplSyntaxError unless the profile is (version 1) then allow/deny rules of known operations and filters. */
export function checkProfile(text: string): SbplNode[] {
  const forms = readSbpl(text);
  const [first, ...rules] = forms;
  if (first?.type !== 'list' || JSON.stringify(first.items) !== JSON.stringify([{ type: 'symbol', name: 'version' }, { type: 'number', value: 1 }])) {
    throw new SbplSyntaxError('a profile starts with (version 1)');
  }
  for (const rule of rules) {
    if (rule.type !== 'list') throw new SbplSyntaxError('a top-level form that is not a list');
    const [head, ...rest] = rule.items;
    if (head?.type !== 'symbol' || (head.name !== 'allow' && head.name !== 'deny')) throw new SbplSyntaxError(`a rule must start with allow or deny (got ${JSON.stringify(head)})`);
    let index = 0;
    while (index < rest.length && rest[index]!.type === 'symbol') {
      const name = (rest[index] as { name: string }).name;
      if (!KNOWN_OPERATIONS.has(name)) throw new SbplSyntaxError(`unknown operation ${name}`);
      index++;
    }
    if (index === 0) throw new SbplSyntaxError('a rule without an operation');
    for (const filter of rest.slice(index)) {
      const problem = validateFilter(filter, TOP_LEVEL_FILTERS);
      if (problem !== null) throw new SbplSyntaxError(problem);
    }
  }
  return forms;
}

interface Rule {
  action: 'allow' | 'deny';
  operations: string[];
  filters: SbplNode[];
}

function rulesOf(forms: readonly SbplNode[]): Rule[] {
  return forms.slice(1).map((form) => {
    const items = form.type === 'list' ? form.items : [];
    const operations = items.slice(1).filter((item) => item.type === 'symbol').map((item) => (item as { name: string }).name);
    const filters = items.slice(1 + operations.length).filter((item) => !(item.type === 'list' && (item.items[0] as { name?: string }).name === 'with'));
    return { action: (items[0] as { name: string }).name as 'allow' | 'deny', operations, filters };
  });
}

function operationMatches(pattern: string, operation: string): boolean {
  if (pattern === 'default') return true;
  return pattern.endsWith('*') ? operation.startsWith(pattern.slice(0, -1)) : pattern === operation;
}

function argOf(filter: SbplNode): SbplNode | undefined {
  return filter.type === 'list' ? filter.items[1] : undefined;
}

function nameOf(filter: SbplNode): string | undefined {
  return filter.type === 'list' && filter.items[0]?.type === 'symbol' ? filter.items[0].name : undefined;
}

function pathFilterMatches(filter: SbplNode, path: string): boolean {
  const arg = argOf(filter);
  switch (nameOf(filter)) {
    case 'literal':
      return arg?.type === 'string' && arg.value === path;
    case 'subpath':
      return arg?.type === 'string' && (path === arg.value || path.startsWith(arg.value === '/' ? '/' : `${arg.value}/`));
    case 'regex':
      return arg?.type === 'regex' && new RegExp(arg.value).test(path);
    default:
      return false;
  }
}

/** What the profile decides for a file operation (file-read-data, file-write-unlink, ...) on `path`. */
export function decideFile(forms: readonly SbplNode[], operation: string, path: string): 'allow' | 'deny' {
  let decision: 'allow' | 'deny' = 'deny';
  for (const rule of rulesOf(forms)) {
    if (!rule.operations.some((pattern) => operationMatches(pattern, operation))) continue;
    if (rule.filters.length === 0 || rule.filters.some((filter) => pathFilterMatches(filter, path))) decision = rule.action;
  }
  return decision;
}

/** What the profile decides for a network operation to `localhost:PORT`-style `address` or a unix socket path. */
export function decideNetwork(forms: readonly SbplNode[], operation: string, target: { ip: string } | { unixSocket: string }): 'allow' | 'deny' {
  let decision: 'allow' | 'deny' = 'deny';
  const matches = (filter: SbplNode): boolean => {
    if (filter.type !== 'list') return false;
    const [, kind, address] = filter.items;
    if (kind?.type !== 'symbol') return false;
    if (kind.name === 'ip' && address?.type === 'string' && 'ip' in target) {
      const [host, port] = address.value.split(':');
      const [wantHost, wantPort] = target.ip.split(':');
      return (host === '*' || host === wantHost) && (port === '*' || port === wantPort);
    }
    if (kind.name === 'unix-socket' && 'unixSocket' in target) {
      const path = argOf(address!);
      return path?.type === 'string' && path.value === target.unixSocket;
    }
    return false;
  };
  for (const rule of rulesOf(forms)) {
    if (!rule.operations.some((pattern) => operationMatches(pattern, operation))) continue;
    const relevant = rule.filters.filter((filter) => nameOf(filter) === 'remote' || nameOf(filter) === 'local');
    if (rule.filters.length === 0 || relevant.some(matches)) decision = rule.action;
  }
  return decision;
}
