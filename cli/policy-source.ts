// Builds the policy a command runs with from --policy and --allow flags.
import { ErrorCodes, SrtGwError } from '../errors.js';
import { allowHostRule, loadPolicyFile } from '../policies/loader.js';
import type { Policy } from '../policies/types.js';

export async function policyFromFlags(policyFile: string | undefined, allowHosts: readonly string[]): Promise<Policy> {
  const base: Policy = policyFile ? await loadPolicyFile(policyFile) : { version: 1, rules: [] };
  if (allowHosts.length === 0) return base;
  const extra = allowHosts.map((host) => allowHostRule(host));
  const ids = new Set(base.rules.map((rule) => rule.id));
  for (const rule of extra) {
    if (ids.has(rule.id)) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--allow ${rule.host}: the policy already has a rule with id ${rule.id}`);
    ids.add(rule.id);
  }
  return { version: 1, rules: [...base.rules, ...extra] };
}
