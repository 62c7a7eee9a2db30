// Which rules a client may use: the allow rules its `rules:` lists (every rule when absent), and
// every deny rule whatever it lists, so that naming some rules can never lift a deny.
import type { PolicyClient, Rule } from '../policies/types.js';

/** The ids of the rules the matcher may consider for `client`'s requests. */
export function clientRuleIds(client: PolicyClient, rules: readonly Rule[]): ReadonlySet<string> {
  const listed = client.rules === undefined ? undefined : new Set(client.rules);
  return new Set(rules.filter((rule) => rule.action === 'deny' || listed === undefined || listed.has(rule.id)).map((rule) => rule.id));
}

/** The policy's rules as the matcher should see them for `client`, in policy order. */
export function rulesForClient(client: PolicyClient, rules: readonly Rule[]): readonly Rule[] {
  if (client.rules === undefined) return rules;
  const ids = clientRuleIds(client, rules);
  return Object.freeze(rules.filter((rule) => ids.has(rule.id)));
}
