// A policy file the jail plants in its working tree is never obeyed by the next run unless the user
// trusted that exact content outside any jail (`srt-gw policy trust`): not its rules, and not the
// credential command it names, which would run on the host at gateway start.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { jailTestEnv } from '../support/jail-run.js';
import { CLI_PATH, ensureBuilt, srtGwRun } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'));

describe.skipIf(skip !== null)('policy files a jail can write', () => {
  let root = '';
  let home = '';
  let caDir = '';

  beforeAll(() => {
    ensureBuilt();
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-policy-trust-')));
    home = join(root, 'home');
    caDir = join(root, 'ca');
    mkdirSync(home);
  });
  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  const env = () => jailTestEnv({ HOME: home });
  const project = (name: string) => {
    const dir = join(root, name);
    mkdirSync(dir);
    return dir;
  };
  const cli = (args: string[], cwd: string) => spawnSync(process.execPath, [CLI_PATH, ...args], { cwd, env: env(), encoding: 'utf8' });

  /** A policy that opens everything and runs a command on the host when the gateway starts. */
  const planted = (marker: string) =>
    ['version: 1', 'rules:', '  - id: everything', '    host: "*"', '    credentials:', '      header: x-api-key', `      inject: { command: ["sh", "-c", "id > ${marker}; echo k"] }`, ''].join('\n');

  it('a .srt-gw.yaml written in the jail is refused by the next run, and its command never runs on the host', async () => {
    const cwd = project('planted');
    const marker = join(root, 'planted-marker');
    const first = await srtGwRun({ flags: ['--ca-dir', caDir], command: ['sh', '-c', `cat > .srt-gw.yaml <<'EOF'\n${planted(marker)}EOF`], cwd, env: env() });
    expect(first.code, first.stderr).toBe(0);
    // The run holds what its jail planted; restored by hand, the trust check still refuses it.
    expect(first.stderr).toContain('srt-gw: held .srt-gw.yaml: ');
    renameSync(join(cwd, '.srt-gw.yaml.srt-gw-held'), join(cwd, '.srt-gw.yaml'));

    const second = await srtGwRun({ flags: ['--ca-dir', caDir], command: ['true'], cwd, env: env() });
    expect(second.code).toBe(125);
    expect(second.stderr).toContain(`${join(cwd, '.srt-gw.yaml')} is not trusted`);
    expect(second.stderr).toContain(`srt-gw policy trust ${join(cwd, '.srt-gw.yaml')}`);
    expect(existsSync(marker)).toBe(false);
  });

  it('policy trust refuses to run inside a jail (SRT_GW_JAIL=1), and records nothing', () => {
    const cwd = project('inside');
    writeFileSync(join(cwd, '.srt-gw.yaml'), 'version: 1\nrules: []\n');
    const inside = spawnSync(process.execPath, [CLI_PATH, 'policy', 'trust'], { cwd, env: { ...env(), SRT_GW_JAIL: '1' }, encoding: 'utf8' });
    expect(inside.status).toBe(2);
    expect(inside.stderr).toContain('policy trust cannot run inside an srt-gw jail');
    expect(cli(['policy', 'trust', '--list'], cwd).stdout).not.toContain(join(cwd, '.srt-gw.yaml'));
  });

  it('once trusted it is obeyed; edited afterwards it is refused as changed', async () => {
    const cwd = project('trusted');
    writeFileSync(join(cwd, '.srt-gw.yaml'), 'version: 1\nrules:\n  - { id: api, host: api.example.test }\n');
    const trusted = cli(['policy', 'trust'], cwd);
    expect(trusted.status, trusted.stderr).toBe(0);
    expect(trusted.stdout).toContain(`trusted ${join(cwd, '.srt-gw.yaml')}`);
    const ok = await srtGwRun({ flags: ['--ca-dir', caDir], command: ['true'], cwd, env: env() });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain(`srt-gw: policy ${join(cwd, '.srt-gw.yaml')}`);

    // The jail cannot rewrite the file in use; the host user edits it, and must trust it again.
    writeFileSync(join(cwd, '.srt-gw.yaml'), 'version: 1\nrules:\n  - { id: all, host: "*" }\n');
    const changed = await srtGwRun({ flags: ['--ca-dir', caDir], command: ['true'], cwd, env: env() });
    expect(changed.code).toBe(125);
    expect(changed.stderr).toContain('changed since you trusted it');
    expect(cli(['policy', 'trust', '--list'], cwd).stdout).toContain('changed since');
  });

  it('the trust record is out of reach inside the jail', async () => {
    const cwd = project('forge');
    writeFileSync(join(cwd, '.srt-gw.yaml'), 'version: 1\nrules: []\n');
    expect(cli(['policy', 'trust'], cwd).status).toBe(0);
    const record = join(home, '.local', 'state', 'srt-gw', 'trusted-policies.json');
    const before = readFileSync(record, 'utf8');
    const forged = `{"version":1,"files":{"${join(cwd, 'other.yaml')}":"${'0'.repeat(64)}"}}`;
    const run = await srtGwRun({
      flags: ['--ca-dir', caDir],
      command: [
        'sh',
        '-c',
        `cat ${record} 2>/dev/null | grep -c sha || echo unreadable; echo '${forged}' > ${record} 2>/dev/null || echo refused`,
      ],
      cwd,
      env: env(),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('unreadable');
    expect(run.stdout).toContain('refused');
    expect(readFileSync(record, 'utf8')).toBe(before);
  });
});
