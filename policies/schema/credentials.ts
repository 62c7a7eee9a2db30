// The schema of a rule's `credentials:`: where the credential travels (header or query) and what the
// gateway does with it (inject a secret from env, file or command; require listed hashes; strip).
import { z } from 'zod';
import { HOP_BY_HOP_HEADERS } from '../hop-by-hop-headers.js';
import { filesystemPathProblem } from './filesystem.js';
import { exactlyOne, fieldError, hasUnknownKey, isRecord, type RefinementContext } from './issues.js';

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

export const credentialsSchema = z
  .union([credentialFileSchema, z.array(credentialFileSchema).min(1, { error: 'must not be empty; leave credentials out instead' })], {
    error: fieldError('a mapping such as { header: x-api-key, inject: { env: EXAMPLE_API_KEY } }, or a list of them'),
  })
  .meta({ description: 'Credential handling for requests this rule allows: one entry, or a list for several headers or parameters.' });

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
