// The shape of a policy FILE as written in YAML, as a zod schema (and the JSON Schema editors use).
// loader.ts turns a validated file into the runtime Policy of types.ts; messages here are
// phrases that follow a field name ("rules[0].port must be ...").
import { z } from 'zod';
import { parseByteSize } from './byte-size.js';
import { HOP_BY_HOP_HEADERS } from './hop-by-hop-headers.js';
import { parseHostPattern } from './host.js';
import { normalizePathGlob } from './path.js';

export const RULE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** RFC 9110 token: what a method may be spelled with. */
export const HTTP_METHOD_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

type IssueInput = { readonly input?: unknown };

/** "must be <expectation>", or "is missing; <hint>" when the key is absent and a hint is given. */
function fieldError(expectation: string, missingHint?: string): (issue: IssueInput) => string {
  return (issue) => (issue.input === undefined && missingHint !== undefined ? `is missing; ${missingHint}` : `must be ${expectation}`);
}

const idError = fieldError('1-64 characters from A-Z a-z 0-9 . _ -', 'give the rule an id, such as "api-read"');
const portError = fieldError('a whole number from 1 to 65535');
const methodError = fieldError('an HTTP method such as GET or POST');

const ruleId = z
  .string({ error: idError })
  .regex(RULE_ID_PATTERN, { error: idError })
  .meta({ description: 'Unique id; it appears in audit lines, metrics and 403 bodies.' });

const host = z
  .string({
    error: fieldError('a host name, "*.domain", an IP address or a CIDR block', 'add the host this rule is for, such as "api.example.test"'),
  })
  .superRefine((value, ctx) => {
    const parsed = parseHostPattern(value);
    if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
  })
  .meta({
    description:
      'An exact name ("api.example.test"), "*.example.test" (subdomains only, not example.test itself), "*" (any name, never an IP), an IP address or a CIDR block.',
  });

const port = z
  .number({ error: portError })
  .int({ error: portError })
  .min(1, { error: portError })
  .max(65535, { error: portError })
  .meta({ description: 'Destination port; leave out for any port. Required for protocol tcp.' });

const methods = z
  .array(z.string({ error: methodError }).regex(HTTP_METHOD_PATTERN, { error: methodError }), {
    error: fieldError('a list of HTTP methods, such as [GET, HEAD]'),
  })
  .min(1, { error: 'must not be empty; leave methods out to allow any method' })
  .meta({ description: 'HTTP methods (any case); leave out for any method.' });

const pathGlob = z.string({ error: fieldError('a path glob such as "/v1/**"') }).superRefine((value, ctx) => {
  const normalized = normalizePathGlob(value);
  if ('error' in normalized) ctx.addIssue({ code: 'custom', message: normalized.error });
});

const paths = z
  .array(pathGlob, { error: fieldError('a list of path globs, such as ["/v1/**"]') })
  .min(1, { error: 'must not be empty; leave paths out to allow any path' })
  .meta({
    description:
      'Path globs matched against the normalised path without the query string: "*" matches within one segment, "**" any number of segments ("/v1/**" matches /v1 and everything below it).',
  });

const action = z
  .enum(['allow', 'deny'], { error: fieldError('"allow" or "deny"') })
  .default('allow')
  .meta({ description: 'A matching deny always wins over allows.' });

const protocol = z
  .enum(['http', 'tcp'], { error: fieldError('"http" or "tcp"') })
  .default('http')
  .meta({ description: '"http": each request is checked; "tcp": an opaque TCP stream to host:port (needs port, no methods or paths).' });

/**
 * Headers that frame the message or name its target: a credential rule must never rewrite them.
 * The gateway's hop-by-hop set, plus Content-Length.
 */
const FRAMING_HEADERS: ReadonlySet<string> = new Set(['content-length', ...HOP_BY_HOP_HEADERS]);
const HEADER_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const SHA256_ENTRY_PATTERN = /^sha256:[0-9a-fA-F]{64}$/;

