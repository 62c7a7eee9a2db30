// The presets library: API-shaped policies shipped as policies/presets/NAME.yaml, which a policy
// pulls in with `extends: [preset:NAME]`. This module finds them, checks the values a policy gives
// a preset's parameters (`with:`) and fills them into the preset's rules.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from '../package-root.js';
import { describeValue, formatFieldPath, suggestKey } from './issue-messages.js';
import { ENV_NAME_PATTERN, PRESET_PARAMETER_TYPES, type PresetSection } from './schema.js';

/** A parameter's value once checked: a string, a list of strings, or nothing (left out, no default). */
export type ParameterValue = string | readonly string[] | undefined;

const PRESET_EXTENSION = '.yaml';

/** The directory of the preset files, shipped in the package's policies/presets. */
export const PRESETS_DIRECTORY = join(PACKAGE_ROOT, 'policies', 'presets');

/** The names of the shipped presets, sorted ("anthropic", "github", "npm-read", ...). */
export function presetNames(): string[] {
  let entries: string[];
  try {
    entries = readdirSync(PRESETS_DIRECTORY);
  } catch {
    return [];
  }
  return entries
    .filter((entry) => entry.endsWith(PRESET_EXTENSION) && !entry.endsWith(`.test${PRESET_EXTENSION}`))
    .map((entry) => entry.slice(0, -PRESET_EXTENSION.length))
    .sort();
}

/** The file of preset `name`, or null when there is no such preset. */
export function presetFile(name: string): string | null {
  return presetNames().includes(name) ? join(PRESETS_DIRECTORY, `${name}${PRESET_EXTENSION}`) : null;
}

// A GitHub-style "owner/repo": the owner as GitHub allows user and organisation names, the
// repository without ".git" and never "." or ".." (a path glob must not hold dot segments).
const OWNER = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})';
const REPOSITORY = '(?:\\*|(?!\\.\\.?$)(?!.*\\.git$)[A-Za-z0-9._-]{1,100})';
const REPOSITORY_PATTERN = new RegExp(`^${OWNER}/${REPOSITORY}$`);

const envNameError = 'must be an environment variable name such as "GITHUB_TOKEN"';
const repositoryError = 'must be "owner/repo" or "owner/*" (every repository of owner), such as "octo-org/app", without ".git"';

/** The schema each parameter type is checked with; messages follow the field name. */
const PARAMETER_SCHEMAS: Record<(typeof PRESET_PARAMETER_TYPES)[number], z.ZodType> = {
  'env-name': z.string({ error: envNameError }).regex(ENV_NAME_PATTERN, { error: envNameError }),
  repositories: z.array(z.string({ error: repositoryError }).regex(REPOSITORY_PATTERN, { error: repositoryError }), {
    error: 'must be a list of repositories, such as ["octo-org/app", "me/*"]',
  }),
};

export interface ParameterProblem {
  /** Path below the `with:` mapping. */
  readonly path: readonly PropertyKey[];
  readonly at: 'value' | 'key';
  readonly message: string;
}

/**
 * Checks the `with:` values given to `preset` against its declared parameters and applies the
 * defaults. Returns every problem, each as a phrase following "extends[i].with...".
 */
