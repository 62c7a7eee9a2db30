// The schema of `extends:`: presets ("preset:NAME" or { preset, with }) and policy files whose rules
// come first.
import { z } from 'zod';
import { fieldError } from './issues.js';

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

export const extendsListSchema = z
  .array(z.union([extendsReference, extendsPresetFileSchema], { error: fieldError('"preset:NAME", the path of a policy file such as "./base.yaml", or { preset: NAME, with: { ... } }') }), {
    error: fieldError('a list of presets and policy files, such as ["preset:npm-read", "./team.yaml"]'),
  })
  .meta({
    description:
      'Presets ("preset:npm-read", or { preset: github, with: { pushRepos: ["me/project"] } } for one with parameters) and policy files (relative to this file) whose rules come first, in this order, before the rules of this file. Rule ids must stay unique across all of them; filesystem lists are appended and deduplicated; a jail setting written in a later file overrides an earlier one.',
  });
