// The schema of the `preset:` section that only files in policies/presets/ have: what the preset
// allows and the parameters it takes.
import { z } from 'zod';
import { fieldError } from './issues.js';

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
