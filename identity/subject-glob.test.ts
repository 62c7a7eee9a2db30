// The identity globs of clients: "*" within one ":" or "/" part, "**" across parts.
import { describe, expect, test } from 'vitest';
import { compileSubjectGlob, compileSubjectGlobs } from './subject-glob.js';

describe('compileSubjectGlob', () => {
  test.each([
    ['system:serviceaccount:agents:*', 'system:serviceaccount:agents:builder', true],
    ['system:serviceaccount:agents:*', 'system:serviceaccount:agents:', true],
    ['system:serviceaccount:agents:*', 'system:serviceaccount:agents:a:b', false],
    ['system:serviceaccount:agents:*', 'system:serviceaccount:agents-x:builder', false],
    ['system:serviceaccount:*:builder', 'system:serviceaccount:ns1:builder', true],
    ['system:serviceaccount:**', 'system:serviceaccount:ns1:builder', true],
    ['runner-*', 'runner-7', true],
    ['runner-*', 'Runner-7', false],
    ['runner-*', 'xrunner-7', false],
    ['runner-*', 'runner-7/x', false],
    ['spiffe://corp/ns/agents/*', 'spiffe://corp/ns/agents/sa/extra', false],
    ['spiffe://corp/ns/agents/*', 'spiffe://corp/ns/agents/builder', true],
    ['spiffe://corp/ns/*/sa/builder', 'spiffe://corp/ns/agents/sa/builder', true],
    ['spiffe://corp/**', 'spiffe://corp/ns/agents/sa/builder', true],
    ['spiffe://corp/**', 'spiffe://corpx/ns', false],
    ['a.b', 'axb', false],
    ['(a)+[b]$', '(a)+[b]$', true],
    ['a\\*', 'a\\x', true],
    ['ci', 'ci\n', false],
    ['**', 'anything:at/all\nreally', true],
  ])('%j matches %j: %s', (glob, value, expected) => {
    expect(compileSubjectGlob(glob)(value)).toBe(expected);
  });
});

describe('compileSubjectGlobs', () => {
  test('any of several, and everything when absent', () => {
    const matches = compileSubjectGlobs(['a:*', 'b:c']);
    expect([matches('a:x'), matches('b:c'), matches('b:d')]).toEqual([true, true, false]);
    expect(compileSubjectGlobs(undefined)('whatever')).toBe(true);
  });
});
