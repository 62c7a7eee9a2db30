// The gateway's Prometheus metrics: a closed list of names (METRIC_NAMES), each declared here
// once with its help text and labels, and every label combination that always exists started at
// zero so dashboards and alerts see a series before the first event of its kind.
import client from 'prom-client';
import type { CompiledPolicy } from '../../policies/match.js';
import { UPSTREAM_FAILURE_KINDS } from '../../reason-codes.js';

export const METRIC_NAMES = {
  requests: 'srtgw_requests_total',
  deniedRequests: 'srtgw_denied_requests_total',
  requestDuration: 'srtgw_request_duration_seconds',
  bytes: 'srtgw_bytes_total',
  connects: 'srtgw_connect_decisions_total',
  tlsHandshakes: 'srtgw_tls_handshakes_total',
  leafCache: 'srtgw_leaf_cache_lookups_total',
  openConnections: 'srtgw_open_connections',
  upstreamErrors: 'srtgw_upstream_errors_total',
  upstreamConnectDuration: 'srtgw_upstream_connect_duration_seconds',
  policyReloads: 'srtgw_policy_reloads_total',
  credentialInjections: 'srtgw_credential_injections_total',
  budgetRejections: 'srtgw_budget_rejections_total',
  budgetUsed: 'srtgw_budget_used_bytes',
  budgetLimit: 'srtgw_budget_limit_bytes',
  auditLinesLost: 'srtgw_audit_lines_lost_total',
  stateBackendUp: 'srtgw_state_backend_up',
  stateErrors: 'srtgw_state_errors_total',
  clientRequests: 'srtgw_client_requests_total',
  clientAuthenticationFailures: 'srtgw_client_authentication_failures_total',
} as const;

/** The gateway's instruments, registered on one registry. */
export type MetricTable = ReturnType<typeof createMetricTable>;

export function createMetricTable(registry: client.Registry) {
  const table = {
    requests: new client.Counter({
      name: METRIC_NAMES.requests,
      help: 'HTTP requests by final decision (allow, deny, error), deciding rule, host as named by a rule (else "other") and method.',
      labelNames: ['decision', 'rule', 'host', 'method'] as const,
      registers: [registry],
    }),
    denied: new client.Counter({
      name: METRIC_NAMES.deniedRequests,
      help: 'Denied requests and tunnels by the step that denied them: framing (400), authority (421), policy (403), credentials (403), budget (429), destination (403, a private address), connect (CONNECT refused).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    duration: new client.Histogram({
      name: METRIC_NAMES.requestDuration,
      help: 'Time from request head to the end of the response, by decision.',
      labelNames: ['decision'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    bytes: new client.Counter({
      name: METRIC_NAMES.bytes,
      help: 'Body bytes relayed, by direction (up = to the upstream, down = to the client) and rule.',
      labelNames: ['direction', 'rule'] as const,
      registers: [registry],
    }),
    connects: new client.Counter({
      name: METRIC_NAMES.connects,
      help: 'CONNECT tunnel decisions (allow, deny).',
      labelNames: ['decision'] as const,
      registers: [registry],
    }),
    tls: new client.Counter({
      name: METRIC_NAMES.tlsHandshakes,
      help: 'TLS handshakes with clients by outcome (ok, failed).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    leafCache: new client.Counter({
      name: METRIC_NAMES.leafCache,
      help: 'Leaf certificate cache lookups by result (hit, miss).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    open: new client.Gauge({
      name: METRIC_NAMES.openConnections,
      help: 'Client connections open now.',
      registers: [registry],
    }),
    upstreamErrors: new client.Counter({
      name: METRIC_NAMES.upstreamErrors,
      help: 'Upstream failures answered with 502, by kind of failure (dns, refused, certificate, timeout, reset, other).',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    upstreamConnect: new client.Histogram({
      name: METRIC_NAMES.upstreamConnectDuration,
      help: 'Time to open an upstream connection (TCP and TLS), by outcome (ok, failed), from undici\'s process-global diagnostics channels: two gateways in one process both count every connect.',
      labelNames: ['outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    reloads: new client.Counter({
      name: METRIC_NAMES.policyReloads,
      help: 'Attempts to replace the policy (SIGHUP, file change, library reload) by outcome (ok, failed); after a failure the previous policy stays in force.',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    injections: new client.Counter({
      name: METRIC_NAMES.credentialInjections,
      help: 'Requests (and WebSocket upgrades) whose credential the gateway injected from a secret it holds, by rule; pre-initialised for every rule that injects.',
      labelNames: ['rule'] as const,
      registers: [registry],
    }),
    budgetRejections: new client.Counter({
      name: METRIC_NAMES.budgetRejections,
      help: 'Requests refused (429, or cut off mid-body) because they would cross their rule\'s egress budget, by rule; pre-initialised for every rule with a budget.',
      labelNames: ['rule'] as const,
      registers: [registry],
    }),
    clientRequests: new client.Counter({
      name: METRIC_NAMES.clientRequests,
      help: 'Requests to the explicit proxy by policy client (the id the policy names; "other" for requests that did not authenticate) and final decision. Only when the policy has a clients: section.',
      labelNames: ['client', 'decision'] as const,
      registers: [registry],
    }),
    clientAuthenticationFailures: new client.Counter({
      name: METRIC_NAMES.clientAuthenticationFailures,
      help: 'Requests and CONNECTs refused with 407 because they did not authenticate as a policy client, by reason code (client-credentials-missing, client-token-expired, ...).',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    auditLinesLost: new client.Counter({
      name: METRIC_NAMES.auditLinesLost,
      help: 'Audit log lines that were never written: the destination failed (disk full, I/O error) or fell over 16 MiB behind. The gateway keeps serving; the first failure of each kind is also told on stderr.',
      registers: [registry],
    }),
  };
  // Every label combination that always exists starts at zero.
  table.auditLinesLost.inc(0);
  for (const outcome of ['ok', 'failed']) table.tls.inc({ outcome }, 0);
  for (const result of ['hit', 'miss']) table.leafCache.inc({ result }, 0);
  for (const decision of ['allow', 'deny']) table.connects.inc({ decision }, 0);
  for (const reason of ['framing', 'authority', 'policy', 'credentials', 'budget', 'destination', 'connect']) table.denied.inc({ reason }, 0);
  for (const kind of UPSTREAM_FAILURE_KINDS) table.upstreamErrors.inc({ kind }, 0);
  for (const outcome of ['ok', 'failed']) table.reloads.inc({ outcome }, 0);
  for (const outcome of ['ok', 'failed']) table.upstreamConnect.zero({ outcome });
  return table;
}

/** Starts at zero the per-rule series of `policy`'s rules: injections and budget rejections. */
export function initialiseRuleSeries(table: MetricTable, policy: CompiledPolicy): void {
  for (const rule of policy.policy.rules) {
    if (rule.action !== 'allow' || rule.protocol !== 'http') continue;
    if (rule.credentials?.some((credential) => credential.action.kind === 'inject')) table.injections.inc({ rule: rule.id }, 0);
    if (rule.budget !== undefined) table.budgetRejections.inc({ rule: rule.id }, 0);
  }
}
