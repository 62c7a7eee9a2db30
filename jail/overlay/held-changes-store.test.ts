// The change sets of reviewed-writes runs in the state directory: their layout and permissions,
// listing, status, removal, and records that were tampered with or damaged, which are refused.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { SrtGwError } from '../../errors.js';
import { ChangeSet, changesDirectory, type ChangeSetRecord } from './held-changes-store.js';

const BASE = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-held-changes-')));
afterAll(() => rmSync(BASE, { recursive: true, force: true }));
afterEach(() => {
  vi.useRealTimers();
});

let made = 0;
/** A fresh state directory and two writable roots. */
function fixture(): { state: string; roots: [string, string] } {
  made += 1;
  const dir = join(BASE, String(made));
  const roots: [string, string] = [join(dir, 'project'), join(dir, 'cache')];
  for (const root of roots) mkdirSync(root, { recursive: true });
  return { state: join(dir, 'state'), roots };
}

function start(state: string, roots: readonly string[]): ChangeSet {
  return ChangeSet.create(state, { startedAtMs: Date.now(), command: ['sh', '-c', 'true'], cwd: roots[0]!, roots, deletes: 'apply' });
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

function recordOf(set: ChangeSet): ChangeSetRecord {
  return JSON.parse(readFileSync(join(set.dir, 'run.json'), 'utf8')) as ChangeSetRecord;
}

function rewriteRecord(set: ChangeSet, change: (record: Record<string, unknown>) => Record<string, unknown>): void {
  writeFileSync(join(set.dir, 'run.json'), JSON.stringify(change({ ...recordOf(set) })));
}

/** The pid of a process that has ended. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '']);
  return child.pid;
}

function errorOf(run: () => unknown): SrtGwError {
  try {
    run();
  } catch (error) {
    if (error instanceof SrtGwError) return error;
    throw error;
  }
  throw new Error('expected an SrtGwError');
}

describe('ChangeSet.create', () => {
  it('makes changes/<id>/ with an upper and a work directory per root, none readable by others', () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    expect(set.id).toMatch(/^\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(set.dir).toBe(join(changesDirectory(state), set.id));
    expect(readdirSync(set.dir).sort()).toEqual(['layers', 'run.json']);
    expect(readdirSync(join(set.dir, 'layers')).sort()).toEqual(['0', '1']);
    for (const layer of [0, 1]) {
      expect(set.upperDir(layer)).toBe(join(set.dir, 'layers', String(layer), 'upper'));
      expect(readdirSync(join(set.layersDir, String(layer))).sort()).toEqual(['upper', 'work']);
      expect(mode(set.upperDir(layer))).toBe(0o700);
      expect(mode(join(set.layersDir, String(layer), 'work'))).toBe(0o700);
    }
    expect(mode(changesDirectory(state))).toBe(0o700);
    expect(mode(set.dir)).toBe(0o700);
    expect(mode(join(set.dir, 'run.json'))).toBe(0o600);
  });

  it('records what ran, from where, over which roots, by which process; status running', () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    expect(recordOf(set)).toEqual({
      id: set.id,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
      startedAtMs: set.record.startedAtMs,
      command: ['sh', '-c', 'true'],
      cwd: roots[0],
      roots,
      deletes: 'apply',
      pid: process.pid,
      status: 'running',
    });
    expect(set.status).toBe('running');
  });
});

describe('ChangeSet.open and list', () => {
  it('lists every change set, oldest first; a directory without a record yet and foreign names are passed over', () => {
    const { state, roots } = fixture();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-12-08T10:00:02Z'));
    const later = start(state, roots);
    vi.setSystemTime(new Date('2026-12-08T09:59:59Z'));
    const earlier = start(state, roots);
    vi.useRealTimers();
    expect(earlier.id).toMatch(/^20261208-095959-/);
    mkdirSync(join(changesDirectory(state), '20261208-100003-abcdef'));
    mkdirSync(join(changesDirectory(state), 'not-a-change-set'));
    expect(ChangeSet.list(state).map((set) => set.id)).toEqual([earlier.id, later.id]);
  });

  it('lists nothing when there is no changes directory', () => {
    expect(ChangeSet.list(join(fixture().state, 'absent'))).toEqual([]);
  });

  it('opens a change set by id with the record as saved by update', () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    const held = [{ path: join(roots[1], 'x'), root: roots[1], layer: 1, kind: 'file' as const, reason: 'why' }];
    set.update({ status: 'held', held });
    const opened = ChangeSet.open(state, set.id);
    expect(opened.record.held).toEqual(held);
    expect(opened.status).toBe('held');
  });

  it.each([
    ['an unknown id', '20261208-000000-000000'],
    ['an id that leads out of the changes directory', '../../etc'],
    ['an empty id', ''],
  ])('refuses %s, naming the command that lists the ids', (_name, id) => {
    const { state, roots } = fixture();
    start(state, roots);
    const error = errorOf(() => ChangeSet.open(state, id));
    expect(error.code).toBe('SRTGW_CHANGES_INVALID');
    expect(error.message).toContain('srt-gw changes list shows the ids');
  });

  it("a running record whose srt-gw process is gone reads as interrupted", () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    rewriteRecord(set, (record) => ({ ...record, pid: deadPid() }));
    expect(ChangeSet.open(state, set.id).status).toBe('interrupted');
    expect(ChangeSet.open(state, set.id).record.status).toBe('running');
  });
});

describe('a damaged or tampered record', () => {
  const CASES: [name: string, tamper: (record: Record<string, unknown>, roots: readonly [string, string]) => Record<string, unknown>, problem: RegExp][] = [
    ['a held path with ".."', (record, roots) => ({ ...record, held: [{ path: `${roots[0]}/../../etc/passwd`, root: roots[0], layer: 0, kind: 'file' }] }), /held\[0\]\.path .* without "\." or "\.\."/],
    ['a held path outside its root', (record, roots) => ({ ...record, held: [{ path: '/etc/passwd', root: roots[0], layer: 0, kind: 'file' }] }), /held\[0\]\.path \/etc\/passwd is not below its root/],
    ['a held path that is the root itself', (record, roots) => ({ ...record, held: [{ path: roots[0], root: roots[0], layer: 0, kind: 'delete' }] }), /is not below its root/],
    ['a relative held path', (record, roots) => ({ ...record, held: [{ path: 'etc/passwd', root: roots[0], layer: 0, kind: 'file' }] }), /held\[0\]\.path "etc\/passwd" is not an absolute path/],
    ['a held root that is not the layer\'s', (record) => ({ ...record, held: [{ path: '/etc/passwd', root: '/etc', layer: 0, kind: 'file' }] }), /held\[0\]\.root "\/etc" is not roots\[0\]/],
    ['a held layer beyond the roots', (record, roots) => ({ ...record, held: [{ path: join(roots[0], 'a'), root: roots[0], layer: 7, kind: 'file' }] }), /is not roots\[7\]/],
    ['a root with ".."', (record, roots) => ({ ...record, roots: [`${roots[0]}/..`, roots[1]] }), /roots\[0\] .* not an absolute path without/],
    ['a relative root', (record) => ({ ...record, roots: ['project'] }), /roots\[0\] "project"/],
    ['an unknown kind of change', (record, roots) => ({ ...record, held: [{ path: join(roots[0], 'a'), root: roots[0], layer: 0, kind: 'hardlink' }] }), /held\.0\.kind/],
    ['another change set\'s id', (record) => ({ ...record, id: '20200101-000000-aaaaaa' }), /its id is "20200101-000000-aaaaaa"/],
    ['a missing field', (record) => ({ ...record, roots: undefined }), /^roots: /],
  ];

  it.each(CASES)('is refused: %s', (_name, tamper, problem) => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    rewriteRecord(set, (record) => tamper(record, roots));
    const error = errorOf(() => ChangeSet.open(state, set.id));
    expect(error.code).toBe('SRTGW_CHANGES_INVALID');
    expect(error.message).toContain(`the record of held changes ${set.id}`);
    expect(error.message).toContain(`srt-gw changes drop ${set.id}`);
    const damaged: [string, string][] = [];
    expect(ChangeSet.list(state, (id, why) => damaged.push([id, why]))).toEqual([]);
    expect(damaged).toEqual([[set.id, expect.stringMatching(problem) as unknown]]);
  });

  it('that is not JSON is refused, and drop removes it', () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    writeFileSync(join(set.dir, 'run.json'), '{"id": ');
    expect(errorOf(() => ChangeSet.open(state, set.id)).message).toMatch(/is damaged: it cannot be read/);
    ChangeSet.drop(state, set.id);
    expect(existsSync(set.dir)).toBe(false);
  });
});

describe('removing a change set', () => {
  it('remove and drop take the work directory the kernel left mode 000', () => {
    const { state, roots } = fixture();
    for (const remover of [(set: ChangeSet) => set.remove(), (set: ChangeSet) => ChangeSet.drop(state, set.id)]) {
      const set = start(state, roots);
      rewriteRecord(set, (record) => ({ ...record, pid: deadPid() }));
      const inner = join(set.layersDir, '0', 'work', 'work');
      mkdirSync(inner);
      writeFileSync(join(set.upperDir(0), 'f'), 'x');
      chmodSync(inner, 0o000);
      remover(set);
      expect(existsSync(set.dir)).toBe(false);
    }
    expect(ChangeSet.list(state)).toEqual([]);
  });

  it('drop refuses a change set whose run is still going', () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    expect(errorOf(() => ChangeSet.drop(state, set.id)).message).toMatch(/still running/);
    expect(existsSync(set.dir)).toBe(true);
  });

  it('drop of an unknown id removes nothing', () => {
    const { state, roots } = fixture();
    const set = start(state, roots);
    expect(errorOf(() => ChangeSet.drop(state, '..')).message).toMatch(/no held changes/);
    expect(existsSync(set.dir)).toBe(true);
  });
});
