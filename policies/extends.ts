// `extends:`: merges the presets and policy files a policy names into one runtime Policy, by the
// rules in README "Extending presets and files": extended rules first, in list order, then the
// file's own; rule ids unique across the result; filesystem lists appended and deduplicated; a
// jail setting taken from the last file in that order that writes it; cycles and chains deeper
// than MAX_EXTENDS_DEPTH refused with the chain in the message.
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { mergeClients } from './clients.js';
import { formatFieldPath } from './issue-messages.js';
import { parsePolicyDocument, type PolicyDocument } from './policy-document.js';
import { checkPresetArguments, presetFile, presetNames, type ParameterValue } from './presets.js';
import { PRESET_REFERENCE_PREFIX, type ExtendsEntryFile } from './schema.js';
import { extendedChain, formatLocation } from './source-location.js';
import type { DnsPolicy, ExtendedSource, FilesystemPathEntry, FilesystemPolicy, FilesystemPolicyKey, JailPolicy, Policy, PrivateDestinationEntry, Rule, SourceLocation } from './types.js';

/** How many files a chain of `extends:` may hold, the root included. */
export const MAX_EXTENDS_DEPTH = 16;

const FILESYSTEM_KEYS: readonly FilesystemPolicyKey[] = ['denyRead', 'allowRead', 'allowWrite', 'denyWrite'];

/** The root policy file: its text, name in messages, directory and identity (absolute path, or "<inline>"). */
export interface RootPolicyText {
  readonly text: string;
  readonly name: string;
  readonly directory: string;
  readonly identity: string;
  /**
   * Called with each extended policy file's absolute path and the text about to be parsed, before
   * it is used: a caller that must vet the files (trust of discovered policies) checks exactly
   * the bytes that take effect, and may throw to refuse.
   */
  readonly onExtendedFile?: (path: string, text: string) => void;
}

/** A link of the chain being resolved: for cycle and depth messages. */
interface ChainLink {
  readonly identity: string;
  readonly name: string;
}

/** One file's own contribution, in merge order. */
interface Contribution {
  readonly document: PolicyDocument;
  /** The `extends:` entry that brought the file in (undefined for the root). */
  readonly extendedAt: SourceLocation | undefined;
}

interface ResolveState {
  readonly firstExtendedAt: Map<string, SourceLocation>;
  readonly extended: ExtendedSource[];
  readonly onExtendedFile: RootPolicyText['onExtendedFile'];
}

/** Parses the root policy and everything it extends, and merges them. */
export function resolvePolicy(root: RootPolicyText): Policy {
  const document = parsePolicyDocument(root.text, root.name, root.directory);
  if (document.extends.length === 0) {
    return Object.freeze({
      version: 1,
      rules: Object.freeze([...document.rules]),
      ...(document.filesystem === undefined ? {} : { filesystem: document.filesystem }),
      ...(document.jail === undefined ? {} : { jail: document.jail }),
      ...(document.allowPrivateDestinations === undefined ? {} : { allowPrivateDestinations: document.allowPrivateDestinations }),
      ...(document.dns === undefined ? {} : { dns: document.dns }),
      ...mergeClients([{ clients: document.clients, name: document.name, extendedAt: undefined }], document.rules),
    });
  }
  const state: ResolveState = { firstExtendedAt: new Map(), extended: [], onExtendedFile: root.onExtendedFile };
  const contributions = collect(document, [{ identity: root.identity, name: root.name }], undefined, state);
  const rules = mergeRules(contributions);
  return Object.freeze({
    version: 1,
    rules: Object.freeze(rules),
    ...mergeFilesystem(contributions),
    ...mergeJail(contributions),
    ...mergePrivateDestinations(contributions),
    ...mergeDns(contributions),
    ...mergeClients(contributions.map(({ document: part, extendedAt }) => ({ clients: part.clients, name: part.name, extendedAt })), rules),
    origin: Object.freeze({ file: root.name, extended: Object.freeze(state.extended) }),
  });
}

