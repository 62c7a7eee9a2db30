// WatchedFile: reads again when the path leads to a changed file (a ConfigMap-style symlink swap
// included), at most once per interval, and never hangs on a FIFO.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { WatchedFile } from './watched-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-watched-'));
  dirs.push(dir);
  return dir;
}

/** Lays out a volume as the kubelet does: DIR/..data → DIR/..TS, DIR/NAME → ..data/NAME. */
function configMapVolume(dir: string, name: string, content: string): (content: string) => void {
  let generation = 0;
  const write = (text: string) => {
    const version = `..2026_${generation++}`;
    mkdirSync(join(dir, version));
    writeFileSync(join(dir, version, name), text);
    symlinkSync(version, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  };
  write(content);
  symlinkSync(join('..data', name), join(dir, name));
  return write;
}

describe('WatchedFile', () => {
  test('reads the file again when a symlink swap points the path at a new file', () => {
    const dir = tempDir();
    const swap = configMapVolume(dir, 'jwks.json', 'one');
    let now = 0;
    const file = new WatchedFile(join(dir, 'jwks.json'), { parse: (content) => content.toString(), now: () => now, checkIntervalMs: 1000 });
    expect(file.read()).toEqual({ kind: 'value', value: 'one' });
    swap('two');
    now = 999;
    expect(file.read()).toEqual({ kind: 'value', value: 'one' });
    now = 1000;
    expect(file.read()).toEqual({ kind: 'value', value: 'two' });
  });

  test('sees a rewrite in place of the same size', () => {
    const dir = tempDir();
    const path = join(dir, 'f');
    writeFileSync(path, 'aaaa');
    let now = 0;
    const file = new WatchedFile(path, { parse: (content) => content.toString(), now: () => now, checkIntervalMs: 0 });
    expect(file.read()).toEqual({ kind: 'value', value: 'aaaa' });
    writeFileSync(path, 'bbbb');
    now = 1;
    expect(file.read()).toEqual({ kind: 'value', value: 'bbbb' });
  });

  test('parses only when the file changed', () => {
    const dir = tempDir();
    const path = join(dir, 'f');
    writeFileSync(path, 'x');
    let parsed = 0;
    const file = new WatchedFile(path, { parse: () => ++parsed, checkIntervalMs: 0 });
    file.read();
    file.read();
    file.read();
    expect(parsed).toBe(1);
  });

  test('says missing, then error, keeping the last good value aside', () => {
    const dir = tempDir();
    const path = join(dir, 'f');
    const file = new WatchedFile(path, {
      parse: (content) => {
        const value = JSON.parse(content.toString()) as unknown;
        if (typeof value !== 'number') throw new Error('not a number');
        return value;
      },
      checkIntervalMs: 0,
    });
    expect(file.read()).toEqual({ kind: 'missing' });
    writeFileSync(path, '7');
    expect(file.read()).toEqual({ kind: 'value', value: 7 });
    writeFileSync(path, '"seven"');
    expect(file.read()).toEqual({ kind: 'error', error: `${path}: not a number` });
    expect(file.lastValue).toBe(7);
    unlinkSync(path);
    expect(file.read()).toEqual({ kind: 'missing' });
    expect(file.lastValue).toBe(7);
  });

  test('refuses a file over the size limit', () => {
    const dir = tempDir();
    const path = join(dir, 'f');
    writeFileSync(path, 'x'.repeat(11));
    const file = new WatchedFile(path, { parse: (content) => content.length, maxBytes: 10, checkIntervalMs: 0 });
    expect(file.read()).toEqual({ kind: 'error', error: `${path} is larger than 10 bytes` });
  });

  test('refuses a FIFO, a device or a directory instead of hanging on it', () => {
    const dir = tempDir();
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const path of [fifo, '/dev/zero', dir]) {
      const file = new WatchedFile(path, { parse: (content) => content.length, checkIntervalMs: 0 });
      expect(file.read()).toEqual({ kind: 'error', error: `${path} is not a regular file` });
    }
  });
});
