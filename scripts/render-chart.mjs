#!/usr/bin/env node
// Renders a Helm chart the way `helm template` does, for the subset of Helm's template language
// that deploy/helm/srt-gw uses (listed in deploy/helm/srt-gw/README.md), so the chart can be
// checked on machines without helm. Anything outside the subset is an error naming file:line,
// never a silent difference from what helm would render.
//
//   node scripts/render-chart.mjs CHART_DIR [-f VALUES.yaml]... [--name RELEASE] [--namespace NS]
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

/** A template the renderer cannot render: `file:line: message`. */
export class ChartRenderError extends Error {
  constructor(file, line, message) {
    super(`${file}:${line}: ${message}`);
    this.name = 'ChartRenderError';
    this.file = file;
    this.line = line;
    this.detail = message;
  }
}

const SUBSET_HINT = 'deploy/helm/srt-gw/README.md lists the template subset render-chart.mjs supports';

// ---------------------------------------------------------------------------------------------
// Lexing: text and actions, with `{{-`/`-}}` trimming and `{{/* */}}` comments.

/** Splits a template into text and action items; `line` is where each item starts. */
function lex(source, file) {
  const items = [];
  let position = 0;
  let line = 1;
  const advanceLines = (text) => {
    for (const char of text) if (char === '\n') line += 1;
  };
  while (position < source.length) {
    const open = source.indexOf('{{', position);
    if (open === -1) {
      items.push({ kind: 'text', text: source.slice(position), line });
      break;
    }
    const text = source.slice(position, open);
    items.push({ kind: 'text', text, line });
    advanceLines(text);
    const actionLine = line;
    let cursor = open + 2;
    let trimLeft = false;
    if (source[cursor] === '-' && /\s/.test(source[cursor + 1] ?? '')) {
      trimLeft = true;
      cursor += 1;
    }
    // Find the closing braces outside string literals and comments.
    let close = -1;
    let scan = cursor;
    while (scan < source.length) {
      const char = source[scan];
      if (char === '"') {
        scan += 1;
        while (scan < source.length && source[scan] !== '"') {
          if (source[scan] === '\\') scan += 1;
          if (source[scan] === '\n') throw new ChartRenderError(file, actionLine, 'unterminated string in action');
          scan += 1;
        }
        scan += 1;
        continue;
      }
      if (char === '`') {
        const end = source.indexOf('`', scan + 1);
        if (end === -1) throw new ChartRenderError(file, actionLine, 'unterminated raw string in action');
        scan = end + 1;
        continue;
      }
      if (source.startsWith('/*', scan)) {
        const end = source.indexOf('*/', scan + 2);
        if (end === -1) throw new ChartRenderError(file, actionLine, 'unterminated comment');
        scan = end + 2;
        continue;
      }
      if (source.startsWith('}}', scan)) {
        close = scan;
        break;
      }
      scan += 1;
    }
    if (close === -1) throw new ChartRenderError(file, actionLine, 'action is not closed with }}');
    let body = source.slice(cursor, close);
    let trimRight = false;
    if (/\s-$/.test(body)) {
      trimRight = true;
      body = body.slice(0, -1);
    }
    advanceLines(source.slice(open, close + 2));
    position = close + 2;
    const trimmed = body.trim();
    if (trimmed.startsWith('/*')) {
      if (!trimmed.endsWith('*/')) throw new ChartRenderError(file, actionLine, 'a comment action must be {{/* ... */}} and nothing else');
      items.push({ kind: 'comment', trimLeft, trimRight, line: actionLine });
    } else {
      items.push({ kind: 'action', body: trimmed, trimLeft, trimRight, line: actionLine });
    }
  }
  // Trimming: `{{-` eats the whitespace before the action, `-}}` the whitespace after it.
  for (let index = 0; index < items.length; index += 1) {
    const item = items[index];
    if (item.kind === 'text') continue;
    const before = items[index - 1];
    const after = items[index + 1];
    if (item.trimLeft && before?.kind === 'text') before.text = before.text.replace(/[ \t\r\n]+$/, '');
    if (item.trimRight && after?.kind === 'text') after.text = after.text.replace(/^[ \t\r\n]+/, '');
  }
  return items.filter((item) => item.kind !== 'comment' && !(item.kind === 'text' && item.text === ''));
}

