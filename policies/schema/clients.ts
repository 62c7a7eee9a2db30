// The schema of the `clients:` section: who may use a fleet gateway (`srt-gw serve`), each client
// with exactly one way to prove it (a static token, a JWT from an issuer, a client certificate, or
// a token minted by `srt-gw token issue`) and the rule ids it may use.
import { z } from 'zod';
import { RESERVED_CLIENT_ID } from '../types.js';
import { RULE_ID_PATTERN } from './rule.js';
import { filesystemPathProblem } from './filesystem.js';
import { exactlyOne, fieldError, isRecord, type RefinementContext } from './issues.js';

/** Client ids travel as Basic user names, JWT subjects and metric labels: no ":" and nothing odd. */
export const CLIENT_ID_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
export const CLIENT_CREDENTIAL_KINDS = ['token', 'jwt', 'mtls', 'issued'] as const;
export const TOKEN_SHA256_PATTERN = /^[0-9a-fA-F]{64}$/;
const MAX_GLOB_LENGTH = 1024;
const MAX_STRING_LENGTH = 1024;

const idError = fieldError('a letter followed by up to 63 letters, digits, "_" or "-", such as "ci" or "build-runners"', 'give the client an id, such as "ci"');
const clientId = z
  .string({ error: idError })
  .regex(CLIENT_ID_PATTERN, { error: idError })
  .refine((value) => value !== RESERVED_CLIENT_ID, { error: `must not be "${RESERVED_CLIENT_ID}", the metric label of requests from unknown clients; choose another id` })
  .meta({ description: 'Unique id; it appears in audit lines and metrics, and is the Basic user name and the subject of tokens minted by srt-gw token issue.' });

/** Why a subject glob cannot be used, or undefined. */
function globProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > MAX_GLOB_LENGTH) return `must be at most ${MAX_GLOB_LENGTH} characters`;
  if (/[\x00-\x1f\x7f]/.test(value)) return 'must not contain control characters or line breaks';
  if (value.includes('***')) return 'must not have more than two "*" in a row: "*" matches within one ":" or "/" separated part, "**" across them';
  return undefined;
}

function glob(expectation: string, description: string, extraProblem?: (value: string) => string | undefined) {
  return z
    .string({ error: fieldError(expectation) })
    .superRefine((value, ctx) => {
      const problem = globProblem(value) ?? extraProblem?.(value);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .meta({ description });
}

const plainString = (expectation: string, description: string) =>
  z
    .string({ error: fieldError(expectation) })
    .min(1, { error: `must not be empty; write ${expectation}` })
    .max(MAX_STRING_LENGTH, { error: `must be at most ${MAX_STRING_LENGTH} characters` })
    .regex(/^[^\x00-\x1f\x7f]*$/, { error: 'must not contain control characters or line breaks' })
    .meta({ description });

const sha256Error = fieldError('64 hex digits, the SHA-256 of the token (printf %s "$TOKEN" | sha256sum)');
const tokenCredentialSchema = z
  .strictObject(
    { sha256: z.string({ error: sha256Error }).regex(TOKEN_SHA256_PATTERN, { error: sha256Error }).meta({ description: 'SHA-256 of the token, 64 hex digits; the token itself never appears in a policy.' }) },
    { error: fieldError('a mapping such as { sha256: "<64 hex digits>" }') },
  )
  .meta({ description: 'A static token, sent as Proxy-Authorization: Bearer TOKEN or Basic with user name = client id and password = TOKEN.' });

/** A JWKS URL the gateway may fetch: https, or http on loopback only (a sidecar, a test). */
export function jwksUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return `must be an absolute URL such as "https://issuer.example.test/.well-known/jwks.json" (got ${JSON.stringify(value)})`;
  }
  if (url.username !== '' || url.password !== '') return 'must not hold a user name or password';
  if (url.hash !== '') return 'must not have a "#" fragment';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && isLoopbackHostname(url.hostname)) return undefined;
  return 'must be an https:// URL (http:// only to 127.0.0.1, [::1] or localhost): keys fetched in the clear could be replaced on the way';
}

function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

const jwksFileError = fieldError('a path: absolute, "~/..." or relative to this policy file');
const subjectGlob = glob(
  'a subject glob such as "system:serviceaccount:agents:*"',
  'Allowed "sub" claim: "*" matches within one ":" or "/" separated part, "**" across parts; other characters match themselves.',
);

