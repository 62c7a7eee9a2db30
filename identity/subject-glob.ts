// The globs of `clients:` that name identities (JWT subjects, certificate common names and URIs):
// "*" matches within one part, parts being separated by ":" or "/"
// ("system:serviceaccount:agents:*", "spiffe://corp/ns/agents/*"); "**" matches across parts;
// every other character matches itself, case-sensitively.

export type SubjectMatcher = (value: string) => boolean;

/** A matcher for one glob, as the policy schema validated it. */
export function compileSubjectGlob(glob: string): SubjectMatcher {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    if (glob[i] !== '*') {
      source += glob[i]!.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
    } else if (glob[i + 1] === '*') {
      source += '[\\s\\S]*';
      i++;
    } else {
      source += '[^:/]*';
    }
  }
  const pattern = new RegExp(`^${source}$`, 'u');
  return (value) => pattern.test(value);
}

/** True when any of the globs matches; an absent list matches everything. */
export function compileSubjectGlobs(globs: readonly string[] | undefined): SubjectMatcher {
  if (globs === undefined) return () => true;
  const matchers = globs.map(compileSubjectGlob);
  return (value) => matchers.some((matches) => matches(value));
}
