// The shape of a policy FILE as written in YAML, as a zod schema (and the JSON Schema editors use).
// loader.ts turns a validated file into the runtime Policy of types.ts. Each section has its module
// in schema/; this one puts them together and is what the rest of srt-gw imports.
import { z } from 'zod';
import { budgetFileSchema } from './schema/budget.js';
import { clientListSchema } from './schema/clients.js';
import { credentialFileSchema, secretSourceFileSchema } from './schema/credentials.js';
import { dnsFileSchema } from './schema/dns.js';
import { extendsListSchema, extendsPresetFileSchema } from './schema/extends.js';
import { filesystemFileSchema } from './schema/filesystem.js';
import { fieldError, isRecord, type RefinementContext } from './schema/issues.js';
import { jailFileSchema } from './schema/jail.js';
import { presetSectionSchema } from './schema/preset.js';
import { allowPrivateDestinationsSchema } from './schema/private-destinations.js';
import { ruleFileSchema, ruleListSchema } from './schema/rule.js';

export { budgetFileSchema } from './schema/budget.js';
export { CLIENT_ID_PATTERN, clientFileSchema, clientKeysAt } from './schema/clients.js';
export { credentialFileSchema, ENV_NAME_PATTERN, SHA256_ENTRY_PATTERN, secretSourceFileSchema } from './schema/credentials.js';
export { dnsFileSchema } from './schema/dns.js';
export { extendsPresetFileSchema, PRESET_NAME_PATTERN, PRESET_REFERENCE_PREFIX } from './schema/extends.js';
export { filesystemFileSchema, filesystemPathProblem } from './schema/filesystem.js';
export { jailFileSchema } from './schema/jail.js';
export { PARAMETER_NAME_PATTERN, PRESET_PARAMETER_TYPES, presetSectionSchema } from './schema/preset.js';
export { HTTP_METHOD_PATTERN, RULE_ID_PATTERN, ruleFileSchema } from './schema/rule.js';

const policyFileShape = {
  $schema: z.string({ error: fieldError('a string (the URL or path of the policy JSON Schema)') }).optional(),
  version: z.literal(1, { error: fieldError('1, the only policy format version', 'add "version: 1" at the top of the file') }),
  extends: extendsListSchema.optional(),
  rules: ruleListSchema.optional(),
  filesystem: filesystemFileSchema.optional(),
  jail: jailFileSchema.optional(),
  allowPrivateDestinations: allowPrivateDestinationsSchema.optional(),
  dns: dnsFileSchema.optional(),
  clients: clientListSchema.optional(),
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
export type ClientFile = NonNullable<PolicyFile['clients']>[number];

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
