// The credentials step as tables: what each rule does to the headers and query string a request
// carries, which values are refused, and that no refusal ever holds a credential value.
import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { applyCredentials, base64Fragments, maskPairs, type ResolvedCredential } from './credential-rewrite.js';
import type { CredentialLocation, CredentialRule } from './types.js';

const SECRET = 'real-secret-0123456789abcdef';
const PLACEHOLDER = 'srtgw-placeholder-example-api-key-0123456789abcdef01234567';
const ATTACKER = 'sk-attacker-key-9876543210';

const sha = (value: string) => createHash('sha256').update(value).digest('hex');
const b64 = (value: string) => Buffer.from(value).toString('base64');

const header = (name: string, scheme: 'raw' | 'bearer' | 'basic' = 'raw', username?: string): CredentialLocation => ({
  kind: 'header',
  name,
  scheme,
  ...(username === undefined ? {} : { username }),
});
const query = (name: string): CredentialLocation => ({ kind: 'query', name });

function inject(location: CredentialLocation): ResolvedCredential {
  const rule: CredentialRule = { location, action: { kind: 'inject', source: { kind: 'env', name: 'EXAMPLE_API_KEY' } } };
  return { rule, kind: 'inject', secret: SECRET, placeholder: PLACEHOLDER };
}
function requireHashes(location: CredentialLocation, ...values: string[]): ResolvedCredential {
  const hashes = values.map(sha);
  return { rule: { location, action: { kind: 'require', sha256: hashes } }, kind: 'require', sha256: new Set(hashes) };
}
function strip(location: CredentialLocation): ResolvedCredential {
  return { rule: { location, action: { kind: 'strip' } }, kind: 'strip' };
}

const BASE = ['host', 'api.example.test', 'accept', '*/*'];

interface Case {
  name: string;
  credentials: ResolvedCredential[];
  headers?: string[];
  query?: string;
  /** Expected forwarded headers / query; or `refused` with a phrase of the reason. */
  expect: { headers?: string[]; query?: string; outcome?: string } | { refused: string };
}