/** Depth first: what each entry extends, then the entry, then the file's own part. */
function collect(document: PolicyDocument, chain: readonly ChainLink[], extendedAt: SourceLocation | undefined, state: ResolveState): Contribution[] {
  const contributions: Contribution[] = [];
  document.extends.forEach((entry, index) => {
    const written = document.locate(['extends', index]);
    const at: SourceLocation = { ...written, ...(extendedAt === undefined ? {} : { extendedAt }) };
    const fail = (message: string): never => {
      throw new SrtGwError(ErrorCodes.POLICY_INVALID, `${where(written)}: extends[${index}] ${message}`);
    };
    const target = openTarget(entry, index, document, fail, state.onExtendedFile);
    const link = { identity: target.identity, name: target.source.name };
    if (chain.some((earlier) => earlier.identity === target.identity)) {
      fail(`makes a cycle: ${[...chain, link].map((step) => step.name).join(' → ')}; remove one of these extends`);
    }
    if (chain.length >= MAX_EXTENDS_DEPTH) {
      fail(`goes deeper than ${MAX_EXTENDS_DEPTH} files: ${[...chain, link].map((step) => step.name).join(' → ')}; extend fewer files from files that are themselves extended`);
    }
    const first = state.firstExtendedAt.get(target.identity);
    if (first !== undefined) {
      state.extended.push(Object.freeze({ ...target.source, extendedAt: Object.freeze(at), repeatOf: first }));
      return;
    }
    state.firstExtendedAt.set(target.identity, at);
    state.extended.push(Object.freeze({ ...target.source, extendedAt: Object.freeze(at) }));
    contributions.push(...collect(target.parse(), [...chain, link], at, state));
  });
  contributions.push({ document, extendedAt });
  return contributions;
}

interface Target {
  readonly identity: string;
  readonly source: Omit<ExtendedSource, 'extendedAt' | 'repeatOf'>;
  parse(): PolicyDocument;
}

function openTarget(entry: ExtendsEntryFile, index: number, includer: PolicyDocument, fail: (message: string) => never, onFile: ResolveState['onExtendedFile']): Target {
  if (typeof entry === 'string' && !entry.startsWith(PRESET_REFERENCE_PREFIX)) return openFile(entry, includer, fail, onFile);
  const name = typeof entry === 'string' ? entry.slice(PRESET_REFERENCE_PREFIX.length) : entry.preset;
  const given = typeof entry === 'string' ? undefined : entry.with;
  const path = presetFile(name) ?? fail(`names no preset ${JSON.stringify(name)}; the presets are ${presetNames().join(', ')}`);
  const text = readFileSync(path, 'utf8');
  const displayName = `${PRESET_REFERENCE_PREFIX}${name}`;
  let values: ReadonlyMap<string, ParameterValue> = new Map();
  // Parsed at once: the parameters, defaults applied, are part of the preset's identity.
  const document = parsePolicyDocument(text, displayName, dirname(path), (section) => {
    const checked = checkPresetArguments(name, section, given);
    if ('problems' in checked) {
      const base = typeof entry === 'string' ? ['extends', index] : ['extends', index, 'with'];
      const lines = checked.problems.map((problem) => {
        const location = includer.locate([...base, ...problem.path], problem.at);
        return `${where(location)}: ${formatFieldPath(['extends', index, 'with'])}${problem.at === 'key' ? ': ' : '.'}${problem.message}`;
      });
      throw new SrtGwError(ErrorCodes.POLICY_INVALID, lines.join('\n'));
    }
    values = checked.values;
    return checked.values;
  });
  const parameters = Object.fromEntries([...values].filter(([, value]) => value !== undefined).sort(([a], [b]) => a.localeCompare(b)));
  return {
    identity: `${displayName}${JSON.stringify(parameters)}`,
    source: { kind: 'preset', name: displayName, path: path, ...(values.size === 0 ? {} : { parameters: Object.freeze(parameters) }) },
    parse: () => document,
  };
}

