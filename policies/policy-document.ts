// One policy file on its own: YAML (with positions) → zod file schema → runtime rules, filesystem
// entries and jail settings, each with the place it was written. What it extends is merged by
// extends.ts; a file with any problem never loads, and the error lists every problem as
// "file:line:column: what to write instead".
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { parseByteSize } from './byte-size.js';
import { toDocumentClients, type DocumentClients } from './clients.js';
import { parseHostPattern } from './host.js';
import { problemsFromIssues } from './issue-messages.js';
import { normalizePathGlob } from './path.js';
import { fillPresetParameters, type ParameterValue } from './presets.js';
import {
  policyFileSchema,
  presetFileSchema,
  presetSectionSchema,
  type BudgetFile,
  type CredentialFile,
  type ExtendsEntryFile,
  type FilesystemFile,
  type JailFile,
  type PolicyFile,
  type PresetSection,
  type RuleFile,
} from './schema.js';
import type {
  CredentialAction,
  CredentialLocation,
  CredentialRule,
  DnsPolicy,
  EgressBudget,
  FilesystemPathEntry,
  FilesystemPolicy,
  FilesystemPolicyKey,
  JailPolicy,
  PrivateDestinationEntry,
  Rule,
  SecretSource,
  SourceLocation,
} from './types.js';
import { YamlPositions, type Position } from './yaml-positions.js';

/** Bounds alias expansion ("billion laughs"); a policy has no use for many aliases. */
const MAX_ALIAS_COUNT = 100;

const YAML_ERROR_ADVICE: Partial<Record<YAMLError['code'], string>> = {
  DUPLICATE_KEY: 'this key appears twice in the same mapping; keep one',
  MULTIPLE_DOCS: 'a policy file holds one YAML document; remove the second "---"',
  TAB_AS_INDENT: 'tabs are not allowed as indentation; indent with spaces',
};

/** Where a path of the file's data was written; `at: 'key'` for the key rather than the value. */
export type Locate = (path: readonly PropertyKey[], at?: 'value' | 'key') => SourceLocation;

/** A policy file parsed and validated, before what it extends is merged in. */
export interface PolicyDocument {
  /** The file as named in messages and sources ("conf/team.yaml", "preset:github"). */
  readonly name: string;
  /** Relative paths in the file (filesystem, secret files, commands, extends) start here. */
  readonly directory: string;
  readonly extends: readonly ExtendsEntryFile[];
  readonly rules: readonly Rule[];
  /** Where each rule's id is written, in rule order. */
  readonly ruleIdLocations: readonly SourceLocation[];
  readonly filesystem?: FilesystemPolicy;
  /** Absent when the file sets no jail setting. */
  readonly jail?: JailPolicy;
  /** Absent when the file has no `allowPrivateDestinations:`. */
  readonly allowPrivateDestinations?: readonly PrivateDestinationEntry[];
  /** Absent when the file sets no `dns:` setting. */
  readonly dns?: DnsPolicy;
  /** Absent when the file has no `clients:` section. */
  readonly clients?: DocumentClients;
  readonly locate: Locate;
}

/** For a preset: turns its declared parameters into values, or throws a located error in the policy that extends it. */
export type PresetParameterResolver = (section: PresetSection) => ReadonlyMap<string, ParameterValue>;

/** Parses and validates one policy file. `name` names it in errors and rule sources. */
export function parsePolicyDocument(text: string, name: string, directory: string, preset?: PresetParameterResolver): PolicyDocument {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const positions = new YamlPositions(document, lineCounter);
  const where = (position: Position) => `${name}:${position.line}:${position.column}`;

  if (document.errors.length > 0) {
    const lines = document.errors.map(
      (error) => `${where(positions.ofOffset(error.pos[0]))}: YAML syntax error: ${YAML_ERROR_ADVICE[error.code] ?? error.message}`,
    );
    throw new SrtGwError(ErrorCodes.POLICY_INVALID, lines.join('\n'));
  }

  let data: unknown;
  try {
    data = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SrtGwError(ErrorCodes.POLICY_INVALID, `${name}:1:1: YAML could not be read: ${reason}`, { cause: error });
  }

  let originalPath = (path: readonly PropertyKey[]): readonly PropertyKey[] => path;
  if (preset !== undefined) {
    const section = presetSectionSchema.safeParse(isRecord(data) ? data.preset : undefined);
    if (!section.success) throwProblems(section.error.issues, isRecord(data) ? data.preset : undefined, (path, at) => positions.of(['preset', ...path], at), where, 'preset');
    const filled = fillPresetParameters(data, preset(section.data));
    if (filled.unknownReferences.length > 0) {
      const lines = filled.unknownReferences.map(({ path, name: parameter }) => `${where(positions.of(path))}: \${${parameter}} names no parameter of this preset; declare it under preset.parameters`);
      throw new SrtGwError(ErrorCodes.POLICY_INVALID, lines.join('\n'));
    }
    data = filled.data;
    originalPath = filled.originalPath;
  }

  const locatePosition = (path: readonly PropertyKey[], at: 'value' | 'key' = 'value') => positions.of(originalPath(path), at);
  const result = (preset === undefined ? policyFileSchema : presetFileSchema).safeParse(data);
  if (!result.success) throwProblems(result.error.issues, data, locatePosition, where);
  const locate: Locate = (path, at) => {
    const position = locatePosition(path, at);
    return { file: name, line: position.line, column: position.column };
  };
  return toDocument(result.data, name, directory, locate);
}

