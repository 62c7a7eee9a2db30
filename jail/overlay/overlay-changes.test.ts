// The review of an upper layer, on real directories: which changes are applied and which held,
// and why. Whiteouts and opaque directories need a real overlay: test/e2e/overlay-writes.test.ts.
import { chmodSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findChanges, heldReason, hookPathsOf, type ReviewContext } from './overlay-changes.js';

const BASE = realpathSync(mkdtempSync('/var/tmp/srt-gw-overlay-changes-'));
afterAll(() => rmSync(BASE, { recursive: true, force: true }));
const HOST = join(BASE, 'host');
const UPPER = join(BASE, 'upper');
const HOME = join(BASE, 'home');

function put(path: string, text = 'x\n', mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, mode);
}

// The host: a repository with core.hooksPath, a bare repository, an executable script, an old file.
put(join(HOST, '.git/HEAD'), 'ref: refs/heads/main\n');
put(join(HOST, '.git/config'), '[core]\n\thooksPath = tools/hooks\n');
mkdirSync(join(HOST, '.git/objects'), { recursive: true });
put(join(HOST, 'bare.git/HEAD'), 'ref: refs/heads/main\n');
mkdirSync(join(HOST, 'bare.git/objects'), { recursive: true });
put(join(HOST, 'run.sh'), '#!/bin/sh\n', 0o755);
put(join(HOST, 'old.txt'), 'old\n');
// The run starts after the host's files were made; one is changed after the start (file times
// come from a coarse clock: the start is taken a little later, the change made well after it).
put(join(HOST, 'changed-meanwhile.txt'), 'before\n');
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60);
const startedAtMs = Date.now();
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60);
put(join(HOST, 'changed-meanwhile.txt'), 'host\n');

const CASES: [name: string, path: string, make: () => void, held: RegExp | undefined][] = [
  ['a new file is applied', 'new.txt', () => put(join(UPPER, 'new.txt')), undefined],
  ['an edited file is applied', 'old.txt', () => put(join(UPPER, 'old.txt'), 'new\n'), undefined],
  ['an edited script keeps its executable bit and is applied', 'run.sh', () => put(join(UPPER, 'run.sh'), '#!/bin/sh\necho\n', 0o755), undefined],
  ['a new executable file is held', 'tool', () => put(join(UPPER, 'tool'), '#!/bin/sh\n', 0o755), /new executable bit/],
  ['git objects, refs, logs, index, HEAD and COMMIT_EDITMSG are applied', '.git/objects/ab/cdef', () => put(join(UPPER, '.git/objects/ab/cdef')), undefined],
  ['git refs are applied', '.git/refs/heads/main', () => put(join(UPPER, '.git/refs/heads/main')), undefined],
  ['the git index is applied', '.git/index', () => put(join(UPPER, '.git/index')), undefined],
  ['COMMIT_EDITMSG is applied', '.git/COMMIT_EDITMSG', () => put(join(UPPER, '.git/COMMIT_EDITMSG')), undefined],
  ['.git/config is held', '.git/config', () => put(join(UPPER, '.git/config'), '[core]\n\tfsmonitor = x\n'), /git configuration/],
  ['a hook is held', '.git/hooks/pre-push', () => put(join(UPPER, '.git/hooks/pre-push')), /hooks/],
  ['.git/commondir is held', '.git/commondir', () => put(join(UPPER, '.git/commondir')), /commondir/],
  ['any other file of a git directory is held', '.git/description', () => put(join(UPPER, '.git/description')), /git reads description/],
  ['a nested repository\'s config is held', 'sub/.git/config', () => put(join(UPPER, 'sub/.git/config')), /git configuration/],
  ['a submodule\'s git directory is held', '.git/modules/m/config', () => put(join(UPPER, '.git/modules/m/config')), /git reads modules/],
  ['a .git file is held', 'wt/.git', () => put(join(UPPER, 'wt/.git'), 'gitdir: /elsewhere\n'), /another git directory/],
  ['a bare repository\'s hook is held', 'bare.git/hooks/post-update', () => put(join(UPPER, 'bare.git/hooks/post-update')), /hooks/],
  ['a bare repository\'s objects are applied', 'bare.git/objects/aa/bb', () => put(join(UPPER, 'bare.git/objects/aa/bb')), undefined],
  ['a file in core.hooksPath is held', 'tools/hooks/pre-commit', () => put(join(UPPER, 'tools/hooks/pre-commit')), /core\.hooksPath/],
  ['a husky script is held', '.husky/pre-commit', () => put(join(UPPER, '.husky/pre-commit')), /husky/],
  ['.bashrc is held', '.bashrc', () => put(join(UPPER, '.bashrc')), /shell startup/],
  ['a nested .envrc is held', 'deep/er/.envrc', () => put(join(UPPER, 'deep/er/.envrc')), /direnv/],
  ['a file in .vscode is held', '.vscode/tasks.json', () => put(join(UPPER, '.vscode/tasks.json')), /VS Code/],
  ['a policy file is held', 'sub2/.srt-gw.yaml', () => put(join(UPPER, 'sub2/.srt-gw.yaml')), /srt-gw policy/],
  ['a symlink inside the root is applied', 'link-in', () => symlinkSync('old.txt', join(UPPER, 'link-in')), undefined],
  ['a symlink out of the root is held', 'link-out', () => symlinkSync('../../../etc/passwd', join(UPPER, 'link-out')), /outside the writable/],
  ['a file the host changed during the run is a conflict', 'changed-meanwhile.txt', () => put(join(UPPER, 'changed-meanwhile.txt'), 'jail\n'), /conflict/],
];

describe('heldReason', () => {
  for (const [, , make] of CASES) make();
  const found = findChanges([{ root: HOST, upper: UPPER }], () => new Set());
  const context: ReviewContext = {
    roots: [HOST],
    home: HOME,
    startedAtMs,
    deletes: 'apply',
    finished: true,
    hookPaths: [hookPathsOf(HOST, UPPER)],
    gitDirectories: new Map(),
  };
  it.each(CASES)('%s', (_name, path, _make, held) => {
    const change = found.find((entry) => entry.path === join(HOST, path));
    expect(change, `${path} not found in the upper layer`).toBeDefined();
    const reason = heldReason(change!, context, []);
    if (held === undefined) expect(reason).toBeUndefined();
    else expect(reason).toMatch(held);
  });

  it('holds everything of a run that did not finish', () => {
    const change = found.find((entry) => entry.path === join(HOST, 'new.txt'))!;
    expect(heldReason(change, { ...context, finished: false }, [])).toMatch(/did not finish/);
  });

  it('holds what is inside a held directory', () => {
    const change = found.find((entry) => entry.path === join(HOST, 'new.txt'))!;
    expect(heldReason(change, context, [join(HOST, 'deep')])).toBeUndefined();
    const inside = found.find((entry) => entry.path === join(HOST, 'deep/er/.envrc'))!;
    expect(heldReason(inside, { ...context }, [join(HOST, 'deep')])).toMatch(/inside .*deep, which is held/);
  });

  it('finds new directories before what is in them', () => {
    const paths = found.map((entry) => entry.path);
    expect(paths.indexOf(join(HOST, 'deep'))).toBeLessThan(paths.indexOf(join(HOST, 'deep/er/.envrc')));
    expect(found.find((entry) => entry.path === join(HOST, 'deep'))?.kind).toBe('directory');
    // An existing directory with changes inside is not itself a change.
    expect(paths).not.toContain(join(HOST, '.git'));
  });
});
