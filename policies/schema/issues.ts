// How the sections of the policy file schema word and add their problems: messages are phrases
// that follow a field name ("rules[0].port must be ...").

type IssueInput = { readonly input?: unknown };

/** "must be <expectation>", or "is missing; <hint>" when the key is absent and a hint is given. */
export function fieldError(expectation: string, missingHint?: string): (issue: IssueInput) => string {
  return (issue) => (issue.input === undefined && missingHint !== undefined ? `is missing; ${missingHint}` : `must be ${expectation}`);
}

export type RefinementContext = { addIssue(issue: { code: 'custom'; message: string; path?: PropertyKey[] }): void };

/** Adds one issue when none or several of `keys` are set. */
export function exactlyOne(value: unknown, keys: readonly string[], ctx: RefinementContext, missing: string): void {
  if (!isRecord(value) || hasUnknownKey(ctx)) return;
  const present = keys.filter((key) => value[key] !== undefined);
  if (present.length === 0) ctx.addIssue({ code: 'custom', path: [], message: missing });
  else if (present.length > 1) {
    ctx.addIssue({ code: 'custom', path: [present[1]!], message: `cannot be given together with ${present[0]!}; choose one of ${keys.join(', ')}` });
  }
}

/** Whether the mapping being refined had a key its schema does not know (already reported as unknown). */
export function hasUnknownKey(ctx: RefinementContext): boolean {
  const issues = (ctx as { issues?: { code?: string; path?: unknown[] }[] }).issues ?? [];
  return issues.some((issue) => issue.code === 'unrecognized_keys' && (issue.path?.length ?? 0) === 0);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
