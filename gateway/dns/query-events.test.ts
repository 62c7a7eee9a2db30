import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loggableName, nameTunnelSignals, shannonEntropy } from './query-events.js';

describe('loggableName', () => {
  it('keeps names up to 64 characters as they are', () => {
    const name = `${'a'.repeat(59)}.test`;
    expect(name).toHaveLength(64);
    expect(loggableName(name)).toBe(name);
    expect(loggableName('api.example.test')).toBe('api.example.test');
  });

  it('cuts longer names to 64 characters and appends …# and 12 hex of the full name\'s SHA-256', () => {
    const payload = 'nbswy3dpeb3w64tmmq'.repeat(6);
    const name = `${payload.slice(0, 63)}.${payload.slice(0, 40)}.t.attacker.test`;
    const logged = loggableName(name);
    const digest = createHash('sha256').update(name).digest('hex').slice(0, 12);
    expect(logged).toBe(`${name.slice(0, 64)}…#${digest}`);
    expect(logged).not.toContain(payload.slice(0, 40) + '.t'); // the rest of the payload is not in the log
  });

  it('different long names with the same first 64 characters stay distinguishable', () => {
    const prefix = 'x'.repeat(63);
    expect(loggableName(`${prefix}.one.test`)).not.toBe(loggableName(`${prefix}.two.test`));
  });
});

describe('tunnel signals', () => {
  it('entropy: one symbol is 0 bits, 16 distinct symbols 4 bits', () => {
    expect(shannonEntropy('aaaaaaaa')).toBe(0);
    expect(shannonEntropy('0123456789abcdef')).toBeCloseTo(4, 10);
    expect(shannonEntropy('')).toBe(0);
  });

  it.each([
    { name: 'ordinary host', labels: ['api', 'github', 'com'], signals: [] },
    { name: 'long but ordinary label', labels: ['registry-npmjs-org-mirror', 'example', 'com'], signals: [] },
    { name: 'CDN-style label', labels: ['d1q6f0aelx0por', 'cloudfront', 'net'], signals: [] },
    { name: 'base32 payload (iodine-like)', labels: ['paaaaaaapfy5zcghcbiqz2qa3emzsg3df', 't', 'attacker', 'test'], signals: ['high-entropy'] },
    { name: '50-char label', labels: ['a'.repeat(50), 'test'], signals: ['long-label'] },
    {
      name: 'long random label',
      labels: ['mzxw6ytboi4dcmrtgq2tmnzygeztmnjqmzxw6ytboi4dcmrtgq2tmnzyge', 'attacker', 'test'],
      signals: ['long-label', 'high-entropy'],
    },
    { name: 'short random label', labels: ['x7k2q9', 'test'], signals: [] },
  ])('$name → $signals', ({ labels, signals }) => {
    expect(nameTunnelSignals(labels)).toEqual(signals);
  });
});
