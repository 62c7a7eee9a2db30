// PolicyState: approvals become allow rules with unique ids and survive reloads; a reload whose
// secret cannot be read keeps the old policy and its secrets; each swap is reported.
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../policies/loader.js';
import { GatewayEvents, type PolicyReloadEvent } from './audit/events.js';
import { PolicyState } from './policy-state.js';

const BASE = parsePolicy('version: 1\nrules:\n  - id: api\n    host: api.example.test\n');
const KEYED = parsePolicy('version: 1\nrules:\n  - id: keyed\n    host: keyed.example.test\n    credentials: { header: x-api-key, inject: { env: STATE_KEY } }\n');

async function state(env: NodeJS.ProcessEnv = {}) {
  const events = new GatewayEvents('t');
  const reloads: PolicyReloadEvent[] = [];
  events.on('policyReload', (event) => reloads.push(event));
  const policy = await PolicyState.load(BASE, events, { secretEnv: env });
  const changes: string[][] = [];
  policy.onChange = (compiled) => changes.push(compiled.policy.rules.map((rule) => rule.id));
  return { policy, reloads, changes };
}

describe('PolicyState', () => {
  it('adds an approval as an allow rule with a unique id, and it survives a reload', async () => {
    const { policy, changes } = await state();
    expect(policy.approve('new.test', 443)).toBe('approved-new.test-443');
    expect(policy.approve('new.test', 443)).toBe('approved-new.test-443-2');
    expect(policy.current.decide({ host: 'new.test', port: 443, method: 'GET', path: '/' })).toMatchObject({ action: 'allow', ruleId: 'approved-new.test-443' });
    await policy.reload(parsePolicy('version: 1\nrules:\n  - id: other\n    host: other.test\n'));
    expect(policy.current.policy.rules.map((rule) => rule.id)).toEqual(['other', 'approved-new.test-443', 'approved-new.test-443-2']);
    expect(changes.at(-1)).toEqual(['other', 'approved-new.test-443', 'approved-new.test-443-2']);
  });

  it('keeps the old policy and its secrets when a secret of the new one cannot be read', async () => {
    const { policy, reloads } = await state({ STATE_KEY: 'secret-value-0123456789' });
    await policy.reload(KEYED);
    expect(policy.credentials.get('keyed')).toHaveLength(1);
    expect(reloads).toEqual([{ kind: 'policy-reload', outcome: 'ok', rules: 1 }]);
    const unreadable = parsePolicy('version: 1\nrules:\n  - id: keyed2\n    host: keyed.example.test\n    credentials: { header: x-api-key, inject: { env: STATE_MISSING } }\n');
    await expect(policy.reload(unreadable)).rejects.toMatchObject({ code: 'SRTGW_CREDENTIAL_UNAVAILABLE' });
    expect(policy.current.policy.rules.map((rule) => rule.id)).toEqual(['keyed']);
    expect(policy.credentials.get('keyed')).toHaveLength(1);
  });

  it('reports a policy file that cannot be read as a failed reload', async () => {
    const { policy, reloads } = await state();
    await expect(policy.reload('/nonexistent/policy.yaml')).rejects.toMatchObject({ code: 'SRTGW_POLICY_UNREADABLE' });
    expect(reloads).toEqual([expect.objectContaining({ outcome: 'failed' })]);
    expect(policy.current.policy.rules.map((rule) => rule.id)).toEqual(['api']);
  });
});
