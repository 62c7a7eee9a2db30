// canonicalPath against a real directory tree: it must reach the path the kernel would, symlinks
// (dangling ones, loops) and ".." included.
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { canonicalPath } from './canonical-path.js';

const ROOT = realpathSync(mkdtempSync('/var/tmp/srt-gw-canonical-path-'));
afterAll(() => rmSync(ROOT, { recursive: true, force: true }));

const HOME = join(ROOT, 'home');
const PROJECT = join(HOME, 'project');

function file(path: string, text = 'x'): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}
function link(path: string, target: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  symlinkSync(target, path);
}

file(join(HOME, '.ssh/id_rsa'));
file(join(HOME, '.bashrc'));
file(join(PROJECT, 'src/index.ts'));
link(join(PROJECT, 'dangling'), join(ROOT, 'opt/not-yet'));
link(join(HOME, 'alias'), 'project');
link(join(HOME, 'deep'), join(ROOT, 'opt/corp'));
file(join(ROOT, 'opt/corp/keys/signing.pem'));
file(join(ROOT, 'opt/readme'));
// What "~/deep/../readme" would name if ".." were applied before following the symlink.
file(join(HOME, 'readme'));

describe('canonicalPath', () => {
  test.each([
    ['an existing path through a symlink', join(HOME, 'alias/src'), join(PROJECT, 'src')],
    ['a missing tail after a symlink', join(HOME, 'alias/new/file'), join(PROJECT, 'new/file')],
    ['a dangling symlink resolves to its target', join(PROJECT, 'dangling/file'), join(ROOT, 'opt/not-yet/file')],
    // Template strings, not join(): join() would apply ".." before the test could.
    ['".." after a symlink climbs from its target', `${HOME}/deep/../readme`, join(ROOT, 'opt/readme')],
    ['".." inside a missing part is applied to the missing part', `${HOME}/missing/../.ssh`, join(HOME, '.ssh')],
    ['"." and doubled slashes', `${HOME}/./.ssh//`, join(HOME, '.ssh')],
    ['a path below a regular file stays as written', join(HOME, '.bashrc/inner'), join(HOME, '.bashrc/inner')],
  ])('%s', (_name, input, expected) => {
    expect(canonicalPath(input)).toBe(expected);
  });

  test('a symlink loop stays as named instead of hanging', () => {
    link(join(ROOT, 'loop-a'), 'loop-b');
    link(join(ROOT, 'loop-b'), 'loop-a');
    expect(canonicalPath(join(ROOT, 'loop-a/x')).startsWith(ROOT)).toBe(true);
  });
});
