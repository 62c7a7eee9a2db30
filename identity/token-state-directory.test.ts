// The client-tokens directory: created private, refused when others could write it.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { checkTokenStateDirectory, ensureTokenStateDirectory, tokenStatePaths } from './token-state-directory.js';

const root = mkdtempSync(join(tmpdir(), 'srt-gw-token-state-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('ensureTokenStateDirectory', () => {
  test('creates --state-dir and client-tokens/ inside it, 0700', () => {
    const paths = ensureTokenStateDirectory(join(root, 'a', 'state'));
    expect(paths).toEqual(tokenStatePaths(join(root, 'a', 'state')));
    expect(paths.directory).toBe(join(root, 'a', 'state', 'client-tokens'));
    expect(statSync(join(root, 'a', 'state')).mode & 0o777).toBe(0o700);
    expect(statSync(paths.directory).mode & 0o777).toBe(0o700);
  });

  test('refuses a state directory or client-tokens directory others can write', () => {
    const open = join(root, 'open');
    mkdirSync(open, { mode: 0o700 });
    chmodSync(open, 0o777);
    expect(() => ensureTokenStateDirectory(open)).toThrow(/must be a directory of yours that only you can write/);
    const inner = join(root, 'inner');
    mkdirSync(join(inner, 'client-tokens'), { recursive: true, mode: 0o700 });
    chmodSync(join(inner, 'client-tokens'), 0o770);
    expect(() => ensureTokenStateDirectory(inner)).toThrow(/client-tokens must be a directory of yours/);
  });

  test('refuses a symlink in place of the client-tokens directory', () => {
    const linked = join(root, 'linked');
    mkdirSync(linked, { mode: 0o700 });
    mkdirSync(join(root, 'elsewhere'), { mode: 0o700 });
    symlinkSync(join(root, 'elsewhere'), join(linked, 'client-tokens'));
    expect(() => ensureTokenStateDirectory(linked)).toThrow(/must be a directory of yours/);
  });
});

describe('checkTokenStateDirectory (the gateway, reading)', () => {
  test('accepts a directory not made yet, and a private one', () => {
    expect(checkTokenStateDirectory(join(root, 'none')).directory).toBe(join(root, 'none', 'client-tokens'));
    const paths = ensureTokenStateDirectory(join(root, 'private'));
    expect(checkTokenStateDirectory(join(root, 'private'))).toEqual(paths);
  });

  test('refuses one that group or others can write', () => {
    const paths = ensureTokenStateDirectory(join(root, 'loose'));
    chmodSync(paths.directory, 0o775);
    expect(() => checkTokenStateDirectory(join(root, 'loose'))).toThrow(/only its owner \(this user or root\) can write/);
  });
});