const headerNameError = fieldError('a header name such as "x-api-key" or "authorization"');
const credentialHeader = z
  .string({ error: headerNameError })
  .regex(HEADER_NAME_PATTERN, { error: headerNameError })
  .superRefine((value, ctx) => {
    if (value.startsWith(':') || FRAMING_HEADERS.has(value.toLowerCase())) {
      ctx.addIssue({ code: 'custom', message: `must not be ${JSON.stringify(value)}, which frames the request rather than carrying a credential` });
    }
  })
  .meta({ description: 'The header that carries the credential (any case), e.g. "x-api-key" or "authorization".' });

const queryNameError = fieldError('a query parameter name such as "key"');
const credentialQuery = z
  .string({ error: queryNameError })
  .min(1, { error: queryNameError })
  .max(128, { error: 'must be at most 128 characters' })
  .regex(/^[^\x00-\x20\x7f&=#]+$/, { error: 'must be a query parameter name without spaces, "&", "=" or "#", such as "key"' })
  .meta({ description: 'The query parameter that carries the credential; names compare after percent-decoding, ignoring case.' });

const scheme = z
  .enum(['bearer', 'basic'], { error: fieldError('"bearer" or "basic"') })
  .meta({ description: 'For header authorization only: "bearer" (the default, `Bearer <token>`) or "basic" (`Basic base64(user:password)`; the password is the credential).' });

const usernameError = fieldError('a user name without ":" or control characters');
const username = z
  .string({ error: usernameError })
  .regex(/^[^:\x00-\x1f\x7f]*$/, { error: usernameError })
  .meta({ description: 'For scheme basic with inject: the user name the gateway sends with the secret (default: the one the client sent, else empty).' });

const envNameError = fieldError('an environment variable name such as "EXAMPLE_API_KEY"');
const secretFileError = fieldError('a path: absolute, in your home directory ("~/.config/keys/example") or relative to this policy file');
const commandError = fieldError('a command as a list of arguments, such as ["pass", "show", "example-api"]');

export const secretSourceFileSchema = z
  .strictObject(
    {
      env: z
        .string({ error: envNameError })
        .regex(ENV_NAME_PATTERN, { error: envNameError })
        .optional()
        .meta({ description: "An environment variable of the gateway's process. Inside `srt-gw run`'s jail the variable holds a placeholder instead." }),
      file: z
        .string({ error: secretFileError })
        .superRefine((value, ctx) => {
          const problem = filesystemPathProblem(value);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional()
        .meta({ description: 'A file holding the secret (surrounding whitespace is trimmed): absolute, "~/..." or relative to this policy file. `srt-gw run` hides it from the jail.' }),
      command: z
        .array(
          z
            .string({ error: commandError })
            .regex(/^[^\x00]+$/, { error: 'must be a non-empty argument without NUL characters' }),
          { error: commandError },
        )
        .min(1, { error: 'must not be empty; name the program to run, such as ["pass", "show", "example-api"]' })
        .optional()
        .meta({ description: "A program run without a shell in the policy file's directory (at start and at each reload); its trimmed output is the secret." }),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'must be a mapping with one of "env", "file" or "command", such as { env: EXAMPLE_API_KEY }' : undefined,
    },
  )
  .superRefine((source, ctx) => exactlyOne(source, ['env', 'file', 'command'], ctx, 'must name one secret source: { env: NAME }, { file: PATH } or { command: [program, args...] }'), {
    when: () => true,
  })
  .meta({ description: 'Where the gateway reads the secret: exactly one of env, file or command.' });

const sha256Error = fieldError('"sha256:" followed by 64 hex digits, the SHA-256 of an allowed value (printf %s "$VALUE" | sha256sum)');
const requireList = z
  .array(z.string({ error: sha256Error }).regex(SHA256_ENTRY_PATTERN, { error: sha256Error }), {
    error: fieldError('a list of "sha256:<64 hex digits>" entries'),
  })
  .min(1, { error: 'must not be empty; list the SHA-256 of each allowed value' })
  .meta({ description: 'Only values whose SHA-256 is listed are forwarded ("sha256:<64 hex digits>"); any other value, or none, is refused.' });

export const credentialFileSchema = z
  .strictObject(
    {
      header: credentialHeader.optional(),
      query: credentialQuery.optional(),
      scheme: scheme.optional(),
      username: username.optional(),
      inject: secretSourceFileSchema.optional(),
      require: requireList.optional(),
      strip: z
        .literal(true, { error: fieldError('true (leave strip out otherwise)') })
        .optional()
        .meta({ description: 'Remove the header or query parameter before forwarding.' }),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'must be a mapping such as { header: x-api-key, inject: { env: EXAMPLE_API_KEY } }, or a list of them' : undefined,
    },
  )
  .superRefine((credential, ctx) => checkCredential(credential, ctx), { when: () => true })
  .meta({
    description:
      'Where the credential travels (header or query) and what the gateway does with it: inject (replace it with a secret only the gateway holds; any value but the placeholder is refused), require (allow only listed SHA-256 hashes) or strip.',
  });

const credentials = z
  .union([credentialFileSchema, z.array(credentialFileSchema).min(1, { error: 'must not be empty; leave credentials out instead' })], {
    error: fieldError('a mapping such as { header: x-api-key, inject: { env: EXAMPLE_API_KEY } }, or a list of them'),
  })
  .meta({ description: 'Credential handling for requests this rule allows: one entry, or a list for several headers or parameters.' });

const byteSizeError = fieldError('a size such as "10MiB" or a whole number of bytes');
const byteSize = z.union(
  [
    z.number({ error: byteSizeError }).superRefine((value, ctx) => {
      const parsed = parseByteSize(value);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    }),
    z.string({ error: byteSizeError }).superRefine((value, ctx) => {
      const parsed = parseByteSize(value);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    }),
  ],
  { error: byteSizeError },
);

export const budgetFileSchema = z
  .strictObject(
    {
      requestBytesPerMinute: byteSize
        .optional()
        .meta({ description: 'Request bytes (line, headers, body) this rule may send in any 60-second window (sliding, 1-second steps), e.g. "1MiB".' }),
      requestBytesPerRun: byteSize
        .optional()
        .meta({ description: 'Request bytes (line, headers, body) this rule may send while the gateway runs (one `srt-gw run`, or one `srt-gw serve`), e.g. "100MiB".' }),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'must be a mapping with "requestBytesPerMinute" and/or "requestBytesPerRun", such as { requestBytesPerRun: 100MiB }' : undefined,
    },
  )
  .superRefine(
    (budget, ctx) => {
      if (isRecord(budget) && !hasUnknownKey(ctx) && budget.requestBytesPerMinute === undefined && budget.requestBytesPerRun === undefined) {
        ctx.addIssue({ code: 'custom', path: [], message: 'must set "requestBytesPerMinute", "requestBytesPerRun" or both, such as { requestBytesPerRun: 100MiB }' });
      }
    },
    { when: () => true },
  )
  .meta({ description: 'Egress budget: beyond it, requests under this rule get 429. Sizes are whole bytes or strings such as "10MiB" (KiB/MiB/GiB = 1024-based, KB/MB/GB = 1000-based).' });

export const ruleFileSchema = z
  .strictObject(
    {
      id: ruleId,
      host,
      port: port.optional(),
      methods: methods.optional(),
      paths: paths.optional(),
      action,
      protocol,
      credentials: credentials.optional(),
      budget: budgetFileSchema.optional(),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'must be a mapping with at least "id" and "host"' : undefined) },
  )
  // Runs even when a field is invalid, so every problem is reported at once; the value is then
  // only partly checked, hence the defensive reads.
  .superRefine((rule, ctx) => checkTcpRule(rule, ctx), { when: () => true });

const rules = z
  .array(ruleFileSchema, { error: fieldError('a list of rules', 'add "rules:" followed by a list of rules') })
  .superRefine((list, ctx) => checkUniqueIds(list, ctx), { when: () => true })
  .meta({ description: 'Checked in order: a matching deny wins, else the first matching allow; no match is denied.' });

/**
 * Why a `filesystem:` path cannot be used, or undefined. Shared with the srt importer, which skips
 * such entries instead of failing.
 */
export function filesystemPathProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty; write a path such as "~/.npm", "/opt/cache" or "./build"';
  if (value.includes('\0')) return 'must not contain a NUL character';
  if (/[\n\r]/.test(value)) return 'must not contain a line break';
  if (/^~[^/]/.test(value)) {
    return `names another user's home directory; only "~" and "~/..." (your own home) are expanded, so write the absolute path instead`;
  }
  if (/[*?[]/.test(value)) {
    return 'must not contain "*", "?" or "["; globs are not supported: name the directory, which covers everything below it';
  }
  return undefined;
}

const filesystemPath = z
  .string({ error: fieldError('a path: absolute ("/opt/keys"), in your home directory ("~/.npm") or relative to this policy file ("./build")') })
  .superRefine((value, ctx) => {
    const problem = filesystemPathProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

function filesystemPaths(description: string) {
  return z
    .array(filesystemPath, { error: fieldError('a list of paths, such as ["~/.npm", "./build"]') })
    .optional()
    .meta({ description });
}

export const filesystemFileSchema = z
  .strictObject(
    {
      denyRead: filesystemPaths(
        'Hidden inside the jail (reading gives "Permission denied"), besides the built-in credential paths such as ~/.ssh and ~/.aws.',
      ),
      allowRead: filesystemPaths(
        "Readable again although inside a hidden path (denyRead or built-in). Cannot re-expose srt-gw's own CA and state directories.",
      ),
      allowWrite: filesystemPaths(
        "Writable besides the working directory and the jail's private /tmp. Must exist when the command starts; shell startup files, .git/hooks, .git/config and editor settings inside stay read-only.",
      ),
      denyWrite: filesystemPaths('Read-only even inside the working directory or an allowWrite path; wins over allowWrite.'),
      writeMode: z
        .enum(['direct', 'overlay'], { error: fieldError('"direct" or "overlay"') })
        .optional()
        .meta({
          description:
            'direct (default): the command writes the working directory and allowWrite paths in place. overlay (Linux): its writes go to a private layer in your state directory; when it ends, srt-gw applies the safe ones and holds the rest (git hooks and configuration, startup and policy files, new executable bits, outside symlinks, files you changed meanwhile) for `srt-gw changes`.',
        }),
      deletes: z
        .enum(['apply', 'hold'], { error: fieldError('"apply" or "hold"') })
        .optional()
        .meta({ description: 'With writeMode overlay: apply (default) the files and directories the command deleted, or hold every deletion for review.' }),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type'
          ? 'must be a mapping with any of "denyRead", "allowRead", "allowWrite", "denyWrite", "writeMode" and "deletes"'
          : undefined,
    },
  )
  .meta({
    description:
      'What the command run by `srt-gw run` may read and write. Paths are absolute ("/opt/keys"), "~" or "~/..." (your home directory), or relative to the directory of this policy file ("./build", "build"); symlinks are resolved, a directory covers everything below it, and globs are not supported.',
  });

export const jailFileSchema = z
  .strictObject(
    {
      allowLocalBinding: z
        .boolean({ error: fieldError('true or false') })
        .optional()
        .meta({
          description:
            'Let the command listen on loopback (default false). macOS: without it the Seatbelt profile refuses every bind and accept. Linux: accepted and changes nothing — the jail has its own private loopback, so a listener there is always allowed and reachable only from inside the jail.',
        }),
      allowUnixSockets: z
        .array(
          z.string().refine((path) => path.startsWith('/') || path === '~' || path.startsWith('~/'), {
            error: 'must be an absolute path or start with "~/" (your home directory), such as "/var/run/docker.sock" or "~/.ssh/agent.sock"',
          }),
          { error: fieldError('a list of socket paths') },
        )
        .optional()
        .meta({
          description:
            'Host unix sockets the command may connect to (absolute or "~/..." paths; symlinks are followed). Linux: every other unix socket the jail did not create itself is refused (EACCES), wherever it is visible; a socket under /run or /tmp is mounted into the jail\'s private /run or /tmp. Lists from extended files are appended.',
        }),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'must be a mapping such as { allowLocalBinding: true }' : undefined) },
  )
  .meta({ description: 'How `srt-gw run` jails the command, beyond its network requests and files.' });

export const PRESET_REFERENCE_PREFIX = 'preset:';
/** Preset names: lower-case words joined by "-", as the file names in policies/presets/ are. */
export const PRESET_NAME_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

const presetNameError = fieldError('a preset name such as "npm-read" (lower-case letters, digits and "-")');
const presetName = z.string({ error: presetNameError }).regex(PRESET_NAME_PATTERN, { error: presetNameError });

/** Why an `extends:` string cannot be used, or undefined. */
function extendsReferenceProblem(value: string): string | undefined {
  if (value.startsWith(PRESET_REFERENCE_PREFIX)) {
    const name = value.slice(PRESET_REFERENCE_PREFIX.length);
    return PRESET_NAME_PATTERN.test(name) ? undefined : 'must name a preset as "preset:NAME", such as "preset:npm-read"';
  }
  if (value === '') return 'must not be empty; write "preset:NAME" or the path of a policy file, such as "./base.yaml"';
  if (/[\x00\n\r]/.test(value)) return 'must not contain a NUL character or a line break';
  if (value.startsWith('~')) return 'must be a path relative to this policy file ("./base.yaml") or absolute; "~" is not expanded here';
  return undefined;
}

const extendsReference = z
  .string({ error: fieldError('"preset:NAME", the path of a policy file such as "./base.yaml", or { preset: NAME, with: { ... } }') })
  .superRefine((value, ctx) => {
    const problem = extendsReferenceProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

export const extendsPresetFileSchema = z.strictObject(
  {
    preset: presetName.meta({ description: 'The preset, such as "github" (see README, "Presets").' }),
    with: z
      .record(z.string(), z.unknown(), { error: fieldError('a mapping of parameter names to values, such as { pushRepos: ["me/project"] }') })
      .optional()
      .meta({ description: "The preset's parameters; each preset documents its own." }),
  },
  {
    error: (issue) => (issue.code === 'invalid_type' ? 'must be "preset:NAME", the path of a policy file, or a mapping such as { preset: github, with: { pushRepos: ["me/project"] } }' : undefined),
  },
);

const extendsList = z
  .array(z.union([extendsReference, extendsPresetFileSchema], { error: fieldError('"preset:NAME", the path of a policy file such as "./base.yaml", or { preset: NAME, with: { ... } }') }), {
    error: fieldError('a list of presets and policy files, such as ["preset:npm-read", "./team.yaml"]'),
  })
  .meta({
    description:
      'Presets ("preset:npm-read", or { preset: github, with: { pushRepos: ["me/project"] } } for one with parameters) and policy files (relative to this file) whose rules come first, in this order, before the rules of this file. Rule ids must stay unique across all of them; filesystem lists are appended and deduplicated; a jail setting written in a later file overrides an earlier one.',
  });

const privateDestinationError = fieldError('a CIDR block such as "127.0.0.0/8" or "10.1.2.0/24", or one IP address');
const privateDestination = z.string({ error: privateDestinationError }).superRefine((value, ctx) => {
  const parsed = parseHostPattern(value);
  if ('error' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.error });
  } else if (parsed.pattern.kind !== 'address' && parsed.pattern.kind !== 'range') {
    ctx.addIssue({ code: 'custom', message: `must be a CIDR block such as "127.0.0.0/8" or one IP address, not a host name (got ${JSON.stringify(value)})` });
  }
});

const allowPrivateDestinations = z
  .array(privateDestination, { error: fieldError('a list of CIDR blocks, such as ["127.0.0.0/8"]') })
  .meta({
    description:
      'Private ranges the gateway may connect to when an allowed name resolves into them. By default, after resolving a name the gateway refuses loopback, RFC 1918, CGNAT, link-local (cloud metadata), unique-local, multicast and its own addresses unless a rule names the address or range, or --resolve pins the name to it.',
  });

export const dnsFileSchema = z
  .strictObject(
    {
      maxNamesPerWildcard: z
        .number({ error: fieldError('a whole number of names, such as 300') })
        .int({ error: fieldError('a whole number of names, such as 300') })
        .min(1, { error: fieldError('at least 1') })
        .max(1_000_000, { error: fieldError('at most 1000000') })
        .optional()
        .meta({
          description:
            'Distinct names one wildcard rule ("*.example.test", "*") may admit per gateway run (default 300). Each new name under a wildcard costs an upstream DNS lookup that reaches the zone\'s own servers when the program connects, so many new names are a DNS tunnel; names beyond the cap are refused.',
        }),
    },
    { error: fieldError('a mapping, such as { maxNamesPerWildcard: 300 }') },
  )
  .meta({ description: "Settings of the gateway's DNS for the sandbox." });

const policyFileShape = {
  $schema: z.string({ error: fieldError('a string (the URL or path of the policy JSON Schema)') }).optional(),
  version: z.literal(1, { error: fieldError('1, the only policy format version', 'add "version: 1" at the top of the file') }),
  extends: extendsList.optional(),
  rules: rules.optional(),
  filesystem: filesystemFileSchema.optional(),
  jail: jailFileSchema.optional(),
  allowPrivateDestinations: allowPrivateDestinations.optional(),
  dns: dnsFileSchema.optional(),
};

/** A file that extends others may leave its own rules out; any other file needs "rules:". */
function checkRulesPresent(file: unknown, ctx: RefinementContext): void {
  if (isRecord(file) && file.rules === undefined && file.extends === undefined) {
    ctx.addIssue({ code: 'custom', path: ['rules'], message: 'is missing; add "rules:" followed by a list of rules' });
  }
}

export const policyFileSchema = z
  .strictObject(policyFileShape, {
    error: (issue) => (issue.code === 'invalid_type' ? 'must be a YAML mapping with "version: 1" and "rules:"' : undefined),
  })
  .superRefine((file, ctx) => checkRulesPresent(file, ctx), { when: () => true })
  .meta({ title: 'srt-gw policy', description: 'Which requests may leave the sandbox. Anything no rule allows is denied.' });

const parameterNameError = fieldError('a parameter name such as "pushRepos" (letters and digits, starting with a letter)');
export const PARAMETER_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9]*$/;

/** The types a preset parameter can have; presets.ts holds the schema each value is checked with. */
export const PRESET_PARAMETER_TYPES = ['env-name', 'repositories'] as const;

const presetParameter = z.strictObject({
  type: z.enum(PRESET_PARAMETER_TYPES, { error: fieldError(`one of ${PRESET_PARAMETER_TYPES.map((type) => `"${type}"`).join(', ')}`) }),
  description: z.string({ error: fieldError('a sentence saying what the parameter controls') }),
  default: z.unknown().optional(),
});

/** The `preset:` section that only files in policies/presets/ have. */
export const presetSectionSchema = z.strictObject({
  description: z.string({ error: fieldError('one sentence saying what the preset allows') }),
  parameters: z
    .record(z.string({ error: parameterNameError }).regex(PARAMETER_NAME_PATTERN, { error: parameterNameError }), presetParameter, {
      error: fieldError('a mapping of parameter names to { type, description, default }'),
    })
    .optional(),
});

/** A preset file: a policy file plus its `preset:` section. */
export const presetFileSchema = z
  .strictObject({ ...policyFileShape, preset: presetSectionSchema }, {
    error: (issue) => (issue.code === 'invalid_type' ? 'must be a YAML mapping with "version: 1", "preset:" and "rules:"' : undefined),
  })
  .superRefine((file, ctx) => checkRulesPresent(file, ctx), { when: () => true });

export type PolicyFile = z.output<typeof policyFileSchema>;
export type PresetFile = z.output<typeof presetFileSchema>;
export type PresetSection = z.output<typeof presetSectionSchema>;
export type ExtendsEntryFile = NonNullable<PolicyFile['extends']>[number];
export type RuleFile = z.output<typeof ruleFileSchema>;
export type FilesystemFile = z.output<typeof filesystemFileSchema>;
export type JailFile = z.output<typeof jailFileSchema>;
export type CredentialFile = z.output<typeof credentialFileSchema>;
export type BudgetFile = z.output<typeof budgetFileSchema>;
export type DnsFile = z.output<typeof dnsFileSchema>;

export const POLICY_FILE_KEYS: readonly string[] = Object.keys(policyFileSchema.shape);
export const EXTENDS_PRESET_FILE_KEYS: readonly string[] = Object.keys(extendsPresetFileSchema.shape);
export const RULE_FILE_KEYS: readonly string[] = Object.keys(ruleFileSchema.shape);
export const FILESYSTEM_FILE_KEYS: readonly string[] = Object.keys(filesystemFileSchema.shape);
export const JAIL_FILE_KEYS: readonly string[] = Object.keys(jailFileSchema.shape);
export const DNS_FILE_KEYS: readonly string[] = Object.keys(dnsFileSchema.shape);
export const CREDENTIAL_FILE_KEYS: readonly string[] = Object.keys(credentialFileSchema.shape);
export const SECRET_SOURCE_FILE_KEYS: readonly string[] = Object.keys(secretSourceFileSchema.shape);
export const BUDGET_FILE_KEYS: readonly string[] = Object.keys(budgetFileSchema.shape);

/** The JSON Schema of a policy file, for `$schema` and editors. */
export function policyJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(policyFileSchema, { io: 'input' });
  // A file that extends others may leave "rules" out; zod cannot say "one of these keys".
  return { ...schema, anyOf: [{ required: ['rules'] }, { required: ['extends'] }] };
}

type RefinementContext = { addIssue(issue: { code: 'custom'; message: string; path?: PropertyKey[] }): void };

function checkTcpRule(rule: unknown, ctx: RefinementContext): void {
  if (!isRecord(rule)) return;
  for (const key of ['credentials', 'budget']) {
    if (rule[key] === undefined) continue;
    if (rule.action === 'deny') {
      ctx.addIssue({ code: 'custom', path: [key], message: 'is not allowed on a deny rule, which forwards nothing; remove it' });
    } else if (rule.protocol === 'tcp') {
      ctx.addIssue({ code: 'custom', path: [key], message: 'is not allowed with protocol tcp, which carries no HTTP requests; remove it or use protocol http' });
    }
  }
  if (Array.isArray(rule.credentials)) checkDistinctLocations(rule.credentials, ctx);
  if (rule.protocol !== 'tcp') return;
  if (rule.port === undefined) {
    ctx.addIssue({ code: 'custom', path: [], message: 'has protocol tcp and so needs a port; add one, such as "port: 22"' });
  }
  for (const key of ['methods', 'paths']) {
    if (rule[key] !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: 'is not allowed with protocol tcp, which carries no HTTP requests; remove it or use protocol http',
      });
    }
  }
}