const jwtCredentialSchema = z
  .strictObject(
    {
      issuer: plainString('the issuer ("iss") the tokens carry, such as "https://kubernetes.default.svc"', 'Required "iss" claim, compared exactly.'),
      audience: plainString('the audience ("aud") the tokens are made for, such as "srt-gw"', 'Required "aud" claim (one of the token\'s audiences), compared exactly.'),
      jwksFile: z
        .string({ error: jwksFileError })
        .superRefine((value, ctx) => {
          const problem = filesystemPathProblem(value);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional()
        .meta({ description: "The issuer's public keys (a JSON Web Key Set file): absolute, \"~/...\" or relative to this policy file. Read again when the file (or the symlink it is reached through) changes." }),
      jwksUrl: z
        .string({ error: fieldError('an https:// URL of a JSON Web Key Set') })
        .superRefine((value, ctx) => {
          const problem = jwksUrlProblem(value);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional()
        .meta({ description: "The issuer's JSON Web Key Set URL: https, or http to loopback only. Cached, fetched again on an unknown key id (at most every 30 s) and every 10 minutes." }),
      subject: z
        .union([subjectGlob, z.array(subjectGlob).min(1, { error: 'must not be empty; leave subject out to accept any subject' })], {
          error: fieldError('a subject glob such as "system:serviceaccount:agents:*", or a list of them'),
        })
        .optional()
        .meta({ description: 'Allowed "sub" claims (globs); absent = any subject the issuer signs for this audience.' }),
    },
    { error: fieldError('a mapping with issuer, audience and jwksFile or jwksUrl') },
  )
  .superRefine((jwt, ctx) => exactlyOne(jwt, ['jwksFile', 'jwksUrl'], ctx, 'needs the issuer\'s keys: "jwksFile: PATH" or "jwksUrl: https://..."'), { when: () => true })
  .meta({ description: 'A signed JWT (such as a Kubernetes projected service-account token), sent as Proxy-Authorization: Bearer JWT or Basic with user name = client id.' });

const commonNameGlob = glob(
  '"CN=" followed by a common-name glob, such as "CN=runner-*"',
  'The certificate subject\'s common name, written "CN=<glob>"; other subject fields are not matched.',
  (value) => (value.startsWith('CN=') && value.length > 3 ? undefined : 'must be "CN=" followed by a common-name glob, such as "CN=runner-*"; other subject fields are not matched'),
);
const uriGlob = glob(
  'a URI glob such as "spiffe://corp/ns/agents/*"',
  "The certificate's one URI subject alternative name (a SPIFFE id, say), as a glob.",
  (value) => (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(value) ? undefined : 'must start with a URI scheme, such as "spiffe://corp/ns/agents/*"'),
);

const mtlsCredentialSchema = z
  .strictObject({ subject: commonNameGlob.optional(), uri: uriGlob.optional() }, { error: fieldError('a mapping such as { subject: "CN=runner-*" } or { uri: "spiffe://corp/ns/agents/*" }') })
  .superRefine((mtls, ctx) => exactlyOne(mtls, ['subject', 'uri'], ctx, 'needs "subject: CN=<glob>" or "uri: <glob>" saying which certificates are this client'), { when: () => true })
  .meta({ description: 'A client certificate that the TLS listener verified against its client CA: its common name or URI SAN.' });

const issuedCredentialSchema = z
  .strictObject({}, { error: fieldError('an empty mapping: issued: {}') })
  .meta({ description: "Tokens minted by `srt-gw token issue --client ID`, signed with the key in the gateway's state directory." });

const ruleReferenceError = fieldError('a rule id such as "npm-read"');
const clientRules = z
  .array(z.string({ error: ruleReferenceError }).regex(RULE_ID_PATTERN, { error: ruleReferenceError }), { error: fieldError('a list of rule ids, such as [npm-read, github-read]') })
  .min(1, { error: 'must not be empty; leave rules out to let the client use every rule' })
  .meta({ description: 'Ids of the allow rules this client may use (deny rules apply to every client); absent = all rules.' });

export const clientFileSchema = z
  .strictObject(
    {
      id: clientId,
      token: tokenCredentialSchema.optional(),
      jwt: jwtCredentialSchema.optional(),
      mtls: mtlsCredentialSchema.optional(),
      issued: issuedCredentialSchema.optional(),
      rules: clientRules.optional(),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'must be a mapping with "id" and one of "token", "jwt", "mtls" or "issued"' : undefined) },
  )
  .superRefine((client, ctx) => exactlyOne(client, CLIENT_CREDENTIAL_KINDS, ctx, 'needs one way to authenticate: "token", "jwt", "mtls" or "issued"'), { when: () => true })
  .meta({ description: 'One client of the gateway and how it proves who it is.' });

export const clientListSchema = z
  .array(clientFileSchema, { error: fieldError('a list of clients, each with an id and one of token, jwt, mtls or issued') })
  .min(1, { error: 'must not be empty: no request could authenticate; leave clients out to serve requests without client credentials' })
  .superRefine((list, ctx) => checkDistinctClients(list, ctx), { when: () => true })
  .meta({
    description:
      'Who may use the gateway. When present, `srt-gw serve` refuses (407) every request without valid client credentials: Proxy-Authorization (Bearer, or Basic CLIENT:TOKEN) or a verified client certificate.',
  });

/** Ids must be unique, and two token clients with one token could not be told apart. */
function checkDistinctClients(list: unknown, ctx: RefinementContext): void {
  if (!Array.isArray(list)) return;
  const firstIdAt = new Map<string, number>();
  const firstTokenAt = new Map<string, number>();
  list.forEach((client: unknown, index) => {
    if (!isRecord(client)) return;
    if (typeof client.id === 'string') {
      const first = firstIdAt.get(client.id);
      if (first === undefined) firstIdAt.set(client.id, index);
      else ctx.addIssue({ code: 'custom', path: [index, 'id'], message: `must be unique, but clients[${first}] already uses it` });
    }
    const sha256 = isRecord(client.token) && typeof client.token.sha256 === 'string' ? client.token.sha256.toLowerCase() : undefined;
    if (sha256 === undefined) return;
    const first = firstTokenAt.get(sha256);
    if (first === undefined) firstTokenAt.set(sha256, index);
    else ctx.addIssue({ code: 'custom', path: [index, 'token', 'sha256'], message: `is the same token as clients[${first}]'s; give each client its own token` });
  });
}

/** The keys allowed at a path inside `clients:`, for "unknown key, did you mean ..." messages. */
export function clientKeysAt(path: readonly PropertyKey[]): readonly string[] {
  const section = path[2];
  if (path.length >= 3 && typeof section === 'string') {
    const schema = { token: tokenCredentialSchema, jwt: jwtCredentialSchema, mtls: mtlsCredentialSchema, issued: issuedCredentialSchema }[section];
    if (schema !== undefined) return Object.keys(schema.shape);
  }
  return Object.keys(clientFileSchema.shape);
}
