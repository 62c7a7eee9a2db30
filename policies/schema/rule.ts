// The schema of one entry of `rules:` and of the list: host, port, methods, paths, action, protocol,
// and the credentials and budget an allow rule may carry.
import { z } from 'zod';
import { parseHostPattern } from '../host.js';
import { normalizePathGlob } from '../path.js';
import { budgetFileSchema } from './budget.js';
import { credentialsSchema } from './credentials.js';
import { fieldError, isRecord, type RefinementContext } from './issues.js';

export const RULE_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** RFC 9110 token: what a method may be spelled with. */
export const HTTP_METHOD_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

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
    {
      id: ruleId,
      host,
      port: port.optional(),
      methods: methods.optional(),
      paths: paths.optional(),
      action,
      protocol,
      credentials: credentialsSchema.optional(),
      budget: budgetFileSchema.optional(),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'must be a mapping with at least "id" and "host"' : undefined) },
  )
  // Runs even when a field is invalid, so every problem is reported at once; the value is then
  // only partly checked, hence the defensive reads.
  .superRefine((rule, ctx) => checkTcpRule(rule, ctx), { when: () => true });

export const ruleListSchema = z
  .array(ruleFileSchema, { error: fieldError('a list of rules', 'add "rules:" followed by a list of rules') })
  .superRefine((list, ctx) => checkUniqueIds(list, ctx), { when: () => true })
  .meta({ description: 'Checked in order: a matching deny wins, else the first matching allow; no match is denied.' });

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
