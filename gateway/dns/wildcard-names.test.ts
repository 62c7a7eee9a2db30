import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../policies/loader.js';
import { renderShownPolicy } from '../../policies/show.js';
import type { Policy } from '../../policies/types.js';
import { DEFAULT_MAX_NAMES_PER_WILDCARD, WildcardNameCap } from './wildcard-names.js';

const policyText = (dns: string) => `version: 1
${dns}rules:
  - id: api
    host: api.example.test
  - id: wild
    host: "*.example.test"
  - id: no-ads
    host: "*.ads.test"
    action: deny
`;

function capOver(policy: Policy): WildcardNameCap {
  return new WildcardNameCap(() => policy);
}

describe('WildcardNameCap', () => {
  it('admits the first N new names under a wildcard rule, then refuses new ones with the rule, count and cap', () => {
    const cap = capOver(parsePolicy(policyText('dns:\n  maxNamesPerWildcard: 3\n')));
    for (const name of ['a.example.test', 'b.example.test', 'c.example.test']) {
      expect(cap.check(name)).toEqual({ rule: 'wild', pattern: '*.example.test', names: expect.any(Number), cap: 3, firstSeen: true });
    }
    const refused = cap.check('d.example.test');
    expect(refused?.refusal).toBe('rule wild has seen 4 names under *.example.test; the cap is 3 (policy dns.maxNamesPerWildcard)');
    expect(refused?.firstSeen).toBe(true);
    // Asked again: still refused, not a new name; names already admitted stay admitted.
    expect(cap.check('D.example.test.')).toMatchObject({ names: 4, firstSeen: false, refusal: expect.any(String) });
    expect(cap.check('b.example.test')).toEqual({ rule: 'wild', pattern: '*.example.test', names: 4, cap: 3, firstSeen: false });
    expect(cap.check('e.example.test')?.names).toBe(5);
  });

  it('never caps a name an allow rule names exactly, nor a name no allow wildcard matches', () => {
    const cap = capOver(parsePolicy(policyText('dns:\n  maxNamesPerWildcard: 1\n')));
    expect(cap.check('x.example.test')?.refusal).toBeUndefined();
    expect(cap.check('api.example.test')).toBeNull();
    expect(cap.check('y.ads.test')).toBeNull();
    expect(cap.check('198.18.0.7')).toBeNull();
    expect(cap.check('y.example.test')?.refusal).toBeDefined();
  });

  it('defaults to 300 per rule, and "*" is a wildcard too', () => {
    const cap = capOver(parsePolicy('version: 1\nrules:\n  - id: any\n    host: "*"\n'));
    expect(DEFAULT_MAX_NAMES_PER_WILDCARD).toBe(300);
    for (let i = 0; i < 300; i++) expect(cap.check(`n${i}.test`)?.refusal).toBeUndefined();
    expect(cap.check('n300.test')?.refusal).toBe('rule any has seen 301 names under *; the cap is 300 (policy dns.maxNamesPerWildcard)');
  });

  it('reads the policy at each check: a reload that raises the cap admits new names again', () => {
    let policy = parsePolicy(policyText('dns:\n  maxNamesPerWildcard: 1\n'));
    const cap = new WildcardNameCap(() => policy);
    cap.check('a.example.test');
    expect(cap.check('b.example.test')?.refusal).toBeDefined();
    policy = parsePolicy(policyText('dns:\n  maxNamesPerWildcard: 2\n'));
    expect(cap.check('c.example.test')?.refusal).toBeUndefined();
  });

  it('the setting merges through extends: the root file overrides what it extends', () => {
    const policy = parsePolicy('version: 1\nextends: ["extends-base.yaml"]\ndns:\n  maxNamesPerWildcard: 7\nrules: []\n', 'p.yaml', {
      baseDirectory: new URL('../../policies/testdata/', import.meta.url).pathname,
    });
    expect(policy.dns).toEqual({ maxNamesPerWildcard: 7 });
    expect(parsePolicy('version: 1\nrules: []\n').dns).toBeUndefined();
  });
});

describe('dns.maxNamesPerWildcard in srt-gw policy show', () => {
  it('is rendered, and the rendered policy reads back with it', () => {
    const policy = parsePolicy(policyText('dns:\n  maxNamesPerWildcard: 42\n'));
    const rendered = renderShownPolicy(policy, 'p.yaml');
    expect(rendered).toContain('dns:\n  maxNamesPerWildcard: 42\n');
    expect(parsePolicy(rendered).dns).toEqual({ maxNamesPerWildcard: 42 });
  });
});
