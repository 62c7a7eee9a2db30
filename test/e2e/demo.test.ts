// `srt-gw demo`, the README's first command: offline, from any directory, it shows an allowed
// request going through the jail and two being stopped, exits 0, and leaves nothing behind.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { jailTestEnv } from '../support/jail-run.js';
import { CLI_PATH, ensureBuilt } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'));

describe.skipIf(skip !== null)('srt-gw demo', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-demo-test-')));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('allows the public path, refuses the private one and the unlisted host, and exits 0', () => {
    ensureBuilt();
    const home = join(dir, 'home');
    const result = spawnSync(process.execPath, [CLI_PATH, 'demo'], { cwd: dir, env: jailTestEnv({ HOME: home, XDG_STATE_HOME: join(dir, 'state') }), encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/\[jail\] allowed 200 hello from the demo upstream \(GET \/public\/hello\)/);
    expect(result.stdout).toMatch(/\[jail\] denied 403 refused by the gateway: rule demo-public allows api\.demo\.test but not GET \/private\/keys/);
    expect(result.stdout).toMatch(/\[jail\] unlisted (ENOTFOUND|EAI_AGAIN)/);
    expect(result.stderr).toContain('no rule allows example.com, so the name was not resolved');
    // Nothing in the directory it ran from.
    expect(readdirSync(dir).filter((name) => !['home', 'state'].includes(name))).toEqual([]);
  });
});
