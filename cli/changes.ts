// `srt-gw changes list|show|apply|drop`: the writes a reviewed-writes run (`srt-gw run
// --write-mode overlay`) held back, kept in the state directory until you apply or drop them.
import { spawnSync } from 'node:child_process';
import { closeSync, lstatSync, openSync, readlinkSync, readSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { homedir } from 'node:os';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { isWithin } from '../jail/filesystem/canonical-path.js';
import { findNativeHelpers } from '../jail/linux/native-helpers.js';
import { applyHeldChanges, heldChanges, upperPathOf } from '../jail/overlay/change-application.js';
import { ChangeSet, type Change } from '../jail/overlay/held-changes-store.js';
import { opaqueDirectoriesWith } from '../jail/overlay/overlay-changes.js';
import { describeKind } from '../jail/overlay/reviewed-writes.js';
import { stateDirectoryPath } from '../jail/state-directory.js';

function reviewOptions() {
  return { home: homedir(), opaqueDirectories: opaqueDirectoriesWith(findNativeHelpers().init) };
}

function refuseInsideJail(): void {
  // The state directory is hidden in a jail: approving its own writes is not the command's to do.
  if (process.env.SRT_GW_JAIL === '1') throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'srt-gw changes cannot run inside an srt-gw jail: reviewing is for you to do, outside any jail');
}

export async function changesList(flags: { json: boolean }): Promise<number> {
  refuseInsideJail();
  const options = reviewOptions();
  let damagedCount = 0;
  const damaged = (id: string, problem: string) => {
    damagedCount += 1;
    process.stderr.write(`srt-gw: held changes ${id} not listed: their record is damaged (${problem}); discard them with srt-gw changes drop ${id}\n`);
  };
  const sets = ChangeSet.list(stateDirectoryPath(), damaged).map((set) => ({ set, held: heldChanges(set, options) }));
  if (flags.json) {
    const records = sets.map(({ set, held }) => ({
      id: set.id,
      status: set.status,
      createdAt: set.record.createdAt,
      command: set.record.command,
      cwd: set.record.cwd,
      held,
    }));
    process.stdout.write(`${JSON.stringify(records, null, 2)}\n`);
    return 0;
  }
  if (sets.length === 0 && damagedCount === 0) process.stdout.write('no held changes\n');
  for (const { set, held } of sets) {
    const status = set.status === 'held' ? '' : set.status === 'running' ? ' (still running)' : ' (interrupted: nothing was applied)';
    process.stdout.write(`${set.id}  ${set.record.createdAt}  ${set.record.cwd}  ${set.record.command.join(' ')}${status}\n`);
    for (const change of held) process.stdout.write(`  ${describeKind(change)} ${change.path}: ${change.reason ?? 'held'}\n`);
  }
  return 0;
}

export async function changesShow(id: string, path: string | undefined): Promise<number> {
  refuseInsideJail();
  const set = ChangeSet.open(stateDirectoryPath(), id);
  const held = heldChanges(set, reviewOptions());
  const wanted = path === undefined ? undefined : isAbsolute(path) ? resolve(path) : resolve(set.record.cwd, path);
  const shown = wanted === undefined ? held : held.filter((change) => isWithin(change.path, wanted));
  if (wanted !== undefined && shown.length === 0) {
    throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `${wanted} is not among the held changes of ${id}; srt-gw changes show ${id} lists them`);
  }
  for (const change of shown) process.stdout.write(describeChange(set, change));
  return 0;
}

export async function changesApply(id: string, paths: string[], flags: { force?: boolean } = {}): Promise<number> {
  refuseInsideJail();
  const set = ChangeSet.open(stateDirectoryPath(), id);
  for (const change of applyHeldChanges(set, paths, reviewOptions(), flags.force === true)) process.stdout.write(`applied ${describeKind(change).trim()} ${change.path}\n`);
  return 0;
}

export async function changesDrop(id: string): Promise<number> {
  refuseInsideJail();
  ChangeSet.drop(stateDirectoryPath(), id);
  process.stdout.write(`dropped ${id}\n`);
  return 0;
}

/** One held change: why, then a unified diff against the host (or what it does, for the rest). */
function describeChange(set: ChangeSet, change: Change): string {
  const name = relative(set.record.cwd, change.path) || change.path;
  const header = `# ${change.path}: ${change.reason ?? 'held'}\n`;
  const upper = upperPathOf(set, change);
  switch (change.kind) {
    case 'delete':
      return `${header}deleted ${name}\n`;
    case 'directory':
      return `${header}new directory ${name}\n`;
    case 'symlink':
      return `${header}symlink ${name} -> ${upper === undefined ? '?' : readlinkSync(upper)}\n`;
    case 'special':
      return `${header}device, FIFO or socket ${name}\n`;
    case 'file': {
      if (upper === undefined) return `${header}${name}: its content is no longer in the change set\n`;
      const host = lstatSync(change.path, { throwIfNoEntry: false });
      const before = host?.isFile() === true ? change.path : '/dev/null';
      const upperStat = lstatSync(upper);
      const mode = host?.isFile() === true && (host.mode & 0o777) !== (upperStat.mode & 0o777) ? `mode ${octal(host.mode)} -> ${octal(upperStat.mode)}\n` : host === undefined ? `new file, mode ${octal(upperStat.mode)}\n` : '';
      if (isBinary(upper) || (before !== '/dev/null' && isBinary(before))) return `${header}${mode}binary file ${name} differs (${upperStat.size} bytes now)\n`;
      const diff = spawnSync('diff', ['-u', '--label', before === '/dev/null' ? '/dev/null' : `a/${name}`, '--label', `b/${name}`, before, upper], { encoding: 'utf8', maxBuffer: 1 << 28 });
      if (diff.error !== undefined) throw new SrtGwError(ErrorCodes.CHANGES_INVALID, `cannot run diff to show ${change.path}: ${diff.error.message}; install diffutils`);
      return `${header}${mode}${diff.stdout}`;
    }
  }
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** A NUL byte in the first 8 KiB: git's own test for binary content. */
function isBinary(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(8192);
    const read = readSync(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, read).includes(0);
  } finally {
    closeSync(fd);
  }
}
