// Loads a policy file: YAML (with positions) → zod file schema → runtime Policy. A file with any
// problem never loads; the error lists every problem as "file:line:column: what to write instead".
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LineCounter, parseDocument, type YAMLError } from 'yaml';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { parseHostPattern } from './host.js';
import { problemsFromIssues } from './issue-messages.js';
import { normalizePathGlob } from './path.js';
import { parseByteSize } from './byte-size.js';
import { policyFileSchema, type BudgetFile, type CredentialFile, type FilesystemFile, type PolicyFile, type RuleFile } from './schema.js';
import type {
  CredentialAction,
  CredentialLocation,
  CredentialRule,
  EgressBudget,
  FilesystemPathEntry,
  FilesystemPolicy,
  FilesystemPolicyKey,
  Policy,
  Rule,
  SecretSource,
} from './types.js';
import { YamlPositions, type Position } from './yaml-positions.js';

/** Bounds alias expansion ("billion laughs"); a policy has no use for many aliases. */
const MAX_ALIAS_COUNT = 100;

const YAML_ERROR_ADVICE: Partial<Record<YAMLError['code'], string>> = {
  DUPLICATE_KEY: 'this key appears twice in the same mapping; keep one',
  MULTIPLE_DOCS: 'a policy file holds one YAML document; remove the second "---"',
  TAB_AS_INDENT: 'tabs are not allowed as indentation; indent with spaces',
};

/** Parses and validates policy text. `file` names the source in error messages. */
export function parsePolicy(text: string, file = '<inline>'): Policy {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const positions = new YamlPositions(document, lineCounter);
  const where = (position: Position) => `${file}:${position.line}:${position.column}`;

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
    throw new SrtGwError(ErrorCodes.POLICY_INVALID, `${file}:1:1: YAML could not be read: ${reason}`, { cause: error });
  }

  const result = policyFileSchema.safeParse(data);
  if (!result.success) {
    const located = problemsFromIssues(result.error.issues, data).map((problem) => ({
      position: positions.of(problem.path, problem.at),
      message: problem.message,
    }));
    located.sort((a, b) => a.position.line - b.position.line || a.position.column - b.position.column);
    throw new SrtGwError(ErrorCodes.POLICY_INVALID, located.map(({ position, message }) => `${where(position)}: ${message}`).join('\n'));
  }
  return toRuntimePolicy(result.data, file, positions);
}

/** Reads and parses a policy file; errors name `path` as given. */
export async function loadPolicyFile(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw unreadable(path, error);
  }
  return parsePolicy(text, path);
}

/** loadPolicyFile() for callers that cannot await (startup of the CLI). */
export function loadPolicyFileSync(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw unreadable(path, error);
  }
  return parsePolicy(text, path);
}


function toRuntimePolicy(file: PolicyFile, fileName: string, positions: YamlPositions): Policy {
  const rules = file.rules.map((rule, index) => toRuntimeRule(rule, index, fileName, positions));
  return Object.freeze({
    version: file.version,
    rules: Object.freeze(rules),
    ...(file.filesystem === undefined ? {} : { filesystem: toRuntimeFilesystem(file.filesystem, fileName, positions) }),
  });
}

/** Paths stay as written: resolving "~", symlinks and existence is the jail's job, at run time. */
function toRuntimeFilesystem(section: FilesystemFile, fileName: string, positions: YamlPositions): FilesystemPolicy {
  // Relative paths are relative to the policy file, wherever the command runs; an inline policy
  // ("<inline>") resolves against the process's working directory.
  const baseDirectory = dirname(resolve(fileName));
  const entries = (key: FilesystemPolicyKey): readonly FilesystemPathEntry[] =>
    Object.freeze(
      (section[key] ?? []).map((path, index) => {
        const position = positions.of(['filesystem', key, index]);
        return Object.freeze({ path, baseDirectory, source: Object.freeze({ file: fileName, line: position.line, column: position.column }) });
      }),
    );
  return Object.freeze({ denyRead: entries('denyRead'), allowRead: entries('allowRead'), allowWrite: entries('allowWrite'), denyWrite: entries('denyWrite') });
}

function toRuntimeRule(rule: RuleFile, index: number, fileName: string, positions: YamlPositions): Rule {
  const position = positions.of(['rules', index]);
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
    ...(rule.credentials === undefined ? {} : { credentials: toRuntimeCredentials(rule.credentials, index, fileName, positions) }),
    ...(rule.budget === undefined ? {} : { budget: toRuntimeBudget(rule.budget) }),
    source: Object.freeze({ file: fileName, line: position.line, column: position.column }),
  };
  return Object.freeze(runtime);
}

function toRuntimeCredentials(written: CredentialFile | CredentialFile[], ruleIndex: number, fileName: string, positions: YamlPositions): readonly CredentialRule[] {
  const list = Array.isArray(written) ? written : [written];
  // Secret files and commands are relative to the policy file, like the filesystem section.
  const baseDirectory = dirname(resolve(fileName));
  return Object.freeze(
    list.map((entry, i) => {
      const position = positions.of(Array.isArray(written) ? ['rules', ruleIndex, 'credentials', i] : ['rules', ruleIndex, 'credentials']);
      const credential: CredentialRule = {
        location: Object.freeze(toLocation(entry)),
        action: Object.freeze(toAction(entry, baseDirectory)),
        source: Object.freeze({ file: fileName, line: position.line, column: position.column }),
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

function unreadable(path: string, error: unknown): SrtGwError {
  return new SrtGwError(ErrorCodes.POLICY_UNREADABLE, `cannot read policy file ${path}: ${whyUnreadable(error)}`, { cause: error });
}

function whyUnreadable(error: unknown): string {
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

export { allowHostRule } from './allow-host-rule.js';