function throwProblems(
  issues: Parameters<typeof problemsFromIssues>[0],
  data: unknown,
  locate: (path: readonly PropertyKey[], at: 'value' | 'key') => Position,
  where: (position: Position) => string,
  prefix?: string,
): never {
  const located = problemsFromIssues(issues, data).map((problem) => ({
    position: locate(problem.path, problem.at),
    message: prefix === undefined ? problem.message : `${prefix}${problem.path.length === 0 ? ' ' : '.'}${problem.message}`,
  }));
  located.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
  throw new SrtGwError(ErrorCodes.POLICY_INVALID, located.map(({ position, message }) => `${where(position)}: ${message}`).join('\n'));
}

function toDocument(file: PolicyFile, name: string, directory: string, locate: Locate): PolicyDocument {
  const rules = (file.rules ?? []).map((rule, index) => toRuntimeRule(rule, index, directory, locate));
  return {
    name,
    directory,
    extends: file.extends ?? [],
    rules,
    ruleIdLocations: rules.map((_rule, index) => locate(['rules', index, 'id'])),
    ...(file.filesystem === undefined ? {} : { filesystem: toRuntimeFilesystem(file.filesystem, directory, locate) }),
    ...(file.jail?.allowLocalBinding === undefined && file.jail?.allowUnixSockets === undefined ? {} : { jail: toRuntimeJail(file.jail, locate) }),
    ...(file.allowPrivateDestinations === undefined ? {} : { allowPrivateDestinations: toRuntimePrivateDestinations(file.allowPrivateDestinations, locate) }),
    ...(file.dns?.maxNamesPerWildcard === undefined ? {} : { dns: Object.freeze({ maxNamesPerWildcard: file.dns.maxNamesPerWildcard }) }),
    ...(file.clients === undefined ? {} : { clients: toDocumentClients(file.clients, directory, locate) }),
    locate,
  };
}

function toRuntimeJail(section: JailFile, locate: Locate): JailPolicy {
  return Object.freeze({
    ...(section.allowLocalBinding === undefined
      ? {}
      : { allowLocalBinding: section.allowLocalBinding, sources: Object.freeze({ allowLocalBinding: Object.freeze(locate(['jail', 'allowLocalBinding'])) }) }),
    ...(section.allowUnixSockets === undefined ? {} : { allowUnixSockets: Object.freeze([...section.allowUnixSockets]) }),
  });
}

/** Each entry in canonical CIDR form ("127.0.0.1" becomes "127.0.0.1/32"), as the schema validated it. */
function toRuntimePrivateDestinations(entries: readonly string[], locate: Locate): readonly PrivateDestinationEntry[] {
  return Object.freeze(
    entries.map((entry, index) => {
      const parsed = parseHostPattern(entry);
      const range = 'error' in parsed ? entry : parsed.pattern.kind === 'address' ? `${parsed.text}/${parsed.pattern.address.family === 4 ? 32 : 128}` : parsed.text;
      return Object.freeze({ range, source: Object.freeze(locate(['allowPrivateDestinations', index])) });
    }),
  );
}

/** Paths stay as written: resolving "~", symlinks and existence is the jail's job, at run time. */
function toRuntimeFilesystem(section: FilesystemFile, baseDirectory: string, locate: Locate): FilesystemPolicy {
  // Relative paths are relative to the policy file, wherever the command runs; an inline policy
  // ("<inline>") resolves against the process's working directory.
  const entries = (key: FilesystemPolicyKey): readonly FilesystemPathEntry[] =>
    Object.freeze((section[key] ?? []).map((path, index) => Object.freeze({ path, baseDirectory, source: Object.freeze(locate(['filesystem', key, index])) })));
  return Object.freeze({
    denyRead: entries('denyRead'),
    allowRead: entries('allowRead'),
    allowWrite: entries('allowWrite'),
    denyWrite: entries('denyWrite'),
    ...(section.writeMode === undefined ? {} : { writeMode: section.writeMode }),
    ...(section.deletes === undefined ? {} : { deletes: section.deletes }),
  });
}

