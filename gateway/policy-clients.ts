// The clients of the policy in force (`clients:`) as the explicit proxy needs them: who sent a
// request (the authenticator), the metrics label of a client id, and the policy each client's
// requests are decided by (only its `rules`, every deny rule kept), compiled once per policy.
import type { ClientAuthenticator, ClientAuthenticatorOptions } from '../identity/authenticate-client.js';
import { rulesForClient } from '../identity/client-rules.js';
import { compilePolicy, type CompiledPolicy } from '../policies/match.js';
import type { Policy } from '../policies/types.js';

export interface PolicyClients {
  readonly authenticator: ClientAuthenticator;
  /** The `client` metrics label of an id: the id when the policy names it, else "other". */
  readonly label: (clientId: string | undefined) => string;
  /** The compiled policy a client's requests are decided by; undefined for an id the policy does not name. */
  policyFor(clientId: string): CompiledPolicy | undefined;
}

/** A new authenticator and labeller for `policy`'s clients; null when it names none. Throws SRTGW_CONFIG_INVALID like createClientAuthenticator. */
export async function loadPolicyClients(policy: Policy, options: ClientAuthenticatorOptions): Promise<Omit<PolicyClients, 'policyFor'> | null> {
  const clients = policy.clients;
  if (clients === undefined || clients.length === 0) return null;
  // jose and the verifiers load only for a policy with clients.
  const [{ createClientAuthenticator }, { clientLabeler }] = await Promise.all([import('../identity/authenticate-client.js'), import('../identity/client-metrics-label.js')]);
  return { authenticator: createClientAuthenticator(clients, options), label: clientLabeler(clients) };
}

/** Each client's compiled policy, from the compiled policy in force (approved rules included). */
export function compileClientPolicies(compiled: CompiledPolicy): ReadonlyMap<string, CompiledPolicy> {
  const policies = new Map<string, CompiledPolicy>();
  for (const client of compiled.policy.clients ?? []) {
    const rules = rulesForClient(client, compiled.policy.rules);
    policies.set(client.id, rules === compiled.policy.rules ? compiled : compilePolicy({ ...compiled.policy, rules }));
  }
  return policies;
}
