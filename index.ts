// srt-gw as a library: start a gateway in-process and watch its decisions, run commands in the
// jail, load and check policies. Everything a user needs is exported from here (README, "Library API").

// The gateway and what it decides.
export {
  startGateway,
  type Gateway,
  type GatewayCa,
  type GatewayOptions,
  type JailEndpoints,
  type ListenAddress,
  type ResolveOverrides,
} from './gateway/gateway.js';
export type {
  ConnectionDecision,
  Decision,
  DecisionKinds,
  DecisionStream,
  DecisionStreamOptions,
  DnsLookupDecision,
  RequestDecision,
} from './gateway/audit/decisions.js';
export type { UnknownHostCallback } from './gateway/unknown-host.js';
export {
  CHANNELS,
  GatewayEvents,
  type ConnectEvent,
  type CredentialOutcomeField,
  type GatewayEventMap,
  type HttpProtocol,
  type PolicyReloadEvent,
  type RequestEvent,
  type RequestOutcome,
  type RequestStep,
  type TlsHandshakeEvent,
} from './gateway/audit/events.js';
export type { DnsDecision as DnsOutcome, DnsQueryEvent, TunnelSignal } from './gateway/dns/query-events.js';
export { DEFAULT_LIMITS, type GatewayLimits } from './gateway/limits.js';
export { REASON_CODES, REASON_CODE_MEANINGS, isReasonCode, type ReasonCode } from './reason-codes.js';
export type { UpstreamProxyOptions } from './gateway/upstream/upstream-proxy.js';
// State shared by several gateways (startGateway's sharedState): Redis, connected on demand.
export { connectRedisState, StateUnavailableError, type SharedStateConnection, type RedisStateOptions } from './gateway/state/redis-state.js';
export { parseStateLocation, type StateLocation } from './gateway/state/state-url.js';
export { RedisRevocationStore } from './gateway/state/redis-revocation-store.js';
// Clients of the explicit proxy (policy `clients:`; GatewayOptions.clientAuthentication, proxyTls).
export type { ExplicitProxyTls } from './gateway/listeners/explicit-proxy.js';
export type {
  ClientAuthentication,
  ClientAuthenticationCode,
  ClientAuthenticationInput,
  ClientAuthenticationMethod,
  ClientAuthenticator,
  ClientAuthenticatorOptions,
} from './identity/authenticate-client.js';
export type { RevocationStore, RevokedToken } from './identity/revocation-store.js';

// Commands in the jail.
export { run, type JailedCommand, type RunOptions, type RunStdio } from './jail/jailed-command.js';
export type { RunResult } from './jail/run-in-jail.js';
export type { Denial } from './jail/denial-summary.js';
export type { Change as ReviewedChange, ChangeKind as ReviewedChangeKind } from './jail/overlay/held-changes-store.js';

// Policies: the runtime types (policies/types.ts) and the file's shape (inferred from the zod schema).
import type { z } from 'zod';
import type { policyFileSchema } from './policies/schema.js';
export { loadPolicyFile as loadPolicy, loadPolicyFile, parsePolicy } from './policies/loader.js';
export { compilePolicy, type CompiledPolicy } from './policies/match.js';
export type {
  ClientCredential,
  CredentialAction,
  CredentialLocation,
  CredentialRule,
  Decision as PolicyDecision,
  EgressBudget,
  FilesystemPathEntry,
  FilesystemPolicy,
  JailPolicy,
  Policy,
  PolicyClient,
  PrivateDestinationEntry,
  RequestFacts,
  Rule,
  RuleAction,
  SecretSource,
  SourceLocation,
} from './policies/types.js';
export type { PolicyFile, RuleFile } from './policies/schema.js';
/**
 * What a policy file may say, as an object: the zod schema's input type (defaults not applied yet,
 * so `action` and `protocol` may be left out). `parsePolicy(JSON.stringify(doc))` validates and
 * converts one, with the loader's errors.
 */
export type PolicyFileInput = z.input<typeof policyFileSchema>;
export { credentialPlaceholders, credentialSecretFiles } from './policies/credentials.js';

export { ErrorCodes, SrtGwError, isSrtGwError, type ErrorCode } from './errors.js';