/** Tokens of one action's body. */
function tokenize(body, file, line) {
  const tokens = [];
  let index = 0;
  const fail = (message) => {
    throw new ChartRenderError(file, line, message);
  };
  while (index < body.length) {
    const char = body[index];
    if (/\s/.test(char)) {
      index += 1;
      continue;
    }
    const rest = body.slice(index);
    let match;
    if (char === '"') {
      let end = index + 1;
      while (end < body.length && body[end] !== '"') end += body[end] === '\\' ? 2 : 1;
      if (end >= body.length) fail('unterminated string');
      tokens.push({ type: 'string', value: JSON.parse(body.slice(index, end + 1)) });
      index = end + 1;
    } else if (char === '`') {
      const end = body.indexOf('`', index + 1);
      tokens.push({ type: 'string', value: body.slice(index + 1, end) });
      index = end + 1;
    } else if (char === '|' || char === '(' || char === ')' || char === ',') {
      tokens.push({ type: char });
      index += 1;
    } else if (rest.startsWith(':=')) {
      tokens.push({ type: ':=' });
      index += 2;
    } else if (char === '=') {
      fail('assigning to a variable ($x = ...) is not in the subset; declare it with :=');
    } else if ((match = /^-?\d+(\.\d+)?/.exec(rest)) && !/^[.\w]/.test(rest.slice(match[0].length))) {
      tokens.push({ type: 'number', value: Number(match[0]) });
      index += match[0].length;
    } else if ((match = /^\$[A-Za-z0-9_]*((\.[A-Za-z_][A-Za-z0-9_]*)*)/.exec(rest))) {
      const [name, ...path] = match[0].split('.');
      tokens.push({ type: 'variable', name, path });
      index += match[0].length;
    } else if ((match = /^(\.[A-Za-z_][A-Za-z0-9_]*)+/.exec(rest))) {
      tokens.push({ type: 'field', path: match[0].slice(1).split('.') });
      index += match[0].length;
    } else if (char === '.') {
      tokens.push({ type: 'dot' });
      index += 1;
    } else if ((match = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      tokens.push({ type: 'identifier', name: match[0] });
      index += match[0].length;
    } else {
      fail(`unexpected ${JSON.stringify(char)} in action`);
    }
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parsing: pipelines and the control structures.

/**
 * A pipeline: optional variable declarations, then commands joined by `|`. Each command is a list
 * of operands: values, fields, variables, function names, parenthesised pipelines.
 */
function parsePipeline(tokens, file, line) {
  let index = 0;
  const fail = (message) => {
    throw new ChartRenderError(file, line, message);
  };
  const declarations = [];
  // `$x :=` or `$i, $v :=`
  const assignAt = tokens.findIndex((token) => token.type === ':=');
  if (assignAt !== -1) {
    for (let at = 0; at < assignAt; at += 1) {
      const token = tokens[at];
      if (at % 2 === 1) {
        if (token.type !== ',') fail('expected "," between declared variables');
        continue;
      }
      if (token.type !== 'variable' || token.path.length > 0 || token.name === '$') fail('only $name can be declared with :=');
      declarations.push(token.name);
    }
    if (declarations.length === 0 || declarations.length > 2) fail('declare one or two variables with :=');
    index = assignAt + 1;
  }
  const parseCommands = (stopAtParen) => {
    const commands = [];
    let operands = [];
    while (index < tokens.length) {
      const token = tokens[index];
      if (token.type === ')') {
        if (!stopAtParen) fail('unexpected ")"');
        break;
      }
      index += 1;
      if (token.type === '|') {
        if (operands.length === 0) fail('empty command before "|"');
        commands.push(operands);
        operands = [];
        continue;
      }
      if (token.type === '(') {
        const inner = parseCommands(true);
        if (tokens[index]?.type !== ')') fail('"(" is not closed');
        index += 1;
        if (tokens[index]?.type === 'field') fail('a field of a parenthesised pipeline, (...).x, is not in the subset');
        operands.push({ type: 'pipeline', commands: inner });
        continue;
      }
      if (token.type === ',' || token.type === ':=') fail(`unexpected "${token.type}"`);
      operands.push(token);
    }
    if (operands.length === 0) fail(commands.length === 0 ? 'empty pipeline' : 'empty command after "|"');
    commands.push(operands);
    return commands;
  };
  const commands = parseCommands(false);
  if (index !== tokens.length) fail('unexpected ")"');
  return { declarations, commands };
}

const UNSUPPORTED_KEYWORDS = {
  template: 'the template action is not in the subset; use include',
  block: 'block is not in the subset; use define and include',
  break: 'break is not in the subset',
  continue: 'continue is not in the subset',
};

/** Parses lexed items into a tree; `define` blocks go to `defines`. */
function parseItems(items, file, defines) {
  let index = 0;
  const keywordOf = (body) => /^(if|else|end|range|with|define|template|block|break|continue)\b/.exec(body)?.[1];
  const pipelineOf = (text, line) => parsePipeline(tokenize(text, file, line), file, line);

  // Parses until one of `stops` ("end", "else"); returns the nodes and the stop item.
  const parseList = (stops, openLine) => {
    const nodes = [];
    while (index < items.length) {
      const item = items[index];
      index += 1;
      if (item.kind === 'text') {
        nodes.push({ type: 'text', text: item.text });
        continue;
      }
      const keyword = keywordOf(item.body);
      if (keyword === undefined) {
        nodes.push({ type: 'action', pipeline: pipelineOf(item.body, item.line), line: item.line });
        continue;
      }
      if (UNSUPPORTED_KEYWORDS[keyword]) throw new ChartRenderError(file, item.line, `${UNSUPPORTED_KEYWORDS[keyword]} (${SUBSET_HINT})`);
      const rest = item.body.slice(keyword.length).trim();
      if (keyword === 'end' || keyword === 'else') {
        if (!stops.includes(keyword)) throw new ChartRenderError(file, item.line, `unexpected {{ ${keyword} }}`);
        return { nodes, stop: { keyword, rest, line: item.line } };
      }
      if (keyword === 'define') {
        if (stops.length > 0) throw new ChartRenderError(file, item.line, 'define is only allowed at the top level of a file');
        const name = tokenize(rest, file, item.line);
        if (name.length !== 1 || name[0].type !== 'string') throw new ChartRenderError(file, item.line, 'define takes one quoted name');
        const body = parseList(['end'], item.line);
        defines.set(name[0].value, { nodes: body.nodes, file, line: item.line });
        continue;
      }
      if (rest === '') throw new ChartRenderError(file, item.line, `${keyword} needs a pipeline`);
      if (keyword === 'if') {
        const branches = [{ condition: pipelineOf(rest, item.line), line: item.line }];
        let elseNodes = null;
        for (;;) {
          const part = parseList(['else', 'end'], item.line);
          branches[branches.length - 1].nodes = part.nodes;
          if (part.stop.keyword === 'end') break;
          if (part.stop.rest === '') {
            const last = parseList(['end'], part.stop.line);
            elseNodes = last.nodes;
            break;
          }
          const elseIf = /^if\s+(.*)$/s.exec(part.stop.rest);
          if (!elseIf) throw new ChartRenderError(file, part.stop.line, `"else ${part.stop.rest}" is not in the subset; only else and else if`);
          branches.push({ condition: pipelineOf(elseIf[1], part.stop.line), line: part.stop.line });
        }
        nodes.push({ type: 'if', branches, elseNodes });
        continue;
      }
      // range and with: a body and an optional else.
      const pipeline = pipelineOf(rest, item.line);
      if (keyword === 'with' && pipeline.declarations.length > 1) throw new ChartRenderError(file, item.line, 'with declares at most one variable');
      const body = parseList(['else', 'end'], item.line);
      let elseNodes = null;
      if (body.stop.keyword === 'else') {
        if (body.stop.rest !== '') throw new ChartRenderError(file, body.stop.line, `"else ${body.stop.rest}" inside ${keyword} is not in the subset`);
        elseNodes = parseList(['end'], body.stop.line).nodes;
      }
      nodes.push({ type: keyword, pipeline, nodes: body.nodes, elseNodes, line: item.line });
    }
    if (stops.length > 0) throw new ChartRenderError(file, openLine, 'this block has no {{ end }}');
    return { nodes, stop: null };
  };
  return parseList([], 1).nodes;
}

/** Parses one template file: its top-level nodes, and its defines added to `defines`. */
export function parseTemplate(source, file, defines = new Map()) {
  return { nodes: parseItems(lex(source, file), file, defines), defines };
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

/** Go's notion of an empty value: false, 0, nil, "", empty list or map. */
function isTruthy(value) {
  if (value === null || value === undefined) return false;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'string') return value.length > 0;
  if (Array.isArray(value)) return value.length > 0;
  if (typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

function typeName(value) {
  if (value === null || value === undefined) return 'nil';
  if (Array.isArray(value)) return 'list';
  return typeof value === 'object' ? 'map' : typeof value;
}

/** Text for a value printed by an action; lists and maps must go through toYaml. */
function printed(value, fail) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  fail(`printing a ${typeName(value)} directly is not in the subset; pipe it to toYaml`);
  return '';
}

/** The string form sprig's functions take: nil is "", numbers and booleans as printed. */
function stringArgument(value, name, fail) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  fail(`${name} needs a string, got a ${typeName(value)}`);
  return '';
}

/** helm's toYaml: keys sorted, no trailing newline. */
function toYaml(value) {
  if (value === null || value === undefined) return 'null';
  // YAML 1.1, as Kubernetes reads manifests: strings such as "yes" or "0755" come out quoted.
  return YAML.stringify(value, { version: '1.1', sortMapEntries: true, lineWidth: 0, aliasDuplicateObjects: false }).replace(/\n$/, '');
}

function indentText(count, text) {
  const pad = ' '.repeat(count);
  return pad + text.replaceAll('\n', `\n${pad}`);
}

function integerArgument(value, name, fail) {
  if (typeof value !== 'number' || !Number.isInteger(value)) fail(`${name} needs an integer first, got ${JSON.stringify(value)}`);
  return value;
}

/** The functions of the subset. Each gets the evaluated arguments and a `fail(message)`. */
const FUNCTIONS = {
  toYaml: { arity: [1, 1], call: ([value]) => toYaml(value) },
  indent: { arity: [2, 2], call: ([count, text], fail) => indentText(integerArgument(count, 'indent', fail), stringArgument(text, 'indent', fail)) },
  nindent: { arity: [2, 2], call: ([count, text], fail) => `\n${indentText(integerArgument(count, 'nindent', fail), stringArgument(text, 'nindent', fail))}` },
  quote: {
    arity: [1, Infinity],
    call: (values, fail) =>
      values
        .filter((value) => value !== null && value !== undefined)
        .map((value) => JSON.stringify(stringArgument(value, 'quote', fail)))
        .join(' '),
  },
  default: { arity: [2, 2], call: ([fallback, value]) => (isTruthy(value) ? value : fallback) },
  required: {
    arity: [2, 2],
    call: ([message, value], fail) => {
      if (value === null || value === undefined || value === '') fail(stringArgument(message, 'required', fail));
      return value;
    },
  },
  fail: { arity: [1, 1], call: ([message], fail) => fail(stringArgument(message, 'fail', fail)) },
  sha256sum: { arity: [1, 1], call: ([text], fail) => createHash('sha256').update(stringArgument(text, 'sha256sum', fail)).digest('hex') },
  trunc: {
    arity: [2, 2],
    call: ([count, text], fail) => {
      const length = integerArgument(count, 'trunc', fail);
      const value = stringArgument(text, 'trunc', fail);
      return length >= 0 ? value.slice(0, length) : value.slice(length);
    },
  },
  trimSuffix: {
    arity: [2, 2],
    call: ([suffix, text], fail) => {
      const value = stringArgument(text, 'trimSuffix', fail);
      const end = stringArgument(suffix, 'trimSuffix', fail);
      return end !== '' && value.endsWith(end) ? value.slice(0, -end.length) : value;
    },
  },
  printf: {
    arity: [1, Infinity],
    call: ([format, ...values], fail) => {
      let next = 0;
      const pattern = stringArgument(format, 'printf', fail);
      if (/%[^%sdv]/.test(pattern.replaceAll('%%', ''))) fail('printf: only %s, %d, %v and %% are in the subset');
      const text = pattern.replace(/%([%sdv])/g, (whole, verb) => {
        if (verb === '%') return '%';
        if (next >= values.length) fail(`printf: ${whole} has no argument`);
        const value = values[next++];
        if (verb === 'd' && (typeof value !== 'number' || !Number.isInteger(value))) fail(`printf: %d needs an integer, got ${JSON.stringify(value)}`);
        return printed(value, fail);
      });
      if (next !== values.length) fail(`printf: ${values.length - next} argument(s) left over`);
      return text;
    },
  },
  eq: {
    arity: [2, Infinity],
    call: ([first, ...others], fail) => {
      for (const value of [first, ...others]) {
        if (value !== null && value !== undefined && typeof value === 'object') fail(`eq compares strings, numbers and booleans, not a ${typeName(value)}`);
      }
      return others.some((value) => (value ?? null) === (first ?? null));
    },
  },
  ne: { arity: [2, 2], call: ([a, b]) => (a ?? null) !== (b ?? null) },
  not: { arity: [1, 1], call: ([value]) => !isTruthy(value) },
  and: { arity: [2, Infinity], call: (values) => values.find((value) => !isTruthy(value)) ?? values[values.length - 1] },
  or: { arity: [2, Infinity], call: (values) => values.find((value) => isTruthy(value)) ?? values[values.length - 1] },
};

/** The objects a chart may reach besides .Values; any other field of these is outside the subset. */
const BUILTIN_FIELDS = {
  Release: ['Name', 'Namespace', 'Service'],
  Chart: ['Name', 'Version', 'AppVersion'],
  Files: ['Get'],
};

class Renderer {
  /** `chartRoot`: the object with .Values, .Release...; `root`: what `$` is (include's context). */
  constructor({ defines, chartRoot, root = chartRoot, file, includeDepth = 0 }) {
    this.defines = defines;
    this.chartRoot = chartRoot;
    this.root = root;
    this.file = file;
    this.includeDepth = includeDepth;
  }

  fail(line, message) {
    throw new ChartRenderError(this.file, line, message);
  }

  render(nodes, dot, scope) {
    let out = '';
    for (const node of nodes) out += this.renderNode(node, dot, scope);
    return out;
  }

  renderNode(node, dot, scope) {
    switch (node.type) {
      case 'text':
        return node.text;
      case 'action': {
        const value = this.evalPipeline(node.pipeline, dot, scope, node.line);
        if (node.pipeline.declarations.length > 0) {
          if (node.pipeline.declarations.length > 1) this.fail(node.line, 'declare one variable per action');
          scope.set(node.pipeline.declarations[0], value);
          return '';
        }
        return printed(value, (message) => this.fail(node.line, message));
      }
      case 'if': {
        for (const branch of node.branches) {
          if (branch.condition.declarations.length > 0) this.fail(branch.line, 'declaring a variable in an if condition is not in the subset');
          if (isTruthy(this.evalPipeline(branch.condition, dot, scope, branch.line))) return this.render(branch.nodes, dot, new Map(scope));
        }
        return node.elseNodes ? this.render(node.elseNodes, dot, new Map(scope)) : '';
      }
      case 'with': {
        const value = this.evalPipeline(node.pipeline, dot, scope, node.line);
        if (!isTruthy(value)) return node.elseNodes ? this.render(node.elseNodes, dot, new Map(scope)) : '';
        const inner = new Map(scope);
        if (node.pipeline.declarations.length === 1) inner.set(node.pipeline.declarations[0], value);
        return this.render(node.nodes, value, inner);
      }
      case 'range': {
        const value = this.evalPipeline(node.pipeline, dot, scope, node.line);
        let entries;
        if (value === null || value === undefined) entries = [];
        else if (Array.isArray(value)) entries = value.map((item, position) => [position, item]);
        else if (typeof value === 'object') entries = Object.keys(value).sort().map((key) => [key, value[key]]);
        else this.fail(node.line, `range over a ${typeName(value)} is not in the subset (lists and maps only)`);
        if (entries.length === 0) return node.elseNodes ? this.render(node.elseNodes, dot, new Map(scope)) : '';
        let out = '';
        const names = node.pipeline.declarations;
        for (const [key, item] of entries) {
          const inner = new Map(scope);
          if (names.length === 1) inner.set(names[0], item);
          if (names.length === 2) {
            inner.set(names[0], key);
            inner.set(names[1], item);
          }
          out += this.render(node.nodes, item, inner);
        }
        return out;
      }
      default:
        return this.fail(0, `internal: unknown node ${node.type}`);
    }
  }

  evalPipeline(pipeline, dot, scope, line) {
    let piped;
    let hasPiped = false;
    for (const command of pipeline.commands) {
      piped = this.evalCommand(command, dot, scope, line, hasPiped ? [piped] : []);
      hasPiped = true;
    }
    return piped;
  }

  evalCommand(operands, dot, scope, line, pipedIn) {
    const [head, ...rest] = operands;
    if (head.type === 'identifier' && !['true', 'false', 'nil'].includes(head.name)) {
      return this.callFunction(head.name, [...rest.map((operand) => this.evalOperand(operand, dot, scope, line)), ...pipedIn], dot, scope, line);
    }
    // A method: .Files.Get "name"
    if (head.type === 'field' || head.type === 'variable') {
      const target = this.resolveReference(head, dot, scope, line);
      if (typeof target === 'function') return target([...rest.map((operand) => this.evalOperand(operand, dot, scope, line)), ...pipedIn], (message) => this.fail(line, message));
    }
    if (rest.length > 0 || pipedIn.length > 0) this.fail(line, `${this.describe(head)} is not a function and takes no arguments`);
    return this.evalOperand(head, dot, scope, line);
  }

  describe(operand) {
    if (operand.type === 'field') return `.${operand.path.join('.')}`;
    if (operand.type === 'variable') return [operand.name, ...operand.path].join('.');
    if (operand.type === 'identifier') return operand.name;
    return operand.type;
  }

  evalOperand(operand, dot, scope, line) {
    switch (operand.type) {
      case 'string':
      case 'number':
        return operand.value;
      case 'identifier':
        if (operand.name === 'true') return true;
        if (operand.name === 'false') return false;
        if (operand.name === 'nil') return null;
        return this.fail(line, `function ${operand.name} used as a value; wrap it in parentheses to call it`);
      case 'dot':
        return dot;
      case 'field':
      case 'variable': {
        const value = this.resolveReference(operand, dot, scope, line);
        if (typeof value === 'function') this.fail(line, `${this.describe(operand)} needs its arguments`);
        return value;
      }
      case 'pipeline':
        return this.evalPipeline({ declarations: [], commands: operand.commands }, dot, scope, line);
      default:
        return this.fail(line, `unexpected ${operand.type}`);
    }
  }

  resolveReference(operand, dot, scope, line) {
    let value;
    let path;
    if (operand.type === 'variable') {
      if (operand.name === '$') value = this.root;
      else if (scope.has(operand.name)) value = scope.get(operand.name);
      else this.fail(line, `undefined variable ${operand.name}`);
      path = operand.path;
    } else {
      value = dot;
      path = operand.path;
    }
    let builtin = null;
    for (let step = 0; step < path.length; step += 1) {
      const name = path[step];
      const isRoot = value === this.chartRoot;
      if (value === null || value === undefined) this.fail(line, `nil pointer evaluating ${this.describe(operand)}: ${path.slice(0, step).join('.') || '.'} is nil`);
      if (typeof value !== 'object' || Array.isArray(value)) this.fail(line, `can't evaluate field ${name} in a ${typeName(value)} (${this.describe(operand)})`);
      if (isRoot) {
        if (!['Values', ...Object.keys(BUILTIN_FIELDS)].includes(name)) this.fail(line, `.${name} is not in the subset (${SUBSET_HINT})`);
        builtin = name === 'Values' ? null : name;
      } else if (builtin !== null) {
        if (!BUILTIN_FIELDS[builtin].includes(name)) this.fail(line, `.${builtin}.${name} is not in the subset (${SUBSET_HINT})`);
        builtin = null;
      }
      value = Object.hasOwn(value, name) ? value[name] : null;
    }
    return value;
  }

  callFunction(name, args, dot, scope, line) {
    if (name === 'include') {
      if (args.length !== 2) this.fail(line, `include takes a template name and a context, got ${args.length} argument(s)`);
      const [templateName, context] = args;
      const definition = this.defines.get(templateName);
      if (!definition) this.fail(line, `include: no template named ${JSON.stringify(templateName)} is defined`);
      if (this.includeDepth > 50) this.fail(line, `include: ${JSON.stringify(templateName)} nests more than 50 deep`);
      const inner = new Renderer({ defines: this.defines, chartRoot: this.chartRoot, root: context, file: definition.file, includeDepth: this.includeDepth + 1 });
      return inner.render(definition.nodes, context, new Map());
    }
    const fn = FUNCTIONS[name];
    if (!fn) this.fail(line, `function ${JSON.stringify(name)} is not in the subset (${SUBSET_HINT})`);
    const [min, max] = fn.arity;
    if (args.length < min || args.length > max) this.fail(line, `${name} takes ${min === max ? min : `${min} or more`} argument(s), got ${args.length}`);
    return fn.call(args, (message) => this.fail(line, message));
  }
}

// ---------------------------------------------------------------------------------------------
// Charts: Chart.yaml, values, templates/.

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Helm's values coalescing: maps merge key by key, anything else replaces; null removes a key. */
export function mergeValues(base, override) {
  const merged = { ...base };
  for (const [key, value] of Object.entries(override ?? {})) {
    if (value === null) delete merged[key];
    else if (isPlainObject(value) && isPlainObject(merged[key])) merged[key] = mergeValues(merged[key], value);
    else merged[key] = value;
  }
  return merged;
}

function readYamlFile(path, what) {
  const text = readFileSync(path, 'utf8');
  const document = YAML.parseDocument(text, { version: '1.1' });
  if (document.errors.length > 0) {
    const error = document.errors[0];
    throw new ChartRenderError(path, error.linePos?.[0]?.line ?? 1, `${what} is not valid YAML: ${error.message.split('\n')[0]}`);
  }
  return document.toJS() ?? {};
}

function listTemplates(directory) {
  const found = [];
  for (const entry of readdirSync(directory).sort()) {
    const path = join(directory, entry);
    if (statSync(path).isDirectory()) found.push(...listTemplates(path));
    else found.push(path);
  }
  return found;
}

/**
 * Renders `chartDir` like `helm template RELEASE CHART -f ...`: returns each rendered manifest
 * document with the template it came from, and the rendered NOTES.txt.
 */
export function renderChart({ chartDir, valuesFiles = [], values = {}, releaseName = 'srt-gw', namespace = 'default' }) {
  const chart = readYamlFile(join(chartDir, 'Chart.yaml'), 'Chart.yaml');
  if (chart.apiVersion !== 'v2') throw new ChartRenderError(join(chartDir, 'Chart.yaml'), 1, 'apiVersion must be v2');
  if (chart.dependencies) throw new ChartRenderError(join(chartDir, 'Chart.yaml'), 1, 'chart dependencies are not in the subset');
  let merged = existsSync(join(chartDir, 'values.yaml')) ? readYamlFile(join(chartDir, 'values.yaml'), 'values.yaml') : {};
  for (const file of valuesFiles) merged = mergeValues(merged, readYamlFile(file, 'the values file'));
  merged = mergeValues(merged, values);

  const chartRoot = normalize(chartDir);
  const files = {
    Get: ([name], fail) => {
      if (typeof name !== 'string') fail('.Files.Get takes a file name');
      const path = normalize(join(chartRoot, name));
      const inside = relative(chartRoot, path);
      if (isAbsolute(name) || inside.startsWith('..') || inside.split(sep)[0] === 'templates') fail(`.Files.Get ${JSON.stringify(name)}: only files of the chart outside templates/ can be read`);
      // helm returns "" for a missing file; a chart that relies on that is a mistake, so it fails here.
      if (!existsSync(path)) fail(`.Files.Get ${JSON.stringify(name)}: no such file in the chart`);
      return readFileSync(path, 'utf8');
    },
  };
  const root = {
    Values: merged,
    Release: { Name: releaseName, Namespace: namespace, Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
    Files: files,
  };

  const templatesDir = join(chartDir, 'templates');
  const defines = new Map();
  const parsed = [];
  for (const path of listTemplates(templatesDir)) {
    const name = relative(templatesDir, path).split(sep).join('/');
    const display = `${chart.name}/templates/${name}`;
    const { nodes } = parseTemplate(readFileSync(path, 'utf8'), display, defines);
    parsed.push({ name, display, nodes });
  }
  const manifests = [];
  let notes = '';
  for (const { name, display, nodes } of parsed) {
    const base = basename(name);
    const renderer = new Renderer({ defines, chartRoot: root, file: display });
    const text = renderer.render(nodes, root, new Map());
    if (base.startsWith('_')) continue; // helpers: defines only, like helm
    if (name === 'NOTES.txt') {
      notes = text;
      continue;
    }
    if (!/\.(ya?ml|json)$/.test(base)) continue;
    for (const document of text.split(/^---[ \t]*$/m)) {
      const content = document.replace(/^\s*\n/, '');
      // A document of only comments and blank lines renders nothing, as in helm.
      if (content.split('\n').every((documentLine) => documentLine.trim() === '' || documentLine.trim().startsWith('#'))) continue;
      manifests.push({ source: display, content: content.replace(/\s*$/, '\n') });
    }
  }
  return { manifests, notes, values: merged, chart };
}

/** The manifests as `helm template` prints them. */
export function formatManifests(manifests) {
  return manifests.map(({ source, content }) => `---\n# Source: ${source}\n${content}`).join('');
}

function main(argv) {
  const valuesFiles = [];
  let chartDir;
  let releaseName = 'srt-gw';
  let namespace = 'default';
  let showNotes = false;
  for (let index = 0; index < argv.length; index += 1) {
    const argument = argv[index];
    if (argument === '-f' || argument === '--values') valuesFiles.push(argv[++index]);
    else if (argument === '--name') releaseName = argv[++index];
    else if (argument === '--namespace' || argument === '-n') namespace = argv[++index];
    else if (argument === '--notes') showNotes = true;
    else if (!argument.startsWith('-') && chartDir === undefined) chartDir = argument;
    else {
      process.stderr.write(`render-chart: unknown argument ${argument}\nusage: node scripts/render-chart.mjs CHART_DIR [-f VALUES.yaml]... [--name RELEASE] [--namespace NS] [--notes]\n`);
      return 2;
    }
  }
  if (chartDir === undefined) {
    process.stderr.write('usage: node scripts/render-chart.mjs CHART_DIR [-f VALUES.yaml]... [--name RELEASE] [--namespace NS] [--notes]\n');
    return 2;
  }
  try {
    const { manifests, notes } = renderChart({ chartDir, valuesFiles, releaseName, namespace });
    process.stdout.write(formatManifests(manifests));
    if (showNotes) process.stdout.write(`\nNOTES:\n${notes}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof ChartRenderError)) throw error;
    process.stderr.write(`render-chart: ${error.message}\n`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