/** Two entries for one header or parameter would contradict each other. */
function checkDistinctLocations(list: unknown[], ctx: RefinementContext): void {
  const firstIndexOf = new Map<string, number>();
  list.forEach((entry, index) => {
    if (!isRecord(entry)) return;
    const key =
      typeof entry.header === 'string' ? `header ${entry.header.toLowerCase()}` : typeof entry.query === 'string' ? `query parameter ${entry.query.toLowerCase()}` : null;
    if (key === null) return;
    const first = firstIndexOf.get(key);
    if (first === undefined) firstIndexOf.set(key, index);
    else ctx.addIssue({ code: 'custom', path: ['credentials', index], message: `names the same ${key} as credentials[${first}]; keep one entry per header or parameter` });
  });
}

function checkCredential(credential: unknown, ctx: RefinementContext): void {
  // A misspelt key is reported as unknown; "needs one of ..." on top of that would be noise.
  if (!isRecord(credential) || hasUnknownKey(ctx)) return;
  const hasHeader = credential.header !== undefined;
  const hasQuery = credential.query !== undefined;
  if (!hasHeader && !hasQuery) {
    ctx.addIssue({ code: 'custom', path: [], message: 'needs "header:" or "query:" saying where the credential is sent, such as "header: x-api-key"' });
  } else if (hasHeader && hasQuery) {
    ctx.addIssue({ code: 'custom', path: ['query'], message: 'cannot be given together with header; one entry handles one place (use a list of entries for both)' });
  }
  exactlyOne(credential, ['inject', 'require', 'strip'], ctx, 'needs one of "inject: { env: NAME }", "require: [sha256:...]" or "strip: true"');
  const isAuthorization = typeof credential.header === 'string' && credential.header.toLowerCase() === 'authorization';
  if (credential.scheme !== undefined && !isAuthorization) {
    ctx.addIssue({ code: 'custom', path: ['scheme'], message: 'is only for "header: authorization"; other headers carry the credential as their whole value' });
  }
  if (credential.username !== undefined && !(isAuthorization && credential.scheme === 'basic' && credential.inject !== undefined)) {
    ctx.addIssue({ code: 'custom', path: ['username'], message: 'is only for "header: authorization" with "scheme: basic" and inject; remove it' });
  }
}