const cases: Case[] = [
  // x-api-key, inject
  { name: 'x-api-key: no header → the secret is added', credentials: [inject(header('x-api-key'))], expect: { headers: [...BASE, 'x-api-key', SECRET], outcome: 'injected' } },
  {
    name: 'x-api-key: the placeholder is replaced in place',
    credentials: [inject(header('x-api-key'))],
    headers: ['host', 'api.example.test', 'x-api-key', PLACEHOLDER, 'accept', '*/*'],
    expect: { headers: ['host', 'api.example.test', 'x-api-key', SECRET, 'accept', '*/*'], outcome: 'injected' },
  },
  { name: "x-api-key: an attacker's key is refused", credentials: [inject(header('x-api-key'))], headers: [...BASE, 'x-api-key', ATTACKER], expect: { refused: 'refuses the x-api-key sent' } },
  {
    name: 'x-api-key: the placeholder plus a second, other value is refused (upstreams may read either)',
    credentials: [inject(header('x-api-key'))],
    headers: [...BASE, 'x-api-key', PLACEHOLDER, 'x-api-key', ATTACKER],
    expect: { refused: 'send none or the placeholder' },
  },
  {
    name: 'x-api-key: two placeholders become one secret',
    credentials: [inject(header('x-api-key'))],
    headers: [...BASE, 'x-api-key', PLACEHOLDER, 'x-api-key', PLACEHOLDER],
    expect: { headers: [...BASE, 'x-api-key', SECRET], outcome: 'injected' },
  },
  { name: 'x-api-key: an empty header counts as none', credentials: [inject(header('x-api-key'))], headers: [...BASE, 'x-api-key', ''], expect: { headers: [...BASE, 'x-api-key', SECRET] } },
  {
    name: 'x-api-key: the placeholder with a suffix is not the placeholder',
    credentials: [inject(header('x-api-key'))],
    headers: [...BASE, 'x-api-key', `${PLACEHOLDER}x`],
    expect: { refused: 'refuses' },
  },
  {
    name: 'x-api-key: the placeholder inside a comma list is not the placeholder',
    credentials: [inject(header('x-api-key'))],
    headers: [...BASE, 'x-api-key', `${PLACEHOLDER}, ${ATTACKER}`],
    expect: { refused: 'refuses' },
  },
  // Bearer
  { name: 'bearer: no header → "Bearer <secret>" is added', credentials: [inject(header('authorization', 'bearer'))], expect: { headers: [...BASE, 'authorization', `Bearer ${SECRET}`] } },
  {
    name: 'bearer: "Bearer <placeholder>" (any case) is replaced',
    credentials: [inject(header('authorization', 'bearer'))],
    headers: [...BASE, 'authorization', `bEaReR ${PLACEHOLDER}`],
    expect: { headers: [...BASE, 'authorization', `Bearer ${SECRET}`], outcome: 'injected' },
  },
  { name: "bearer: an attacker's token is refused", credentials: [inject(header('authorization', 'bearer'))], headers: [...BASE, 'authorization', `Bearer ${ATTACKER}`], expect: { refused: 'authorization (Bearer token)' } },
  {
    name: 'bearer: Basic credentials in place of a Bearer token are refused',
    credentials: [inject(header('authorization', 'bearer'))],
    headers: [...BASE, 'authorization', `Basic ${b64(`u:${PLACEHOLDER}`)}`],
    expect: { refused: 'refuses' },
  },
  { name: 'bearer: the bare placeholder without "Bearer" is refused', credentials: [inject(header('authorization', 'bearer'))], headers: [...BASE, 'authorization', PLACEHOLDER], expect: { refused: 'refuses' } },
  // Basic
  {
    name: "basic: user:placeholder keeps the user and gets the secret as password",
    credentials: [inject(header('authorization', 'basic'))],
    headers: [...BASE, 'authorization', `Basic ${b64(`x-access-token:${PLACEHOLDER}`)}`],
    expect: { headers: [...BASE, 'authorization', `Basic ${b64(`x-access-token:${SECRET}`)}`] },
  },
  {
    name: 'basic: a configured username replaces the one sent',
    credentials: [inject(header('authorization', 'basic', 'bot'))],
    headers: [...BASE, 'authorization', `Basic ${b64(`someone:${PLACEHOLDER}`)}`],
    expect: { headers: [...BASE, 'authorization', `Basic ${b64(`bot:${SECRET}`)}`] },
  },
  { name: 'basic: no header → an empty user name and the secret', credentials: [inject(header('authorization', 'basic'))], expect: { headers: [...BASE, 'authorization', `Basic ${b64(`:${SECRET}`)}`] } },
  {
    name: "basic: another password is refused",
    credentials: [inject(header('authorization', 'basic'))],
    headers: [...BASE, 'authorization', `Basic ${b64(`x-access-token:${ATTACKER}`)}`],
    expect: { refused: 'authorization (Basic password)' },
  },
  { name: 'basic: a value that is not base64 of user:password is refused', credentials: [inject(header('authorization', 'basic'))], headers: [...BASE, 'authorization', 'Basic !!!'], expect: { refused: 'refuses' } },
  // Query parameters
  { name: 'query: no parameter → key=<secret> is appended', credentials: [inject(query('key'))], query: '?q=1', expect: { query: `?q=1&key=${SECRET}`, outcome: 'injected' } },
  { name: 'query: no query at all → ?key=<secret>', credentials: [inject(query('key'))], query: '', expect: { query: `?key=${SECRET}` } },
  { name: 'query: the placeholder is replaced in place', credentials: [inject(query('key'))], query: `?a=1&key=${PLACEHOLDER}&b=2`, expect: { query: `?a=1&key=${SECRET}&b=2` } },
  { name: "query: an attacker's key is refused", credentials: [inject(query('key'))], query: `?key=${ATTACKER}`, expect: { refused: 'refuses the query parameter key sent' } },
  {
    name: 'query: a repeated parameter with another value is refused',
    credentials: [inject(query('key'))],
    query: `?key=${PLACEHOLDER}&key=${ATTACKER}`,
    expect: { refused: 'refuses' },
  },
  { name: 'query: repeated placeholders collapse into one secret', credentials: [inject(query('key'))], query: `?key=${PLACEHOLDER}&x=1&key=${PLACEHOLDER}`, expect: { query: `?key=${SECRET}&x=1` } },
  { name: 'query: a percent-encoded name ("k%65y") is the same parameter', credentials: [inject(query('key'))], query: `?k%65y=${ATTACKER}`, expect: { refused: 'refuses' } },
  { name: 'query: a name in another case ("KEY") is the same parameter', credentials: [inject(query('key'))], query: `?KEY=${ATTACKER}`, expect: { refused: 'refuses' } },
  { name: 'query: a parameter behind ";" is seen', credentials: [inject(query('key'))], query: `?a=1;key=${ATTACKER}`, expect: { refused: 'refuses' } },
  { name: 'query: a percent-encoded placeholder is accepted', credentials: [inject(query('key'))], query: `?key=${encodeURIComponent(PLACEHOLDER).replace(/-/g, '%2D')}`, expect: { query: `?key=${SECRET}` } },
  { name: 'query: "key" without a value counts as none', credentials: [inject(query('key'))], query: '?key&a=1', expect: { query: `?key=${SECRET}&a=1` } },
  { name: 'query: "keys" is another parameter', credentials: [inject(query('key'))], query: `?keys=${ATTACKER}`, expect: { query: `?keys=${ATTACKER}&key=${SECRET}` } },
  // spellings: names that server stacks fold to the credential's name
  ...(
    [
      ['x_api_key', 'CGI/WSGI/PHP read "_" as "-"'],
      ['X_API_KEY', 'and ignore case'],
      ['x.api.key', 'PHP and Apache turn "." into "_"'],
      ['x-api_key', 'mixed separators'],
      ['x-api-key_', 'a trailing separator'],
      ['x--api-key', 'a run of separators'],
    ] as const
  ).flatMap(([spelling, why]): Case[] => [
    {
      name: `spellings: inject refuses an attacker's key sent as "${spelling}" (${why})`,
      credentials: [inject(header('x-api-key'))],
      headers: [...BASE, spelling, ATTACKER],
      expect: { refused: 'refuses the x-api-key sent' },
    },
    {
      name: `spellings: inject replaces the placeholder sent as "${spelling}" with one x-api-key`,
      credentials: [inject(header('x-api-key'))],
      headers: [...BASE, 'x-api-key', PLACEHOLDER, spelling, PLACEHOLDER],
      expect: { headers: [...BASE, 'x-api-key', SECRET], outcome: 'injected' },
    },
    {
      name: `spellings: strip removes "${spelling}" too`,
      credentials: [strip(header('x-api-key'))],
      headers: [...BASE, spelling, ATTACKER, 'x-api-key', ATTACKER],
      expect: { headers: BASE, outcome: 'stripped' },
    },
  ]),
  {
    name: 'spellings: require checks "x_api_key" beside an allowed x-api-key',
    credentials: [requireHashes(header('x-api-key'), 'good-key-1')],
    headers: [...BASE, 'x-api-key', 'good-key-1', 'x_api_key', ATTACKER],
    expect: { refused: 'refuses' },
  },
  { name: 'spellings: "x-api-key-id" is another header', credentials: [strip(header('x-api-key'))], headers: [...BASE, 'x-api-key-id', '7'], expect: { headers: [...BASE, 'x-api-key-id', '7'] } },
  { name: 'spellings: "x-apikey" is another header', credentials: [strip(header('x-api-key'))], headers: [...BASE, 'x-apikey', '7'], expect: { headers: [...BASE, 'x-apikey', '7'] } },
  ...(
    [
      ['key[]', 'PHP and Rack read it as the array "key"'],
      ['key[x]', 'an array with a key'],
      ['key%5B%5D', 'an encoded array'],
      ['key%00', 'NUL ends the name in C stacks'],
      ['key%00junk', 'NUL truncation with a tail'],
      ['key%20', 'a trailing space'],
      ['key+', 'a trailing space as "+"'],
      ['key.', 'a trailing dot'],
      ['%20key', 'a leading space (PHP drops it)'],
      ['k%65y', 'a percent-encoded letter'],
      ['k%u0065y', "IIS's %u encoding"],
      ['KEY', 'ASP.NET ignores case'],
      ['Key%5B%5D', 'case and an array'],
    ] as const
  ).flatMap(([spelling, why]): Case[] => [
    {
      name: `spellings: query inject refuses an attacker's key as "${spelling}" (${why})`,
      credentials: [inject(query('key'))],
      query: `?a=1&${spelling}=${ATTACKER}`,
      expect: { refused: 'refuses the query parameter key sent' },
    },
    {
      name: `spellings: query strip removes "${spelling}"`,
      credentials: [strip(query('key'))],
      query: `?a=1&${spelling}=${ATTACKER}&b=2`,
      expect: { query: '?a=1&b=2', outcome: 'stripped' },
    },
  ]),
  {
    name: 'spellings: PHP reads "api.key" and "api key" as "api_key"',
    credentials: [strip(query('api_key'))],
    query: `?api.key=1&api+key=2&api%20key=3&API-KEY=4&x=5`,
    expect: { query: '?x=5' },
  },
  { name: 'spellings: query inject replaces "key[]=<placeholder>" with key=<secret>', credentials: [inject(query('key'))], query: `?key[]=${PLACEHOLDER}&a=1`, expect: { query: `?key=${SECRET}&a=1` } },
  { name: 'spellings: "keys" and "key_id" are other parameters', credentials: [strip(query('key'))], query: '?keys=1&key_id=2', expect: { query: '?keys=1&key_id=2' } },
  { name: 'spellings: a double-encoded name ("k%2565y") is refused: only some stacks read it as key', credentials: [strip(query('key'))], query: `?k%2565y=${ATTACKER}`, expect: { refused: 'decode differently' } },
  { name: 'spellings: a stray "%" ("ke%y") is refused: stacks that drop it read key', credentials: [strip(query('key'))], query: `?ke%y=${ATTACKER}`, expect: { refused: 'decode differently' } },
  // require
  { name: 'require: an allowed value passes unchanged', credentials: [requireHashes(header('x-api-key'), 'good-key-1', 'good-key-2')], headers: [...BASE, 'x-api-key', 'good-key-2'], expect: { headers: [...BASE, 'x-api-key', 'good-key-2'], outcome: 'required-ok' } },
  { name: 'require: another value is refused', credentials: [requireHashes(header('x-api-key'), 'good-key-1')], headers: [...BASE, 'x-api-key', ATTACKER], expect: { refused: 'not one of the credentials this rule allows' } },
  { name: 'require: no value is refused', credentials: [requireHashes(header('x-api-key'), 'good-key-1')], expect: { refused: 'requires a x-api-key and the request has none' } },
  { name: 'require: an allowed value next to another one is refused', credentials: [requireHashes(header('x-api-key'), 'good-key-1')], headers: [...BASE, 'x-api-key', 'good-key-1', 'x-api-key', ATTACKER], expect: { refused: 'refuses' } },
  { name: 'require: Bearer hashes the token, not "Bearer <token>"', credentials: [requireHashes(header('authorization', 'bearer'), 'good-token')], headers: [...BASE, 'authorization', 'Bearer good-token'], expect: { outcome: 'required-ok' } },
  { name: 'require: the hash is of the exact value (no trailing newline)', credentials: [requireHashes(header('x-api-key'), 'good-key-1\n')], headers: [...BASE, 'x-api-key', 'good-key-1'], expect: { refused: 'refuses' } },
  { name: 'require: query values are hashed decoded', credentials: [requireHashes(query('token'), 'a b/c')], query: '?token=a+b%2Fc', expect: { query: '?token=a+b%2Fc', outcome: 'required-ok' } },
  // strip
  { name: 'strip: every copy of the header is removed', credentials: [strip(header('x-api-key'))], headers: [...BASE, 'x-api-key', 'a', 'x-api-key', 'b'], expect: { headers: BASE, outcome: 'stripped' } },
  { name: 'strip: a missing header is fine', credentials: [strip(header('cookie'))], expect: { headers: BASE, outcome: 'stripped' } },
  { name: 'strip: every copy of the parameter is removed, the rest stays in order', credentials: [strip(query('token'))], query: '?a=1&token=x&b=2&TOKEN=y', expect: { query: '?a=1&b=2' } },
  { name: 'strip: a query of only that parameter disappears', credentials: [strip(query('token'))], query: '?token=x', expect: { query: '' } },
  // several entries
  {
    name: 'inject x-api-key and strip authorization: both happen, the outcome is "injected"',
    credentials: [inject(header('x-api-key')), strip(header('authorization'))],
    headers: [...BASE, 'authorization', `Bearer ${ATTACKER}`],
    expect: { headers: [...BASE, 'x-api-key', SECRET], outcome: 'injected' },
  },
  {
    name: 'a refusal by the second entry refuses the request',
    credentials: [strip(header('cookie')), inject(header('x-api-key'))],
    headers: [...BASE, 'x-api-key', ATTACKER],
    expect: { refused: 'refuses' },
  },
];

