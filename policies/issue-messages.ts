// Turns zod issues from the policy file schema into one sentence each: which field, what is
// wrong, what to write instead ("rules[0].paths[0] must start with "/" (got "v1/upload")").
import type { z } from 'zod';
import { BUDGET_FILE_KEYS, clientKeysAt, CREDENTIAL_FILE_KEYS, DNS_FILE_KEYS, EXTENDS_PRESET_FILE_KEYS, FILESYSTEM_FILE_KEYS, JAIL_FILE_KEYS, POLICY_FILE_KEYS, RULE_FILE_KEYS, SECRET_SOURCE_FILE_KEYS } from './schema.js';

export interface PolicyProblem {
  /** Path of the offending node in the file. */
  readonly path: readonly PropertyKey[];
  /** Point at the node's key rather than its value (unknown keys). */
  readonly at: 'value' | 'key';
  readonly message: string;
}

const MAX_SHOWN_VALUE = 80;
const MAX_SUGGESTION_DISTANCE = 2;

export function problemsFromIssues(issues: readonly z.core.$ZodIssue[], data: unknown): PolicyProblem[] {
  const problems: PolicyProblem[] = [];
  for (const issue of flattenUnions(issues, data)) {
    if (issue.code === 'unrecognized_keys') {
      const knownKeys = knownKeysAt(issue.path);
      const prefix = issue.path.length === 0 ? '' : `${formatFieldPath(issue.path)}: `;
      for (const key of issue.keys) {
        problems.push({ path: [...issue.path, key], at: 'key', message: `${prefix}unknown key '${key}'; ${suggestKey(key, knownKeys)}` });
      }
      continue;
    }
    const value = valueAt(data, issue.path);
    const field = issue.path.length === 0 ? 'the policy file' : formatFieldPath(issue.path);
    let got = '';
    if (issue.path.length === 0 && (value === null || value === undefined)) got = ' (the file is empty)';
    else if (value !== undefined && (isScalar(value) || issue.code === 'invalid_type')) got = ` (got ${describeValue(value)})`;
    problems.push({ path: issue.path, at: 'value', message: `${field} ${issue.message}${got}` });
  }
  return problems;
}

/**
 * A union ("a mapping or a list", "a number or a string") that failed reports every branch's
 * issues. The branch for the kind of value written is the one to explain; when no branch fits
 * the value's kind, the union's own message ("must be a mapping ... or a list") says it all.
 */
function flattenUnions(issues: readonly z.core.$ZodIssue[], data: unknown): z.core.$ZodIssue[] {
  const flat: z.core.$ZodIssue[] = [];
  for (const issue of issues) {
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) {
      flat.push(issue);
      continue;
    }
    const fitting = issue.errors.filter((branch) => !branch.some((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
    if (fitting.length !== 1) {
      flat.push(issue);
      continue;
    }
    const nested: z.core.$ZodIssue[] = fitting[0]!.map((inner) => ({ ...inner, path: [...issue.path, ...inner.path] }));
    flat.push(...flattenUnions(nested, data));
  }
  return flat;
}

function knownKeysAt(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return POLICY_FILE_KEYS;
  if (path[0] === 'filesystem') return FILESYSTEM_FILE_KEYS;
  if (path[0] === 'jail') return JAIL_FILE_KEYS;
  if (path[0] === 'dns') return DNS_FILE_KEYS;
  if (path[0] === 'extends') return EXTENDS_PRESET_FILE_KEYS;
  if (path[0] === 'clients') return clientKeysAt(path);
  const named = path.filter((segment) => typeof segment === 'string');
  switch (named[named.length - 1]) {
    case 'credentials':
      return CREDENTIAL_FILE_KEYS;
    case 'inject':
      return SECRET_SOURCE_FILE_KEYS;
    case 'budget':
      return BUDGET_FILE_KEYS;
    default:
      return RULE_FILE_KEYS;
  }
}

/** ["rules", 0, "paths", 1] → "rules[0].paths[1]". */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else text += text.length === 0 ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

export function suggestKey(key: string, knownKeys: readonly string[]): string {
  // Short keys get less slack, so "x" is not "corrected" to "id".
  const allowed = Math.min(MAX_SUGGESTION_DISTANCE, Math.max(1, Math.floor(key.length / 3)));
  let best: string | undefined;
  let bestDistance = allowed + 1;
  for (const known of knownKeys) {
    const distance = editDistance(key.toLowerCase(), known.toLowerCase());
    if (distance < bestDistance) {
      best = known;
      bestDistance = distance;
    }
  }
  if (best !== undefined) return `did you mean '${best}'?`;
  return `the keys allowed here are ${knownKeys.map((known) => `'${known}'`).join(', ')}`;
}

/** Edit distance where swapping two neighbouring letters ("prot" for "port") counts as one edit. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const above = rows[i - 1] ?? [];
      let distance = Math.min((above[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (above[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      }
      row.push(distance);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? 0;
}

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let value = data;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function isScalar(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function');
}

export function describeValue(value: unknown): string {
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') {
    const shown = JSON.stringify(value);
    return shown.length > MAX_SHOWN_VALUE ? `${shown.slice(0, MAX_SHOWN_VALUE)}..."` : shown;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return typeof value;
}
