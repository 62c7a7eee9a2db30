// `srt-gw run` builds the Linux jail while its gateway starts, and holds the command until the
// gateway is ready (jail/jail.ts PreparedJail). The command must never run before start(), never
// after abort(), and a run whose gateway cannot start must end without having run it.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../errors.js';
import { resolveFilesystemRules } from '../../jail/filesystem-rules.js';
import type { JailPrepareOptions } from '../../jail/jail.js';
import { LinuxJail } from '../../jail/linux/linux-jail.js';
import { RunDirectory } from '../../jail/run-directory.js';
import { runInJail } from '../../jail/run-in-jail.js';
import { parsePolicy } from '../../policies/loader.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { rejectionOf } from '../support/srt-gw-error.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('pgrep'));

const root = mkdtempSync(join(tmpdir(), 'srt-gw-jail-prepare-'));
const project = join(root, 'project');
mkdirSync(project);
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A command that leaves a mark in the working directory when (if ever) it runs. */
function markingOptions(runDirectory: RunDirectory, marker: string): JailPrepareOptions {
  return {
    command: '/bin/sh',
    args: ['-c', `echo ran > ${marker}`],
    cwd: project,
    env: { PATH: '/usr/bin:/bin' },
    filesystem: resolveFilesystemRules(undefined, { home: homedir(), cwd: project, alwaysHidden: [], alwaysReadOnly: [] }),
    caBundle: runDirectory.writeJailFile('ca-bundle.pem', ''),
    runDirectory,
    stdio: 'ignore',
  };
}

const endpointsFor = (runDirectory: RunDirectory) => ({
  acceptRedirected: () => undefined,
  dnsSocket: runDirectory.dnsSocketPath,
  proxyAddress: { host: '127.0.0.1', port: 1 },
});

/** Processes still running from this run directory (bwrap and the jail's helpers name it). */
function processesOf(runDirectory: RunDirectory): string {
  return spawnSync('pgrep', ['-af', runDirectory.path], { encoding: 'utf8' }).stdout.trim();
}

describe.skipIf(skip)('the Linux jail held until the gateway is ready', () => {
  it('the command waits for start(): nothing runs while the gateway starts, then it runs once', async () => {
    const runDirectory = RunDirectory.create(root);
    try {
      const marker = join(project, 'held');
      const prepared = new LinuxJail().prepare(markingOptions(runDirectory, marker));
      // Far longer than the jail takes to build (~20 ms): had the init not waited, the mark would be there.
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(existsSync(marker)).toBe(false);
      const jailed = prepared.start(endpointsFor(runDirectory));
      expect(await jailed.exited).toBe(0);
      expect(existsSync(marker)).toBe(true);
      expect(() => prepared.start(endpointsFor(runDirectory))).toThrow(/already started/);
    } finally {
      runDirectory.dispose();
    }
  });

  it('abort() ends the jail without running the command, and leaves no process behind', async () => {
    const runDirectory = RunDirectory.create(root);
    try {
      const marker = join(project, 'aborted');
      const prepared = new LinuxJail().prepare(markingOptions(runDirectory, marker));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(processesOf(runDirectory)).toContain('bwrap');
      await prepared.abort();
      expect(processesOf(runDirectory)).toBe('');
      expect(existsSync(marker)).toBe(false);
      expect(() => prepared.start(endpointsFor(runDirectory))).toThrow(/already aborted/);
    } finally {
      runDirectory.dispose();
    }
  });

  it('start() refuses a gateway whose DNS socket is not the one the jail was built for', async () => {
    const runDirectory = RunDirectory.create(root);
    const prepared = new LinuxJail().prepare(markingOptions(runDirectory, join(project, 'wrong-socket')));
    try {
      expect(() => prepared.start({ ...endpointsFor(runDirectory), dnsSocket: join(root, 'elsewhere.sock') })).toThrow(/DNS socket must be/);
    } finally {
      // Awaited: a jail still ending on a busy machine would be counted as the next test's.
      await prepared.abort();
      runDirectory.dispose();
    }
  });

  it('runInJail whose gateway cannot start (an unusable CA) fails with that error; the command never ran', async () => {
    const caDir = join(root, 'bad-ca');
    mkdirSync(caDir, { mode: 0o700 });
    writeFileSync(join(caDir, 'ca-key.pem'), 'not a key', { mode: 0o600 });
    writeFileSync(join(caDir, 'ca.pem'), 'not a certificate');
    chmodSync(join(caDir, 'ca.pem'), 0o644);
    const marker = join(project, 'never');
    const error = await rejectionOf(
      runInJail({
        command: '/bin/sh',
        args: ['-c', `echo ran > ${marker}`],
        policy: parsePolicy('version: 1\nrules: []\n', join(project, 'policy.yaml')),
        cwd: project,
        caDir,
        env: { PATH: '/usr/bin:/bin' },
        stdio: 'ignore',
      }),
    );
    expect(error.code).toBe(ErrorCodes.CA_INVALID);
    expect(existsSync(marker)).toBe(false);
    expect(spawnSync('pgrep', ['-af', 'srt-gw-run-'], { encoding: 'utf8' }).stdout).not.toContain(`srt-gw-run-${process.pid}-`);
  });
});
