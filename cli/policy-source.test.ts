// `srt-gw run`'s policy from its flags (policy-source.ts): --allow-local-binding on top of a policy
// file, srt settings, or no policy at all. Files live in a temporary directory.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { runPolicyFromFlags } from './policy-source.js';

const root = mkdtempSync(join(tmpdir(), 'srt-gw-policy-source-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const home = join(root, 'home');
mkdirSync(home);

function policyFile(name: string, text: string): string {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
}

const plain = policyFile('plain.yaml', 'version: 1\nrules: []\n');
const off = policyFile('off.yaml', 'version: 1\nrules: []\njail:\n  allowLocalBinding: false\n');
const on = policyFile('on.yaml', 'version: 1\nrules: []\njail:\n  allowLocalBinding: true\n');

describe('--allow-local-binding', () => {
  test('turns jail.allowLocalBinding on over a policy without a jail section', async () => {
    const { policy } = await runPolicyFromFlags({ policy: plain, allow: [], allowLocalBinding: true }, root, home);
    expect(policy.jail?.allowLocalBinding).toBe(true);
  });

  test("wins over a file's false, and that file is no longer named as its source", async () => {
    const { policy } = await runPolicyFromFlags({ policy: off, allow: [], allowLocalBinding: true }, root, home);
    expect(policy.jail?.allowLocalBinding).toBe(true);
    expect(policy.jail?.sources?.allowLocalBinding).toBeUndefined();
  });

  test('left out, the policy file decides', async () => {
    expect((await runPolicyFromFlags({ policy: on, allow: [] }, root, home)).policy.jail?.allowLocalBinding).toBe(true);
    expect((await runPolicyFromFlags({ policy: off, allow: [], allowLocalBinding: false }, root, home)).policy.jail?.allowLocalBinding).toBe(false);
    expect((await runPolicyFromFlags({ policy: plain, allow: [] }, root, home)).policy.jail).toBeUndefined();
  });

  test('applies with no policy at all, next to --allow', async () => {
    const project = join(root, 'empty-project');
    mkdirSync(project);
    const { policy } = await runPolicyFromFlags({ allow: ['api.example.test'], allowLocalBinding: true }, project, home);
    expect(policy.jail?.allowLocalBinding).toBe(true);
    expect(policy.rules.map((rule) => rule.host)).toEqual(['api.example.test']);
  });

  test("srt settings' network.allowLocalBinding reaches the policy without the flag", async () => {
    const settings = policyFile('srt.json', JSON.stringify({ network: { allowedDomains: [], allowLocalBinding: true } }));
    const { policy, notices } = await runPolicyFromFlags({ srtSettings: settings, allow: [] }, root, home);
    expect(policy.jail?.allowLocalBinding).toBe(true);
    expect(notices.some((notice) => notice.includes('carried over as jail.allowLocalBinding'))).toBe(true);
  });
});

describe('policies srt-gw run finds on its own are obeyed only once trusted', () => {
  const stateHome = join(root, 'state');
  const env = { XDG_STATE_HOME: stateHome };
  const trusted = async (file: string, text: string) => {
    const { PolicyTrustStore } = await import('./policy-trust.js');
    const store = PolicyTrustStore.open(env, home);
    store.trust(file, text);
    store.save(env, home);
  };

  function project(name: string, files: Record<string, string>): string {
    const dir = join(root, name);
    mkdirSync(dir);
    for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
    return dir;
  }

  test('an untrusted ./.srt-gw.yaml is refused, naming the command that trusts it', async () => {
    const dir = project('untrusted', { '.srt-gw.yaml': 'version: 1\nrules:\n  - { id: all, host: "*" }\n' });
    await expect(runPolicyFromFlags({ allow: [] }, dir, home, env)).rejects.toMatchObject({
      code: 'SRTGW_POLICY_UNTRUSTED',
      message: expect.stringContaining(`srt-gw policy trust ${join(dir, '.srt-gw.yaml')}`),
    });
  });

  test('trusted, it loads; changed after, it is refused as changed', async () => {
    const text = 'version: 1\nrules:\n  - { id: api, host: api.example.test }\n';
    const dir = project('trusted', { '.srt-gw.yaml': text });
    await trusted(join(dir, '.srt-gw.yaml'), text);
    expect((await runPolicyFromFlags({ allow: [] }, dir, home, env)).policy.rules.map((rule) => rule.id)).toEqual(['api']);
    writeFileSync(join(dir, '.srt-gw.yaml'), `${text}  - { id: all, host: "*" }\n`);
    await expect(runPolicyFromFlags({ allow: [] }, dir, home, env)).rejects.toThrow(/changed since you trusted it/);
  });

  test('a trusted file that extends an untrusted one is refused', async () => {
    const text = 'version: 1\nextends: [base.yaml]\nrules: []\n';
    const dir = project('extends', { '.srt-gw.yaml': text, 'base.yaml': 'version: 1\nrules:\n  - { id: all, host: "*" }\n' });
    await trusted(join(dir, '.srt-gw.yaml'), text);
    await expect(runPolicyFromFlags({ allow: [] }, dir, home, env)).rejects.toThrow(new RegExp(`${join(dir, 'base.yaml')} is not trusted`));
  });

  test('an untrusted ./.srt.json is refused too', async () => {
    const dir = project('srt-json', { '.srt.json': JSON.stringify({ network: { allowedDomains: ['*'] } }) });
    await expect(runPolicyFromFlags({ allow: [] }, dir, home, env)).rejects.toMatchObject({ code: 'SRTGW_POLICY_UNTRUSTED' });
  });

  test('the same file named with --policy is trust for that run', async () => {
    const dir = project('explicit', { '.srt-gw.yaml': 'version: 1\nrules:\n  - { id: api, host: api.example.test }\n' });
    const { policy } = await runPolicyFromFlags({ policy: join(dir, '.srt-gw.yaml'), allow: [] }, dir, home, env);
    expect(policy.rules.map((rule) => rule.id)).toEqual(['api']);
  });

  test("~/.config/srt-gw/policy.yaml needs no record: no jail can write srt-gw's config directory", async () => {
    const ownHome = join(root, 'own-home');
    mkdirSync(join(ownHome, '.config', 'srt-gw'), { recursive: true });
    writeFileSync(join(ownHome, '.config', 'srt-gw', 'policy.yaml'), 'version: 1\nrules:\n  - { id: api, host: api.example.test }\n');
    const dir = project('home-policy', {});
    const { policy } = await runPolicyFromFlags({ allow: [] }, dir, ownHome, env);
    expect(policy.rules.map((rule) => rule.id)).toEqual(['api']);
  });
});
