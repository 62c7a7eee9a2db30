// The precedence engine of the filesystem rules (steps 1-6 in jail/filesystem-rules.ts): which
// rule decides a canonical path's access, by looking up the deepest rule of each kind above it.
import type { FilesystemAccess, FilesystemEffect, FilesystemRule } from '../filesystem-rules.js';

/** The access to a canonical path and the rule that decides it. */
export type Evaluate = (path: string) => { access: FilesystemAccess; rule: FilesystemRule };


export function evaluatorFor(rules: readonly FilesystemRule[]): Evaluate {
  const base = rules.find((rule) => rule.effect === 'read-only-default');
  if (base === undefined) throw new Error('filesystem rules without the read-only default');
  const writeRoots = byPath(rules.filter((rule) => rule.effect === 'allow-write' || rule.effect === 'private'));
  const alwaysHidden = byPath(rules.filter((rule) => rule.effect === 'hide' && rule.origin.kind === 'always-hidden'));
  const reading = byPath(rules.filter((rule) => (rule.effect === 'hide' && rule.origin.kind !== 'always-hidden') || rule.effect === 'allow-read'));
  const vetoes = byPath(rules.filter((rule) => rule.effect === 'deny-write'));
  return (path) => {
    // At one path: private wins over a write root (cwd = /tmp stays private); allowRead over hide.
    const root = deepestContaining(writeRoots, path, 'private');
    if (root?.effect === 'private') return { access: 'private', rule: root };
    const always = deepestContaining(alwaysHidden, path);
    if (always !== undefined) return { access: 'hidden', rule: always };
    const read = deepestContaining(reading, path, 'allow-read');
    if (read?.effect === 'hide') return { access: 'hidden', rule: read };
    if (root === undefined) return { access: 'read-only', rule: base };
    const veto = deepestContaining(vetoes, path);
    return veto === undefined ? { access: 'read-write', rule: root } : { access: 'read-only', rule: veto };
  };
}

/** Rules by path, each path's in their order. */
type RulesByPath = ReadonlyMap<string, readonly FilesystemRule[]>;

function byPath(rules: readonly FilesystemRule[]): RulesByPath {
  const index = new Map<string, FilesystemRule[]>();
  for (const rule of rules) {
    const here = index.get(rule.path);
    if (here === undefined) index.set(rule.path, [rule]);
    else here.push(rule);
  }
  return index;
}

/**
 * The rule on the deepest path that `path` is within (isWithin) and that has one; of several there,
 * the last with the `preferred` effect, else the first. Looked up prefix by prefix (`path` cut at
 * each "/", then "/") rather than by testing every rule: run's start-up evaluates a few hundred
 * paths against ~100 rules.
 */
function deepestContaining(rules: RulesByPath, path: string, preferred?: FilesystemEffect): FilesystemRule | undefined {
  for (let at = path; ; ) {
    const here = rules.get(at);
    if (here !== undefined) {
      let best = here[0];
      for (const rule of here) if (rule.effect === preferred) best = rule;
      return best;
    }
    if (at === '/') return undefined;
    const slash = at.lastIndexOf('/');
    at = slash > 0 ? at.slice(0, slash) : '/';
  }
}