function openFile(written: string, includer: PolicyDocument, fail: (message: string) => never, onFile: ResolveState['onExtendedFile']): Target {
  const path = resolve(includer.directory, written);
  const name = isAbsolute(written) ? normalize(written) : join(dirname(includer.name), written);
  let identity: string;
  try {
    identity = realpathSync(path);
  } catch {
    identity = path;
  }
  return {
    identity,
    source: { kind: 'file', name, path },
    parse: () => {
      let text: string | null;
      try {
        // SECURITY: reading a device or FIFO (/dev/zero, /dev/stdin) never ends, so a policy a jail
        // can write would hang srt-gw as it loads — policies/extends.test.ts "a device or FIFO".
        const stats = statSync(path);
        text = stats.isFile() || stats.isDirectory() ? readFileSync(path, 'utf8') : null;
      } catch (error) {
        return fail(`names ${written}, which cannot be read: ${whyUnreadable(error)}`);
      }
      if (text === null) return fail(`names ${written}, which is not a regular file (a device, FIFO or socket); name a policy file`);
      onFile?.(path, text);
      return parsePolicyDocument(text, name, dirname(path));
    },
  };
}

/** Rules in merge order, each marked with the entry that brought its file in; ids must stay unique. */
function mergeRules(contributions: readonly Contribution[]): Rule[] {
  const merged: Rule[] = [];
  const firstById = new Map<string, SourceLocation>();
  const problems: string[] = [];
  for (const { document, extendedAt } of contributions) {
    document.rules.forEach((rule, index) => {
      const idAt = withExtendedAt(document.ruleIdLocations[index]!, extendedAt);
      const first = firstById.get(rule.id);
      if (first !== undefined) {
        const from = extendedAt === undefined ? '' : `; ${document.name} is extended at ${describeSource(extendedAt)}`;
        problems.push(
          `${where(idAt)}: rules[${index}].id must be unique across the policy and what it extends, but the rule at ${describeSource(first)} already uses it (got ${JSON.stringify(rule.id)})${from}`,
        );
        return;
      }
      firstById.set(rule.id, idAt);
      merged.push(extendedAt === undefined ? rule : withRuleExtendedAt(rule, extendedAt));
    });
  }
  if (problems.length > 0) throw new SrtGwError(ErrorCodes.POLICY_INVALID, problems.join('\n'));
  return merged;
}

function withRuleExtendedAt(rule: Rule, extendedAt: SourceLocation): Rule {
  return Object.freeze({
    ...rule,
    ...(rule.source === undefined ? {} : { source: withExtendedAt(rule.source, extendedAt) }),
    ...(rule.credentials === undefined
      ? {}
      : {
          credentials: Object.freeze(
            rule.credentials.map((credential) => Object.freeze({ ...credential, ...(credential.source === undefined ? {} : { source: withExtendedAt(credential.source, extendedAt) }) })),
          ),
        }),
  });
}

function withExtendedAt(source: SourceLocation, extendedAt: SourceLocation | undefined): SourceLocation {
  return Object.freeze(extendedAt === undefined ? source : { ...source, extendedAt });
}

/** Each list appended in merge order; a path already listed (same resolved place) is kept once, where first written. */
function mergeFilesystem(contributions: readonly Contribution[]): { filesystem?: FilesystemPolicy } {
  if (contributions.every(({ document }) => document.filesystem === undefined)) return {};
  const lists = {} as Record<FilesystemPolicyKey, readonly FilesystemPathEntry[]>;
  for (const key of FILESYSTEM_KEYS) {
    const seen = new Set<string>();
    const entries: FilesystemPathEntry[] = [];
    for (const { document, extendedAt } of contributions) {
      for (const entry of document.filesystem?.[key] ?? []) {
        const identity = filesystemIdentity(entry);
        if (seen.has(identity)) continue;
        seen.add(identity);
        entries.push(extendedAt === undefined || entry.source === undefined ? entry : Object.freeze({ ...entry, source: withExtendedAt(entry.source, extendedAt) }));
      }
    }
    lists[key] = Object.freeze(entries);
  }
  // Scalars override, as jail settings do: the last file in merge order that writes one decides it.
  let modes: Pick<FilesystemPolicy, 'writeMode' | 'deletes'> = {};
  for (const { document } of contributions) {
    if (document.filesystem?.writeMode !== undefined) modes = { ...modes, writeMode: document.filesystem.writeMode };
    if (document.filesystem?.deletes !== undefined) modes = { ...modes, deletes: document.filesystem.deletes };
  }
  return { filesystem: Object.freeze({ ...lists, ...modes }) };
}