describe('applyCredentials', () => {
  test.each(cases)('$name', ({ credentials, headers, query: queryText, expect: expected }) => {
    const result = applyCredentials('example-api', credentials, headers ?? BASE, queryText ?? '');
    if ('refused' in expected) {
      expect(result.ok).toBe(false);
      if (result.ok) return;
      expect(result.reason).toContain('rule example-api');
      expect(result.reason).toContain(expected.refused);
      // SECURITY: reasons go into 403 bodies and audit lines: never a credential value.
      for (const value of [SECRET, ATTACKER, PLACEHOLDER, 'good-key-1']) expect(result.reason).not.toContain(value);
      return;
    }
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    if (expected.headers) expect(result.headers).toEqual(expected.headers);
    if (expected.query !== undefined) expect(result.query).toBe(expected.query);
    if (expected.outcome) expect(result.outcome).toBe(expected.outcome);
  });

  test('the input list is not changed', () => {
    const headers = [...BASE, 'x-api-key', PLACEHOLDER];
    applyCredentials('example-api', [inject(header('x-api-key'))], headers, '');
    expect(headers).toEqual([...BASE, 'x-api-key', PLACEHOLDER]);
  });

  test('an injection asks for the secret to be masked in responses, in its encodings too', () => {
    const secret = 'se"cr/et+value\\1';
    const special = { ...inject(header('x-api-key')), secret } as ResolvedCredential;
    const result = applyCredentials('example-api', [special], BASE, '');
    const froms = result.ok ? result.masks.map((pair) => pair.from) : [];
    expect(froms.slice(0, 4)).toEqual([secret, encodeURIComponent(secret), 'se\\"cr/et+value\\\\1', 'se\\"cr\\/et+value\\\\1']);
    expect(froms).toContain(Buffer.from(secret).toString('hex'));
  });

  test('Basic injection masks the base64 form of user:secret as well', () => {
    const result = applyCredentials('example-api', [inject(header('authorization', 'basic', 'bot'))], BASE, '');
    expect(result.ok && result.masks).toContainEqual({ from: b64(`bot:${SECRET}`), to: b64(`bot:${PLACEHOLDER}`) });
  });

  test('require and strip mask nothing', () => {
    const result = applyCredentials('example-api', [requireHashes(header('x-api-key'), 'k-1234567'), strip(query('t'))], [...BASE, 'x-api-key', 'k-1234567'], '?t=1');
    expect(result.ok && result.masks).toEqual([]);
  });
});