function toRuntimeRule(rule: RuleFile, index: number, directory: string, locate: Locate): Rule {
  const host = parseHostPattern(rule.host);
  if ('error' in host) throw new Error(`policy schema let an invalid host through: ${rule.host}`);
  const runtime: Rule = {
    id: rule.id,
    host: host.text,
    ...(rule.port === undefined ? {} : { port: rule.port }),
    ...(rule.methods === undefined ? {} : { methods: Object.freeze(dedupe(rule.methods.map((method) => method.toUpperCase()))) }),
    ...(rule.paths === undefined ? {} : { paths: Object.freeze(dedupe(rule.paths.map(normalizedGlob))) }),
    action: rule.action,
    protocol: rule.protocol,
    ...(rule.credentials === undefined ? {} : { credentials: toRuntimeCredentials(rule.credentials, index, directory, locate) }),
    ...(rule.budget === undefined ? {} : { budget: toRuntimeBudget(rule.budget) }),
    source: Object.freeze(locate(['rules', index])),
  };
  return Object.freeze(runtime);
}

function toRuntimeCredentials(written: CredentialFile | CredentialFile[], ruleIndex: number, baseDirectory: string, locate: Locate): readonly CredentialRule[] {
  const list = Array.isArray(written) ? written : [written];
  // Secret files and commands are relative to the policy file, like the filesystem section.
  return Object.freeze(
    list.map((entry, i) => {
      const credential: CredentialRule = {
        location: Object.freeze(toLocation(entry)),
        action: Object.freeze(toAction(entry, baseDirectory)),
        source: Object.freeze(locate(Array.isArray(written) ? ['rules', ruleIndex, 'credentials', i] : ['rules', ruleIndex, 'credentials'])),
      };
      return Object.freeze(credential);
    }),
  );
}

function toLocation(entry: CredentialFile): CredentialLocation {
  if (entry.query !== undefined) return { kind: 'query', name: entry.query };
  const name = (entry.header ?? '').toLowerCase();
  if (name !== 'authorization') return { kind: 'header', name, scheme: 'raw' };
  return { kind: 'header', name, scheme: entry.scheme ?? 'bearer', ...(entry.username === undefined ? {} : { username: entry.username }) };
}

function toAction(entry: CredentialFile, baseDirectory: string): CredentialAction {
  if (entry.require !== undefined) return { kind: 'require', sha256: Object.freeze([...new Set(entry.require.map((hash) => hash.slice('sha256:'.length).toLowerCase()))]) };
  if (entry.strip === true) return { kind: 'strip' };
  const inject = entry.inject ?? {};
  let source: SecretSource;
  if (inject.env !== undefined) source = { kind: 'env', name: inject.env };
  else if (inject.file !== undefined) source = { kind: 'file', path: secretFilePath(inject.file, baseDirectory), written: inject.file };
  else source = { kind: 'command', argv: Object.freeze([...(inject.command ?? [])]), cwd: baseDirectory };
  return { kind: 'inject', source: Object.freeze(source) };
}

/** "~" and "~/..." are the gateway user's home; other relative paths are relative to the policy file. */
function secretFilePath(written: string, baseDirectory: string): string {
  if (written === '~') return homedir();
  if (written.startsWith('~/')) return join(homedir(), written.slice(2));
  return resolve(baseDirectory, written);
}

function toRuntimeBudget(written: BudgetFile): EgressBudget {
  const bytes = (value: number | string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = parseByteSize(value);
    if ('error' in parsed) throw new Error(`policy schema let an invalid size through: ${value}`);
    return parsed.bytes;
  };
  const perMinute = bytes(written.requestBytesPerMinute);
  const perRun = bytes(written.requestBytesPerRun);
  return Object.freeze({
    ...(perMinute === undefined ? {} : { requestBytesPerMinute: perMinute }),
    ...(perRun === undefined ? {} : { requestBytesPerRun: perRun }),
  });
}

function normalizedGlob(glob: string): string {
  const normalized = normalizePathGlob(glob);
  if ('error' in normalized) throw new Error(`policy schema let an invalid path glob through: ${glob}`);
  return normalized.glob;
}

function dedupe(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
