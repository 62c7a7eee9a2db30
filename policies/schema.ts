// The shape of a policy FILE as written in YAML, as a zod schema (and the JSON Schema editors use).
// loader.ts turns a validated file into the runtime Policy of types.ts; messages here are
// phrases that follow a field name ("rules[0].port must be ...").
import { z } from 'zod';
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

export const ruleFileSchema = z
  .strictObject(
    { id: ruleId, host, port: port.optional(), methods: methods.optional(), paths: paths.optional(), action, protocol },
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
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'must be a mapping with any of "denyRead", "allowRead", "allowWrite" and "denyWrite"' : undefined,
    },
  )
  .meta({
    description:
      'What the command run by `srt-gw run` may read and write. Paths are absolute ("/opt/keys"), "~" or "~/..." (your home directory), or relative to the directory of this policy file ("./build", "build"); symlinks are resolved, a directory covers everything below it, and globs are not supported.',
  });

export const policyFileSchema = z
  .strictObject(
    {
      $schema: z.string({ error: fieldError('a string (the URL or path of the policy JSON Schema)') }).optional(),
      version: z.literal(1, { error: fieldError('1, the only policy format version', 'add "version: 1" at the top of the file') }),
      rules,
      filesystem: filesystemFileSchema.optional(),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'must be a YAML mapping with "version: 1" and "rules:"' : undefined) },
  )
  .meta({ title: 'srt-gw policy', description: 'Which requests may leave the sandbox. Anything no rule allows is denied.' });

export type PolicyFile = z.output<typeof policyFileSchema>;
export type RuleFile = z.output<typeof ruleFileSchema>;
export type FilesystemFile = z.output<typeof filesystemFileSchema>;

export const POLICY_FILE_KEYS: readonly string[] = Object.keys(policyFileSchema.shape);
export const RULE_FILE_KEYS: readonly string[] = Object.keys(ruleFileSchema.shape);
export const FILESYSTEM_FILE_KEYS: readonly string[] = Object.keys(filesystemFileSchema.shape);

/** The JSON Schema of a policy file, for `$schema` and editors. */
export function policyJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(policyFileSchema, { io: 'input' });
}

type RefinementContext = { addIssue(issue: { code: 'custom'; message: string; path?: PropertyKey[] }): void };

function checkTcpRule(rule: unknown, ctx: RefinementContext): void {
  if (!isRecord(rule) || rule.protocol !== 'tcp') return;
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