/** Adds one issue when none or several of `keys` are set. */
function exactlyOne(value: unknown, keys: readonly string[], ctx: RefinementContext, missing: string): void {
  if (!isRecord(value) || hasUnknownKey(ctx)) return;
  const present = keys.filter((key) => value[key] !== undefined);
  if (present.length === 0) ctx.addIssue({ code: 'custom', path: [], message: missing });
  else if (present.length > 1) {
    ctx.addIssue({ code: 'custom', path: [present[1]!], message: `cannot be given together with ${present[0]!}; choose one of ${keys.join(', ')}` });
  }
}

/** Whether the mapping being refined had a key its schema does not know (already reported as unknown). */
function hasUnknownKey(ctx: RefinementContext): boolean {
  const issues = (ctx as { issues?: { code?: string; path?: unknown[] }[] }).issues ?? [];
  return issues.some((issue) => issue.code === 'unrecognized_keys' && (issue.path?.length ?? 0) === 0);
}

function checkUniqueIds(list: unknown, ctx: RefinementContext): void {
  if (!Array.isArray(list)) return;
  const firstIndexOf = new Map<string, number>();
  list.forEach((rule: unknown, index) => {
    if (!isRecord(rule) || typeof rule.id !== 'string') return;
    const first = firstIndexOf.get(rule.id);
    if (first === undefined) firstIndexOf.set(rule.id, index);
    else ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `must be unique, but rules[${first}] already uses it` });
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
