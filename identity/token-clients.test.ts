// Static-token clients: the right client for a token, none for a near miss, and every client's
// digest compared in constant time whatever the token.
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, test, vi } from 'vitest';

const compared = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>();
  return {
    ...original,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      compared.count++;
      return original.timingSafeEqual(a, b);
    },
  };
});

const { TokenClients } = await import('./token-clients.js');
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('TokenClients', () => {
  const clients = new TokenClients([
    { id: 'ci', sha256: sha256('ci-token') },
    { id: 'cd', sha256: sha256('cd-token').toUpperCase().toLowerCase() },
    { id: 'bots', sha256: sha256('bots-token') },
  ]);

  beforeEach(() => {
    compared.count = 0;
  });

  test.each([
    ['ci-token', 'ci'],
    ['cd-token', 'cd'],
    ['bots-token', 'bots'],
    ['ci-token ', undefined],
    ['CI-TOKEN', undefined],
    ['', undefined],
    [sha256('ci-token'), undefined],
  ])('token %j is client %s', (token, id) => {
    expect(clients.match(token)).toBe(id);
  });

  test('compares every client, in constant time, whether the first, the last or none matches', () => {
    for (const token of ['ci-token', 'bots-token', 'nobody']) {
      compared.count = 0;
      clients.match(token);
      expect(compared.count).toBe(3);
    }
  });

  test('refuses a digest that is not 64 hex digits when built', () => {
    expect(() => new TokenClients([{ id: 'x', sha256: 'abc' }])).toThrow(/64 hex digits/);
  });
});