export function checkPresetArguments(
  preset: string,
  section: PresetSection,
  given: Readonly<Record<string, unknown>> | undefined,
): { values: Map<string, ParameterValue> } | { problems: ParameterProblem[] } {
  const declared = section.parameters ?? {};
  const names = Object.keys(declared);
  const problems: ParameterProblem[] = [];
  const values = new Map<string, ParameterValue>();
  for (const key of Object.keys(given ?? {})) {
    if (!(key in declared)) {
      const hint = names.length === 0 ? `preset ${preset} has no parameters; remove "with:"` : suggestKey(key, names).replace('the keys allowed here are', `the parameters of preset ${preset} are`);
      problems.push({ path: [key], at: 'key', message: `unknown parameter '${key}'; ${hint}` });
    }
  }
  for (const [name, declaration] of Object.entries(declared)) {
    const written = given?.[name];
    const value = written === undefined ? declaration.default : written;
    if (value === undefined || value === null) {
      values.set(name, undefined);
      continue;
    }
    const result = PARAMETER_SCHEMAS[declaration.type].safeParse(value);
    if (!result.success) {
      for (const issue of result.error.issues) {
        const shown = valueAt(value, issue.path);
        const got = shown !== undefined && (typeof shown !== 'object' || issue.code === 'invalid_type') ? ` (got ${describeValue(shown)})` : '';
        // A default that does not pass is a bug in the preset file, not in the policy.
        const whose = written === undefined ? ` (the default of preset ${preset})` : '';
        problems.push({ path: [name, ...issue.path], at: 'value', message: `${formatFieldPath([name, ...issue.path])} ${issue.message}${got}${whose}` });
      }
      continue;
    }
    values.set(name, result.data as ParameterValue);
  }
  return problems.length > 0 ? { problems } : { values };
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const segment of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

/** What filling in the parameters made of a preset's data, and how to find each part in the file. */
export interface FilledPreset {
  readonly data: unknown;
  /** A path in `data` → the path of the text it came from in the preset file. */
  readonly originalPath: (path: readonly PropertyKey[]) => PropertyKey[];
  /** References to parameters the preset does not declare (a bug in the preset), as paths in the file. */
  readonly unknownReferences: readonly { path: PropertyKey[]; name: string }[];
}

const REFERENCE = /\$\{([A-Za-z][A-Za-z0-9]*)\}/g;
/**
 * Keys whose list, once emptied by a parameter with no value, take their rule with them.
 * SECURITY: a rule without paths allows every path, so preset:github with no pushRepos would
 * otherwise allow POST git-receive-pack to every repository — policies/presets.test.ts "without
 * pushRepos the push and write rules are left out, never widened to any path".
 */
const NARROWING_KEYS = new Set(['paths', 'methods']);

type Filled = { kind: 'value'; value: unknown } | { kind: 'drop' } | { kind: 'many'; values: string[] };

/**
 * Fills `${name}` references into every string of a preset's data (the `preset:` section aside):
 *
 * - a string parameter is substituted in place;
 * - a list parameter may only appear in a list item, which becomes one item per value;
 * - a list item that mentions a parameter with no value (left out, or an empty list) is left out;
 * - a key whose list is left empty that way is removed, except that a rule whose `paths` or
 *   `methods` empties is removed itself: a parameter with no value never widens a rule.
 */
export function fillPresetParameters(data: unknown, values: ReadonlyMap<string, ParameterValue>): FilledPreset {
  const indexMaps = new Map<string, number[]>();
  const unknownReferences: { path: PropertyKey[]; name: string }[] = [];

  const fillString = (text: string, path: PropertyKey[]): Filled => {
    const names = [...text.matchAll(REFERENCE)].map((match) => match[1]!);
    if (names.length === 0) return { kind: 'value', value: text };
    let list: { name: string; items: readonly string[] } | null = null;
    for (const name of names) {
      if (!values.has(name)) {
        unknownReferences.push({ path, name });
        return { kind: 'value', value: text };
      }
      const value = values.get(name);
      if (value === undefined || (Array.isArray(value) && value.length === 0)) return { kind: 'drop' };
      if (Array.isArray(value)) {
        if (list !== null && list.name !== name) throw new Error(`preset string ${JSON.stringify(text)} uses two list parameters`);
        list = { name, items: value as readonly string[] };
      }
    }
    const substitute = (item: string | null) =>
      text.replace(REFERENCE, (_whole, name: string) => {
        const value = values.get(name);
        return Array.isArray(value) ? (item ?? '') : (value as string);
      });
    if (list === null) return { kind: 'value', value: substitute(null) };
    return { kind: 'many', values: list.items.map((item) => substitute(item)) };
  };

  const fill = (value: unknown, path: PropertyKey[]): Filled => {
    if (typeof value === 'string') return fillString(value, path);
    if (Array.isArray(value)) {
      const out: unknown[] = [];
      const origin: number[] = [];
      value.forEach((item, index) => {
        const filled = fill(item, [...path, out.length]);
        if (filled.kind === 'drop') return;
        const items = filled.kind === 'many' ? filled.values : [filled.value];
        for (const entry of items) {
          out.push(entry);
          origin.push(index);
        }
      });
      indexMaps.set(JSON.stringify(path), origin);
      return { kind: 'value', value: out };
    }
    if (typeof value === 'object' && value !== null) {
      const out: Record<string, unknown> = {};
      for (const [key, entry] of Object.entries(value)) {
        if (path.length === 0 && key === 'preset') {
          out[key] = entry;
          continue;
        }
        const filled = fill(entry, [...path, key]);
        if (filled.kind === 'drop') return filled;
        if (filled.kind === 'many') throw new Error(`preset key ${formatFieldPath([...path, key])} uses a list parameter outside a list`);
        if (Array.isArray(entry) && entry.length > 0 && Array.isArray(filled.value) && filled.value.length === 0) {
          if (NARROWING_KEYS.has(key)) return { kind: 'drop' };
          continue;
        }
        out[key] = filled.value;
      }
      return { kind: 'value', value: out };
    }
    return { kind: 'value', value };
  };

  const filled = fill(data, []);
  const originalPath = (path: readonly PropertyKey[]): PropertyKey[] => {
    const original: PropertyKey[] = [];
    const expanded: PropertyKey[] = [];
    for (const segment of path) {
      const map = typeof segment === 'number' ? indexMaps.get(JSON.stringify(expanded)) : undefined;
      original.push(map?.[segment as number] ?? segment);
      expanded.push(segment);
    }
    return original;
  };
  const mappedUnknown = unknownReferences.map((reference) => ({ name: reference.name, path: originalPath(reference.path) }));
  return { data: filled.kind === 'value' ? filled.value : {}, originalPath, unknownReferences: mappedUnknown };
}
