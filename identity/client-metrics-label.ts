// The `client` label of metrics: the client's id when the policy names it, else "other", so a
// label's values are bounded by the policy however many names requests carry.
import { RESERVED_CLIENT_ID, type PolicyClient } from '../policies/types.js';

export const OTHER_CLIENT_LABEL = RESERVED_CLIENT_ID;

/** A labeller for one policy's clients; make a new one when the policy is reloaded. */
export function clientLabeler(clients: readonly PolicyClient[] | undefined): (clientId: string | undefined) => string {
  const known = new Set((clients ?? []).map((client) => client.id));
  return (clientId) => (clientId !== undefined && known.has(clientId) ? clientId : OTHER_CLIENT_LABEL);
}
