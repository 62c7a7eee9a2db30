// srt-gw as a library: start a gateway in-process, load and check policies, observe decisions.
export { startGateway, type Gateway, type GatewayOptions, type ListenAddress } from './gateway/gateway.js';
export { CHANNELS, GatewayEvents, type ConnectEvent, type RequestEvent, type TlsHandshakeEvent } from './gateway/events.js';
export { DEFAULT_LIMITS, type GatewayLimits } from './gateway/limits.js';
export { ErrorCodes, SrtGwError, isSrtGwError, type ErrorCode } from './errors.js';
export { loadPolicyFile, parsePolicy } from './policies/loader.js';
export { compilePolicy, type CompiledPolicy } from './policies/match.js';
export type { CredentialRule, Decision, EgressBudget, Policy, RequestFacts, Rule, SecretSource } from './policies/types.js';
export { credentialPlaceholders, credentialSecretFiles } from './policies/credentials.js';
