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
