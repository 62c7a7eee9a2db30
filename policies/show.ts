// `srt-gw policy show`: the policy as the gateway uses it — what it extends merged in — with
// where each rule, filesystem path and jail setting came from. Pure: a Policy in, text or JSON
// out. The YAML is itself a policy file (no `extends:`), so a reviewer can diff it or load it.
import { resolve } from 'node:path';
import { Document, isMap, isScalar, isSeq, Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { describeOrigin, extendedChain, formatLocation } from './source-location.js';
import type { CredentialRule, DeletesMode, DnsPolicy, FilesystemPathEntry, FilesystemPolicyKey, Policy, PolicyClient, Rule, SourceLocation, WriteMode } from './types.js';

const FILESYSTEM_KEYS: readonly FilesystemPolicyKey[] = ['denyRead', 'allowRead', 'allowWrite', 'denyWrite'];

/** A rule in the file shape of policies/schema.ts (what a person would write). */
export function ruleAsWritten(rule: Rule): Record<string, unknown> {
  return {
    id: rule.id,
    host: rule.host,
    ...(rule.port === undefined ? {} : { port: rule.port }),
    ...(rule.methods === undefined ? {} : { methods: [...rule.methods] }),
    ...(rule.paths === undefined ? {} : { paths: [...rule.paths] }),
    action: rule.action,
    protocol: rule.protocol,
    ...(rule.credentials === undefined ? {} : { credentials: rule.credentials.map(credentialAsWritten) }),
    ...(rule.budget === undefined ? {} : { budget: { ...rule.budget } }),
  };
}

function credentialAsWritten(credential: CredentialRule): Record<string, unknown> {
  const location = credential.location;
  const where: Record<string, unknown> =
    location.kind === 'query'
      ? { query: location.name }
      : {
          header: location.name,
          // "bearer" is what an authorization header means unless told otherwise.
          ...(location.scheme === 'basic' ? { scheme: location.scheme } : {}),
          ...(location.username === undefined ? {} : { username: location.username }),
        };
  const action = credential.action;
  switch (action.kind) {
    case 'strip':
      return { ...where, strip: true };
    case 'require':
      return { ...where, require: action.sha256.map((hash) => `sha256:${hash}`) };
    case 'inject': {
      const source = action.source;
      const inject = source.kind === 'env' ? { env: source.name } : source.kind === 'file' ? { file: source.path } : { command: [...source.argv] };
      return { ...where, inject };
    }
  }
}

/** A filesystem path as it reads from anywhere: relative paths made absolute, "~" kept. */
function absoluteFilesystemPath(entry: FilesystemPathEntry): string {
  return entry.path === '~' || entry.path.startsWith('~/') || entry.path.startsWith('/') ? entry.path : resolve(entry.baseDirectory, entry.path);
}

export interface ShownPolicy {
  readonly file: string;
  readonly extends: readonly {
    readonly kind: 'file' | 'preset';
    readonly name: string;
    readonly path: string;
    readonly parameters?: Readonly<Record<string, unknown>>;
    readonly extendedAt: readonly string[];
    readonly repeatOf?: string;
  }[];
  readonly rules: readonly (Record<string, unknown> & { readonly source: string | null; readonly extendedAt: readonly string[] })[];
  /** The paths, each with where it was written; writeMode and deletes as the merged policy sets them (absent: direct, apply). */
  readonly filesystem:
    | (Partial<Record<FilesystemPolicyKey, readonly { readonly path: string; readonly source: string | null; readonly extendedAt: readonly string[] }[]>> & {
        readonly writeMode?: WriteMode;
        readonly deletes?: DeletesMode;
      })
    | null;
  /** The jail settings a file writes, each with the file whose value is used; null when none does. */
  readonly jail: { readonly allowLocalBinding: { readonly value: boolean; readonly source: string | null; readonly extendedAt: readonly string[] } } | null;
  /** The private ranges the gateway may connect to, each with where it was written; null when no file lists any. */
  readonly allowPrivateDestinations: readonly { readonly range: string; readonly source: string | null; readonly extendedAt: readonly string[] }[] | null;
  /** The `dns:` settings; null when no file has a `dns:` section (the defaults apply). */
  readonly dns: DnsPolicy | null;
  /**
   * The `clients:` of srt-gw serve: id, how it authenticates and the rules it may use (absent:
   * all). Never its credential's details (hashes, keys, subjects). Absent when there are none.
   */
  readonly clients?: readonly { readonly id: string; readonly kind: PolicyClient['credential']['kind']; readonly rules?: readonly string[]; readonly source: string | null; readonly extendedAt: readonly string[] }[];
}

/** The resolved policy as data (`policy show --json`). */
export function showPolicy(policy: Policy, file: string): ShownPolicy {
  const at = (location: SourceLocation | undefined) => ({ source: location === undefined ? null : formatLocation(location), extendedAt: extendedChain(location) });
  const filesystem = policy.filesystem;
  return {
    file: policy.origin?.file ?? file,
    extends: (policy.origin?.extended ?? []).map((source) => ({
      kind: source.kind,
      name: source.name,
      path: source.path,
      ...(source.parameters === undefined ? {} : { parameters: source.parameters }),
      extendedAt: [formatLocation(source.extendedAt), ...extendedChain(source.extendedAt)],
      ...(source.repeatOf === undefined ? {} : { repeatOf: formatLocation(source.repeatOf) }),
    })),
    rules: policy.rules.map((rule) => ({ ...ruleAsWritten(rule), ...at(rule.source) })),
    filesystem:
      filesystem === undefined
        ? null
        : {
            ...Object.fromEntries(FILESYSTEM_KEYS.map((key) => [key, filesystem[key].map((entry) => ({ path: absoluteFilesystemPath(entry), ...at(entry.source) }))])),
            ...(filesystem.writeMode === undefined ? {} : { writeMode: filesystem.writeMode }),
            ...(filesystem.deletes === undefined ? {} : { deletes: filesystem.deletes }),
          },
    jail: policy.jail?.allowLocalBinding === undefined ? null : { allowLocalBinding: { value: policy.jail.allowLocalBinding, ...at(policy.jail.sources?.allowLocalBinding) } },
    allowPrivateDestinations: policy.allowPrivateDestinations === undefined ? null : policy.allowPrivateDestinations.map((entry) => ({ range: entry.range, ...at(entry.source) })),
    dns: policy.dns === undefined ? null : { ...policy.dns },
    ...(policy.clients === undefined ? {} : { clients: policy.clients.map((client) => ({ id: client.id, kind: client.credential.kind, ...(client.rules === undefined ? {} : { rules: [...client.rules] }), ...at(client.source) })) }),
  };
}

/** The resolved policy as YAML with a comment on each part saying where it came from. */
export function renderShownPolicy(policy: Policy, file: string): string {
  const shown = showPolicy(policy, file);
  const header = [` The policy ${shown.file} resolves to: every rule, filesystem path and jail setting, with where it was written.`];
  if (shown.extends.length === 0) {
    header.push(' It extends nothing.');
  } else {
    header.push(' It extends, in merge order:');
    for (const source of shown.extends) {
      const parameters = source.parameters === undefined ? '' : ` with ${JSON.stringify(source.parameters)}`;
      const repeat = source.repeatOf === undefined ? '' : ` — already extended at ${source.repeatOf}, so this adds nothing`;
      header.push(`   ${source.name}${parameters} (at ${source.extendedAt.join(', extended at ')})${repeat}`);
    }
  }
  if (shown.clients !== undefined) {
    // A comment, not YAML: the credentials are not shown, so a `clients:` section would not load.
    header.push(' Clients of srt-gw serve (how each authenticates, not its credential):');
    for (const client of shown.clients) header.push(`   ${client.id}: ${client.kind}, ${client.rules === undefined ? 'every rule' : `rules ${client.rules.join(', ')}`}${client.source === null ? '' : ` (${client.source})`}`);
  }
  const data: Record<string, unknown> = { version: 1, rules: policy.rules.map(ruleAsWritten) };
  if (shown.filesystem !== null) {
    const { writeMode, deletes } = shown.filesystem;
    data.filesystem = {
      ...Object.fromEntries(FILESYSTEM_KEYS.flatMap((key) => (shown.filesystem?.[key]?.length ? [[key, shown.filesystem[key].map((entry) => entry.path)]] : []))),
      ...(writeMode === undefined ? {} : { writeMode }),
      ...(deletes === undefined ? {} : { deletes }),
    };
  }
  if (shown.jail !== null) data.jail = { allowLocalBinding: shown.jail.allowLocalBinding.value };
  if (shown.allowPrivateDestinations !== null) data.allowPrivateDestinations = shown.allowPrivateDestinations.map((entry) => entry.range);
  if (policy.dns !== undefined) data.dns = { ...policy.dns };
  const document = new Document(data);
  document.commentBefore = header.join('\n');
  const rules = document.get('rules') as YAMLSeq;
  rules.items.forEach((node, index) => {
    const rule = policy.rules[index]!;
    (node as YAMLMap).commentBefore = ` ${describeOrigin(rule.source)}`;
    flowList((node as YAMLMap).get('methods'), false);
    flowList((node as YAMLMap).get('paths'), true);
    const credentials = (node as YAMLMap).get('credentials');
    if (isSeq(credentials)) for (const item of credentials.items) if (isMap(item)) item.flow = true;
    const budget = (node as YAMLMap).get('budget');
    if (isMap(budget)) budget.flow = true;
  });
  const filesystemNode = document.get('filesystem');
  if (isMap(filesystemNode)) {
    for (const pair of filesystemNode.items) {
      const key = String(isScalar(pair.key) ? pair.key.value : pair.key) as FilesystemPolicyKey;
      const entries = shown.filesystem?.[key] ?? [];
      if (!isSeq(pair.value)) continue;
      pair.value.items.forEach((item, index) => {
        const entry = entries[index];
        if (isScalar(item) && entry !== undefined) item.comment = ` ${whereFrom(entry)}`;
      });
    }
  }
  const jailNode = document.get('jail');
  const allowLocalBinding = shown.jail?.allowLocalBinding;
  if (isMap(jailNode) && allowLocalBinding !== undefined) {
    const value = jailNode.get('allowLocalBinding', true);
    if (isScalar(value)) value.comment = ` ${whereFrom(allowLocalBinding)}`;
  }
  const privateNode = document.get('allowPrivateDestinations');
  if (isSeq(privateNode)) {
    privateNode.items.forEach((item, index) => {
      const entry = shown.allowPrivateDestinations?.[index];
      if (isScalar(item) && entry !== undefined) item.comment = ` ${whereFrom(entry)}`;
    });
  }
  return document.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/** "policy.yaml:4:3, extended at base.yaml:2:5" for a comment beside a value. */
function whereFrom(shown: { readonly source: string | null; readonly extendedAt: readonly string[] }): string {
  return [shown.source ?? 'added by the library API', ...shown.extendedAt.map((at) => `extended at ${at}`)].join(', ');
}

function flowList(node: unknown, quoted: boolean): void {
  if (!isSeq(node)) return;
  node.flow = true;
  if (!quoted) return;
  for (const item of node.items) if (item instanceof Scalar && typeof item.value === 'string') item.type = Scalar.QUOTE_DOUBLE;
}
