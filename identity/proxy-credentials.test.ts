// Every way a Proxy-Authorization header can be read, and every way it can be refused.
import { describe, expect, test } from 'vitest';
import { MAX_PROXY_AUTHORIZATION_LENGTH, parseProxyAuthorization } from './proxy-credentials.js';

const basic = (text: string) => `Basic ${Buffer.from(text, 'utf8').toString('base64')}`;

describe('parseProxyAuthorization reads', () => {
  test.each([
    ['a Bearer token', 'Bearer abc.DEF-_~+/=', { scheme: 'bearer', token: 'abc.DEF-_~+/=' }],
    ['the scheme in any case', 'bEARER tok', { scheme: 'bearer', token: 'tok' }],
    ['several spaces after the scheme, and surrounding blanks', '  Bearer    tok \t', { scheme: 'bearer', token: 'tok' }],
    ['Basic client:token', basic('ci:s3cret'), { scheme: 'basic', username: 'ci', token: 's3cret' }],
    ['Basic with a ":" in the token (split at the first)', basic('ci:a:b'), { scheme: 'basic', username: 'ci', token: 'a:b' }],
    ['Basic with an empty user name', basic(':tok'), { scheme: 'basic', username: '', token: 'tok' }],
    ['Basic with UTF-8 text', basic('cï:tøk'), { scheme: 'basic', username: 'cï', token: 'tøk' }],
    ['Basic in lower case', `basic ${Buffer.from('ci:t').toString('base64')}`, { scheme: 'basic', username: 'ci', token: 't' }],
  ])('%s', (_name, value, credentials) => {
    expect(parseProxyAuthorization(value)).toEqual({ kind: 'credentials', credentials });
  });

  test('an absent header as missing, and an empty list of values too', () => {
    expect(parseProxyAuthorization(undefined)).toEqual({ kind: 'missing' });
    expect(parseProxyAuthorization([])).toEqual({ kind: 'missing' });
  });

  test('a list of one value (from rawHeaders) as that value', () => {
    expect(parseProxyAuthorization(['Bearer a'])).toEqual({ kind: 'credentials', credentials: { scheme: 'bearer', token: 'a' } });
  });

  test('a header sent twice as malformed, even when both say the same', () => {
    expect(parseProxyAuthorization(['Bearer a', 'Bearer b'])).toEqual({ kind: 'malformed', problem: 'Proxy-Authorization must be sent once' });
    expect(parseProxyAuthorization(['Bearer a', 'Bearer a'])).toEqual({ kind: 'malformed', problem: 'Proxy-Authorization must be sent once' });
  });
});

describe('parseProxyAuthorization refuses, without throwing,', () => {
  test.each([
    ['an empty value', ''],
    ['a scheme alone', 'Bearer'],
    ['a scheme and a blank', 'Bearer '],
    ['two credentials', 'Bearer a b'],
    ['a token with a comma', 'Bearer a,b'],
    ['a token with a quote', 'Bearer "a"'],
    ['a Bearer token with "=" inside', 'Bearer a=b'],
    ['a Bearer token with a non-ASCII character', 'Bearer tøk'],
    ['another scheme', 'Digest username="x"'],
    ['Negotiate', 'Negotiate YIIB'],
    ['Basic that is not base64', 'Basic !!!!'],
    ['Basic base64 without padding', `Basic ${Buffer.from('ci:toke').toString('base64').replace(/=+$/, '')}`],
    ['Basic base64url', `Basic ${Buffer.from('ci:??>>').toString('base64url')}`],
    ['Basic without a colon', basic('citoken')],
    ['Basic without a token', basic('ci:')],
    ['Basic with a control character', basic('ci:to\nken')],
    ['Basic that is not UTF-8', `Basic ${Buffer.from([0x63, 0x69, 0x3a, 0xff, 0xfe]).toString('base64')}`],
    ['a value over the length limit', `Bearer ${'a'.repeat(MAX_PROXY_AUTHORIZATION_LENGTH)}`],
    ['a NUL byte', 'Bearer a\0b'],
  ])('%s', (_name, value) => {
    const parsed = parseProxyAuthorization(value);
    expect(parsed.kind).toBe('malformed');
  });

  test('never echoes the credentials it refuses', () => {
    for (const value of ['Bearer secret"value', basic('secretvalue'), 'Token secretvalue', `Basic ${'c2VjcmV0dmFsdWU'}`]) {
      const parsed = parseProxyAuthorization(value);
      expect(parsed.kind).toBe('malformed');
      expect(JSON.stringify(parsed)).not.toMatch(/secret|c2VjcmV0/);
    }
  });

  test('random bytes', () => {
    for (let i = 0; i < 2000; i++) {
      const bytes = Buffer.from(Array.from({ length: i % 64 }, () => Math.floor(Math.random() * 256)));
      const value = Math.random() < 0.5 ? `Basic ${bytes.toString('base64')}` : bytes.toString('latin1');
      expect(() => parseProxyAuthorization(value)).not.toThrow();
    }
  });
});
