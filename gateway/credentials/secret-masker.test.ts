// The response masker: an injected secret echoed by an upstream becomes the placeholder however
// the body is cut into chunks, and memory stays bounded by the longest pattern.
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, expect, test } from 'vitest';
import { maskPairs } from '../../policies/credential-rewrite.js';
import { createMaskingTransform, maskText, StreamMasker, type MaskPair } from './secret-masker.js';

const SECRET = 'real-secret-0123456789abcdef';
const PLACEHOLDER = 'srtgw-placeholder-example-4f2a';
const PAIRS: MaskPair[] = [{ from: SECRET, to: PLACEHOLDER }];

/** Runs `input` through a masker cut at the given offsets. */
function maskInChunks(input: string, cuts: number[], pairs: readonly MaskPair[] = PAIRS, lengthPreserving = false): string {
  const masker = new StreamMasker(pairs, { lengthPreserving });
  const bytes = Buffer.from(input);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(masker.push(bytes.subarray(from, cut)));
    from = cut;
  }
  out.push(masker.flush());
  return Buffer.concat(out).toString();
}

describe('StreamMasker', () => {
  const body = `{"headers":{"x-api-key":"${SECRET}","other":"x"},"again":"${SECRET}"}`;
  const expected = `{"headers":{"x-api-key":"${PLACEHOLDER}","other":"x"},"again":"${PLACEHOLDER}"}`;

  test('in one chunk', () => {
    expect(maskInChunks(body, [])).toBe(expected);
  });

  test('split into two chunks at every possible offset', () => {
    for (let cut = 0; cut <= body.length; cut++) expect(maskInChunks(body, [cut]), `cut at ${cut}`).toBe(expected);
  });

  test('one byte at a time', () => {
    expect(maskInChunks(body, [...Array(body.length).keys()].slice(1))).toBe(expected);
  });

  test('split into three chunks inside the secret', () => {
    const start = body.indexOf(SECRET);
    for (let a = start; a < start + SECRET.length; a += 3) {
      for (let b = a + 1; b <= start + SECRET.length; b += 5) expect(maskInChunks(body, [a, b]), `cuts ${a}, ${b}`).toBe(expected);
    }
  });

  test('text without the secret passes unchanged, including a prefix of it at the very end', () => {
    const partial = `hello ${SECRET.slice(0, -1)}`;
    expect(maskInChunks(partial, [3, 10])).toBe(partial);
  });

  test('adjacent secrets are both masked', () => {
    expect(maskInChunks(SECRET + SECRET, [SECRET.length - 2])).toBe(PLACEHOLDER + PLACEHOLDER);
  });

  test('several patterns (percent-encoded and JSON-escaped forms) are masked', () => {
    const secret = 'a"b/c+d\\e-0123';
    const pairs = [
      { from: secret, to: PLACEHOLDER },
      { from: encodeURIComponent(secret), to: PLACEHOLDER },
      { from: JSON.stringify(secret).slice(1, -1), to: PLACEHOLDER },
    ];
    const input = `raw=${secret} url=${encodeURIComponent(secret)} json=${JSON.stringify(secret)}`;
    for (let cut = 0; cut <= input.length; cut += 2) {
      expect(maskInChunks(input, [cut], pairs)).toBe(`raw=${PLACEHOLDER} url=${PLACEHOLDER} json="${PLACEHOLDER}"`);
    }
  });

  test('a longer form that starts first is masked whole, not cut by a shorter form inside it', () => {
    const pairs = [
      { from: 'def', to: 'SHORT' },
      { from: 'abcdefgh', to: 'LONG' },
    ];
    for (let cut = 0; cut <= 8; cut++) expect(maskInChunks('xxabcdefghyy', [2 + cut], pairs), `cut at ${2 + cut}`).toBe('xxLONGyy');
  });

  describe('every encoded form an upstream may reflect, cut at every offset', () => {
    const secret = 'sk-live/Ab+9_0123456789xyz';
    const pairs = maskPairs(secret, PLACEHOLDER);
    const percentAll = (upper: boolean) => [...Buffer.from(secret)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('')[upper ? 'toUpperCase' : 'toLowerCase']();
    const unicodeAll = [...secret].map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');
    const base64At = (prefix: string, urlSafe: boolean) => {
      const blob = Buffer.from(`${prefix}${secret}!!`).toString('base64');
      return urlSafe ? blob.replace(/\+/g, '-').replace(/\//g, '_') : blob;
    };
    test.each([
      ['percent-encoded, upper-case hex', percentAll(true)],
      ['percent-encoded, lower-case hex', percentAll(false)],
      ['\\uXXXX-escaped', unicodeAll],
      ['hex', Buffer.from(secret).toString('hex')],
      ['HEX', Buffer.from(secret).toString('hex').toUpperCase()],
      ['base64 at offset 0', base64At('', false)],
      ['base64 at offset 1', base64At('{', false)],
      ['base64 at offset 2', base64At('{"', false)],
      ['URL-safe base64 at offset 1', base64At('{', true)],
      ['URL-safe base64 at offset 2', base64At('{"', true)],
    ])('%s', (_name, encoded) => {
      const input = `{"echo":"${encoded}"}`;
      for (let cut = 0; cut <= input.length; cut++) {
        const masked = maskInChunks(input, [cut], pairs);
        expect(masked, `cut at ${cut}`).not.toContain(encoded);
        expect(pairs.some((pair) => masked.includes(pair.to)), `cut at ${cut}`).toBe(true);
      }
      expect(maskText(input, pairs)).toBe(maskInChunks(input, [], pairs));
    });
  });

  test('holds back at most (longest pattern - 1) bytes, whatever the stream length', () => {
    const masker = new StreamMasker(PAIRS);
    let emitted = 0;
    const chunk = Buffer.alloc(64 * 1024, 'x');
    for (let i = 0; i < 64; i++) emitted += masker.push(chunk).length;
    expect(64 * chunk.length - emitted).toBe(SECRET.length - 1);
    expect(masker.flush().length).toBe(SECRET.length - 1);
  });

  test('length-preserving mode (WebSocket frames) keeps every byte count', () => {
    const input = `frame:${SECRET}:end`;
    const masked = maskInChunks(input, [10], PAIRS, true);
    expect(masked.length).toBe(input.length);
    expect(masked).not.toContain(SECRET);
    expect(masked).toBe(`frame:${PLACEHOLDER}:end`.slice(0, 6) + PLACEHOLDER.slice(0, SECRET.length).padEnd(SECRET.length, '*') + ':end');
  });

  test('no pairs: chunks pass through untouched', () => {
    const masker = new StreamMasker([]);
    const chunk = Buffer.from('anything');
    expect(masker.push(chunk)).toBe(chunk);
    expect(masker.flush().length).toBe(0);
  });
});

describe('createMaskingTransform', () => {
  test('masks a stream whose chunks split the secret', async () => {
    const parts = ['{"k":"real-sec', 'ret-0123', '456789ab', 'cdef"}'];
    const output = await text(Readable.from(parts.map((part) => Buffer.from(part))).pipe(createMaskingTransform(PAIRS)));
    expect(output).toBe(`{"k":"${PLACEHOLDER}"}`);
  });
});

describe('maskText', () => {
  test('masks every occurrence in a header value', () => {
    expect(maskText(`a=${SECRET}; b=${SECRET}`, PAIRS)).toBe(`a=${PLACEHOLDER}; b=${PLACEHOLDER}`);
  });
});
