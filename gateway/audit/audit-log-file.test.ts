// The audit log's batching writer: every line arrives whole and in order, whatever the batch
// boundaries, through a file or a pipe that reads slowly; a quiet log still reaches its file; a
// destination that cannot be opened stops the start, one that fails later does not crash anything.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test, vi } from 'vitest';
import { ErrorCodes } from '../../errors.js';
import { errorOf } from '../../test/support/srt-gw-error.js';
import { AuditLogFile } from './audit-log-file.js';

const dir = mkdtempSync(join(tmpdir(), 'srt-gw-audit-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Lines of varied length and non-ASCII text, so batches end mid-way through lines of every size. */
function sampleLines(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `{"n":${i},"path":"/v1/${'é'.repeat(i % 97)}${'x'.repeat((i * 37) % 300)}"}\n`);
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('AuditLogFile', () => {
  test('20,000 lines (several slabs) reach the file whole and in order; the directory is created', async () => {
    const path = join(dir, 'nested', 'deeper', 'audit.log');
    const log = new AuditLogFile(path);
    const lines = sampleLines(20_000);
    for (const line of lines) expect(log.write(line)).toBe(true);
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe(lines.join(''));
  });

  test('appends to an existing file', async () => {
    const path = join(dir, 'append.log');
    writeFileSync(path, 'earlier\n');
    const log = new AuditLogFile(path);
    log.write('later\n');
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe('earlier\nlater\n');
  });

  test('a line larger than a slab is written whole, between its neighbours', async () => {
    const path = join(dir, 'huge.log');
    const log = new AuditLogFile(path);
    const huge = `${'y'.repeat(200_000)}\n`;
    log.write('before\n');
    log.write(huge);
    log.write('after\n');
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe(`before\n${huge}after\n`);
  });

  test('a single quiet line reaches the file without close (the periodic flush)', async () => {
    const path = join(dir, 'quiet.log');
    const log = new AuditLogFile(path);
    log.write('one decision\n');
    await until(() => readFileSync(path, 'utf8') === 'one decision\n', 'the periodic flush');
    await log.close();
  });

  test('through a pipe whose reader is slow, every byte arrives in order (partial writes resumed)', async () => {
    // The reader sleeps before reading, so the pipe (64 KiB) fills and writes come back short.
    const reader = spawn('sh', ['-c', 'sleep 0.3; cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const received: Buffer[] = [];
    reader.stdout.on('data', (chunk: Buffer) => received.push(chunk));
    const exited = new Promise((resolve) => reader.on('close', resolve));
    const fd = (reader.stdin as unknown as { _handle: { fd: number } })._handle.fd;
    const log = new AuditLogFile(fd);
    const lines = sampleLines(5_000);
    for (const line of lines) log.write(line);
    await log.close();
    reader.stdin.end();
    await exited;
    expect(Buffer.concat(received).toString('utf8')).toBe(lines.join(''));
  });

  test('a path that cannot be opened is a configuration error naming it and the fix', () => {
    const blocker = join(dir, 'a-file');
    writeFileSync(blocker, '');
    const error = errorOf(() => new AuditLogFile(join(blocker, 'audit.log')));
    expect(error.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(error.message).toContain(join(blocker, 'audit.log'));
    expect(error.message).toContain('give --log a writable file');
  });

  test('a destination that fails later is reported once on stderr; nothing throws', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      // A descriptor opened read-only: every write fails with EBADF.
      const fd = openSync(join(dir, 'append.log'), 'r');
      const log = new AuditLogFile(fd);
      for (const line of sampleLines(3_000)) log.write(line);
      log.flush();
      await until(() => stderr.mock.calls.length > 0, 'the error report');
      for (const line of sampleLines(3_000)) log.write(line);
      await log.close();
      const reports = stderr.mock.calls.map(([text]) => String(text));
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatch(/^srt-gw: audit log descriptor \d+: EBADF.*lines are being lost\n$/);
    } finally {
      stderr.mockRestore();
    }
  });

  test('a destination that takes nothing holds at most 16 MiB of lines: later batches are dropped and told once', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const fifo = join(dir, 'stalled.fifo');
    execFileSync('mkfifo', [fifo]);
    // Opened for reading too (so open does not wait for a reader), and never read: it fills and
    // every later write comes back EAGAIN.
    const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    try {
      const log = new AuditLogFile(fd);
      const line = `${'x'.repeat(1023)}\n`;
      for (let i = 0; i < 40 * 1024; i++) log.write(line); // 40 MiB
      log.flush();
      const reports = stderr.mock.calls.map(([text]) => String(text)).filter((text) => text.startsWith('srt-gw:'));
      expect(reports).toEqual([expect.stringMatching(/^srt-gw: audit log descriptor \d+: the destination takes lines more slowly than they come \(over 16 MiB waiting\); lines are being lost\n$/)]);
      // Closing the descriptor fails what is still waiting, so close() need not wait for it.
      closeSync(fd);
      await log.close();
    } finally {
      stderr.mockRestore();
    }
  });

  test('reopen() after a rotation (rename): lines written before stay in the renamed file, later ones go to a new file, none split', async () => {
    const path = join(dir, 'rotated.log');
    const log = new AuditLogFile(path);
    const lines = sampleLines(3000);
    for (const line of lines.slice(0, 1500)) log.write(line);
    log.flush();
    // Rename while writes may still be in flight, as logrotate does.
    renameSync(path, `${path}.1`);
    log.reopen();
    for (const line of lines.slice(1500)) log.write(line);
    await log.close();
    // Lines still queued at the rename go to the new file: none is lost, split or repeated.
    const before = readFileSync(`${path}.1`, 'utf8');
    const after = readFileSync(path, 'utf8');
    expect(before + after).toBe(lines.join(''));
    expect(before === '' || before.endsWith('\n')).toBe(true);
    expect(after.endsWith(lines.slice(1500).join(''))).toBe(true);
    expect(before.length).toBeGreaterThan(0);
  });

  test('reopen() of a descriptor changes nothing', async () => {
    const path = join(dir, 'descriptor.log');
    const fd = openSync(path, 'a');
    const log = new AuditLogFile(fd);
    log.write('one\n');
    log.reopen();
    log.write('two\n');
    await log.close();
    expect(readFileSync(path, 'utf8')).toBe('one\ntwo\n');
  });

  test('after close, writes are refused rather than lost silently into a closed file', async () => {
    const log = new AuditLogFile(join(dir, 'closed.log'));
    await log.close();
    expect(log.write('late\n')).toBe(false);
  });
});