describe('maskPairs', () => {
  const forms = (secret: string) => maskPairs(secret, PLACEHOLDER).map((pair) => pair.from);
  const percentAll = (text: string) => [...Buffer.from(text)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
  const unicodeAll = (text: string) => [...text].map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');

  test.each([
    ['as is', (s: string) => s],
    ['percent-encoded minimally', (s: string) => encodeURIComponent(s)],
    ['every byte percent-encoded, lower-case hex', percentAll],
    ['every byte percent-encoded, upper-case hex', (s: string) => percentAll(s).toUpperCase()],
    ['JSON-escaped minimally', (s: string) => JSON.stringify(s).slice(1, -1)],
    ['JSON-escaped with "\\/" (PHP json_encode)', (s: string) => JSON.stringify(s).slice(1, -1).replace(/\//g, '\\/')],
    ['every character as \\uXXXX, lower-case', unicodeAll],
    ['every character as \\uXXXX, upper-case', (s: string) => unicodeAll(s).replace(/[0-9a-f]{4}/g, (hex) => hex.toUpperCase())],
    ['hex, lower-case', (s: string) => Buffer.from(s).toString('hex')],
    ['hex, upper-case', (s: string) => Buffer.from(s).toString('hex').toUpperCase()],
  ])('the secret %s is masked', (_name, encode) => {
    const secret = 'sk-live/9f+Ab_0123456789';
    expect(forms(secret)).toContain(encode(secret));
  });

  test('a whole encoding is replaced by the same encoding of the placeholder', () => {
    const secret = 'sk-live-0123456789';
    const hex = maskPairs(secret, PLACEHOLDER).find((pair) => pair.from === Buffer.from(secret).toString('hex'));
    expect(hex?.to).toBe(Buffer.from(PLACEHOLDER).toString('hex'));
  });

  test('base64: the secret inside a larger blob is found at every offset mod 3, standard and URL-safe, whatever surrounds it', () => {
    // Bytes chosen so that the standard and URL-safe alphabets differ ("+", "/").
    const secret = `sk-${String.fromCharCode(0xfb, 0xff, 0xbf)}-0123456789-abc`;
    const fragments = base64Fragments(secret);
    expect(fragments.length).toBe(6);
    for (const before of ['', 'a', 'ab', 'abc', 'abcd']) {
      for (const after of ['', 'x', 'xy', 'xyz']) {
        const standard = Buffer.from(before + secret + after).toString('base64');
        const urlSafe = standard.replace(/\+/g, '-').replace(/\//g, '_');
        expect(fragments.some((fragment) => standard.includes(fragment)), `${before}|${after} standard`).toBe(true);
        expect(fragments.some((fragment) => urlSafe.includes(fragment)), `${before}|${after} url-safe`).toBe(true);
      }
    }
  });

  test('base64 fragments carry only the secret: the same fragment is found whatever the bytes around it are', () => {
    const secret = 'real-secret-0123456789abcdef';
    const fragments = base64Fragments(secret);
    for (let offset = 0; offset < 3; offset++) {
      const found = (fill: number) => {
        const blob = Buffer.concat([Buffer.alloc(offset, fill), Buffer.from(secret), Buffer.alloc(2, fill)]).toString('base64');
        return fragments.filter((fragment) => blob.includes(fragment));
      };
      const withZeros = found(0x00);
      expect(withZeros.length, `offset ${offset}`).toBeGreaterThan(0);
      expect(found(0xff), `offset ${offset}`).toEqual(withZeros);
    }
  });

  test('a short secret gets no short encoded fragments that would match unrelated text', () => {
    expect(forms('abc').every((form) => form === 'abc' || form.length >= 8)).toBe(true);
  });
});
