// Request paths as a client writes them: normalizePath, findAmbiguousEncoding and glob matching.
// Contract: results are {path}|{error} or string|null, never a throw; normalising twice equals
// normalising once; a normalised path matches the exact glob it forms.
import { normalizePath, findAmbiguousEncoding, compilePathGlob, normalizePathGlob } from '../../dist/policies/path.js';
import { expect, expectEqual } from '../target-contract.mjs';

export function fuzz(data) {
  const target = data.toString('latin1');
  const once = normalizePath(target);
  const ambiguity = findAmbiguousEncoding(target.split('?')[0]);
  expect(ambiguity === null || typeof ambiguity === 'string', 'findAmbiguousEncoding returns a string or null');
  if ('error' in once) {
    expect(typeof once.error === 'string' && once.error.length > 0, 'normalizePath error is a phrase');
  } else {
    expect(once.path.startsWith('/'), `normalised path starts with "/": ${once.path}`);
    const twice = normalizePath(once.path);
    expect(!('error' in twice), `normalised path ${JSON.stringify(once.path)} normalises again (${twice.error})`);
    expectEqual(twice.path, once.path, 'normalizePath is idempotent');
    expect(!once.path.split('/').some((segment) => segment === '..' || segment === '.'), `no dot segment survives: ${once.path}`);
  }
  // The same bytes as a rule's glob: compiling must not throw, and matching stays linear.
  const glob = compilePathGlob(target);
  if (!('error' in glob)) {
    const again = normalizePathGlob(glob.source);
    expect(!('error' in again) && again.glob === glob.source, `normalizePathGlob is idempotent on ${glob.source}`);
    if (!('error' in once)) glob.matches(once.path);
    if (!glob.source.includes('*')) expect(glob.matches(glob.source), `a literal glob matches itself: ${glob.source}`);
  }
}