/**
 * Scalars override: the last file in merge order that writes a setting decides it. The root file
 * comes last, so its own `allowLocalBinding: false` turns off what a file it extends turned on,
 * and a setting it leaves out is inherited.
 */
function mergeJail(contributions: readonly Contribution[]): { jail?: JailPolicy } {
  let decided: { value: boolean; source: SourceLocation | undefined } | undefined;
  for (const { document, extendedAt } of contributions) {
    const value = document.jail?.allowLocalBinding;
    if (value === undefined) continue;
    const source = document.jail?.sources?.allowLocalBinding;
    decided = { value, source: source === undefined ? undefined : withExtendedAt(source, extendedAt) };
  }
  // Lists append in merge order, each path kept once.
  const sockets = [...new Set(contributions.flatMap(({ document }) => document.jail?.allowUnixSockets ?? []))];
  const anySockets = contributions.some(({ document }) => document.jail?.allowUnixSockets !== undefined);
  if (decided === undefined && !anySockets) return {};
  return {
    jail: Object.freeze({
      ...(decided === undefined ? {} : { allowLocalBinding: decided.value }),
      ...(decided?.source === undefined ? {} : { sources: Object.freeze({ allowLocalBinding: decided.source }) }),
      ...(anySockets ? { allowUnixSockets: Object.freeze(sockets) } : {}),
    }),
  };
}

/** Scalars override: the last file in merge order that sets dns.maxNamesPerWildcard decides it. */
function mergeDns(contributions: readonly Contribution[]): { dns?: DnsPolicy } {
  let maxNamesPerWildcard: number | undefined;
  for (const { document } of contributions) maxNamesPerWildcard = document.dns?.maxNamesPerWildcard ?? maxNamesPerWildcard;
  return maxNamesPerWildcard === undefined ? {} : { dns: Object.freeze({ maxNamesPerWildcard }) };
}

/** Appended in merge order; a range already listed is kept once, where first written. */
function mergePrivateDestinations(contributions: readonly Contribution[]): { allowPrivateDestinations?: readonly PrivateDestinationEntry[] } {
  if (contributions.every(({ document }) => document.allowPrivateDestinations === undefined)) return {};
  const seen = new Set<string>();
  const entries: PrivateDestinationEntry[] = [];
  for (const { document, extendedAt } of contributions) {
    for (const entry of document.allowPrivateDestinations ?? []) {
      if (seen.has(entry.range)) continue;
      seen.add(entry.range);
      entries.push(extendedAt === undefined || entry.source === undefined ? entry : Object.freeze({ ...entry, source: withExtendedAt(entry.source, extendedAt) }));
    }
  }
  return { allowPrivateDestinations: Object.freeze(entries) };
}

function filesystemIdentity(entry: FilesystemPathEntry): string {
  const path = entry.path;
  if (path === '~' || path.startsWith('~/')) return normalize(path).replace(/\/$/, '');
  return resolve(entry.baseDirectory, path);
}

function where(location: SourceLocation): string {
  return formatLocation(location);
}

/** "preset:npm-read:12:9 (extended at policy.yaml:2:5)". */
function describeSource(location: SourceLocation): string {
  const chain = extendedChain(location);
  return chain.length === 0 ? formatLocation(location) : `${formatLocation(location)} (extended at ${chain.join(', then at ')})`;
}

/** Why a file could not be read, in words that say what to check. */
export function whyUnreadable(error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'it does not exist; check the path';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied; make it readable by this user';
    case 'EISDIR':
      return 'it is a directory; name the policy file inside it';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
