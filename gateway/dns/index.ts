// The gateway's DNS side: the sandbox-facing server (answers from policy, never forwards), the
// synthetic address pool it hands out, and the resolver the gateway itself uses upstream.
export { startDnsServer, serveDns, serveDnsOverUnixSocket, DnsResponder, reverseLookupAddress } from './server.js';
export type { DnsAdmission, DnsMonitorLookup, NameExistence, DnsListenOptions, DnsServer, DnsServerOptions, DnsResponderOptions, DnsUnixListener, DnsUnixSocketOptions } from './server.js';
export {
  SyntheticAddressPool,
  SyntheticPoolExhaustedError,
  SYNTHETIC_IPV4_CIDR,
  SYNTHETIC_IPV6_CIDR,
  SYNTHETIC_POOL_CAPACITY,
  isSyntheticAddress,
} from './synthetic-pool.js';
export type { SyntheticAddressPoolOptions } from './synthetic-pool.js';
export { UpstreamResolver, parseHostsFile } from './upstream-resolver.js';
export type { ResolvedAddress, UpstreamResolverOptions } from './upstream-resolver.js';
export { DNS_QUERY_CHANNEL, dnsQueryChannel, loggableName, shannonEntropy, nameTunnelSignals } from './query-events.js';
export type { DnsQueryEvent, DnsDecision, DnsWildcardUse, TunnelSignal } from './query-events.js';
export { WildcardNameCap, DEFAULT_MAX_NAMES_PER_WILDCARD } from './wildcard-names.js';
export type { WildcardNameVerdict } from './wildcard-names.js';
export { registerDnsMetrics, DNS_METRIC_NAMES } from './metrics.js';
export type { DnsMetrics } from './metrics.js';
export type { ClientRateLimitOptions } from './rate-limiter.js';
