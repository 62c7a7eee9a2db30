// The trust record (policy-trust.ts): what it accepts when read back, and that anything else
// trusts nothing. Each case writes the record into a temporary state directory.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { PolicyTrustStore, sha256Hex } from './policy-trust.js';

const root = mkdtempSync(join(tmpdir(), 'srt-gw-policy-trust-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let cases = 0;

/** Opens a store whose record file holds `text`. */
function openRecord(text: string): PolicyTrustStore {
  const state = join(root, `state-${++cases}`);
  mkdirSync(join(state, 'srt-gw'), { recursive: true, mode: 0o700 });
  writeFileSync(join(state, 'srt-gw', 'trusted-policies.json'), text);
  return PolicyTrustStore.open({ XDG_STATE_HOME: state }, root);
}

const hash = sha256Hex('version: 1\nrules: []\n');

describe('reading the trust record', () => {
  test('a record srt-gw wrote trusts exactly the content it names', () => {
    const store = openRecord(JSON.stringify({ version: 1, files: { '/project/.srt-gw.yaml': hash } }));
    expect(store.isTrusted('/project/.srt-gw.yaml', 'version: 1\nrules: []\n')).toBe(true);
    expect(store.isTrusted('/project/.srt-gw.yaml', 'version: 1\nrules: [x]\n')).toBe(false);
    expect(store.entries()).toEqual([['/project/.srt-gw.yaml', hash]]);
  });

  test('a missing record trusts nothing', () => {
    const store = PolicyTrustStore.open({ XDG_STATE_HOME: join(root, 'none') }, root);
    expect(store.entries()).toEqual([]);
  });

  test.each([
    ['not JSON', '{version: 1'],
    ['not an object', '[1]'],
    ['null', 'null'],
    ['another version', JSON.stringify({ version: 2, files: {} })],
    ['no version', JSON.stringify({ files: {} })],
    ['files missing', JSON.stringify({ version: 1 })],
    ['files an array', JSON.stringify({ version: 1, files: [hash] })],
    ['a hash that is not hex sha256', JSON.stringify({ version: 1, files: { '/p/.srt-gw.yaml': 'trust-me' } })],
    ['an upper-case hash', JSON.stringify({ version: 1, files: { '/p/.srt-gw.yaml': hash.toUpperCase() } })],
    ['a hash that is not a string', JSON.stringify({ version: 1, files: { '/p/.srt-gw.yaml': 1 } })],
  ])('%s is refused, not read as trusting anything', (_name, text) => {
    expect(() => openRecord(text)).toThrow(expect.objectContaining({ code: ErrorCodes.CONFIG_INVALID, message: expect.stringContaining('is not a trust record srt-gw wrote') }));
  });
});
