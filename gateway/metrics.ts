// The Prometheus metrics: a closed list of names, each with help text, fed by the gateway's
// events. Label values are bounded: hosts only as a rule names them (else "other"), methods
// from a fixed list, rules from the policy.
import diagnosticsChannel from 'node:diagnostics_channel';
import http from 'node:http';
import client from 'prom-client';
import type { CompiledPolicy } from '../policies/match.js';
import type { EgressBudget } from '../policies/types.js';
import { hostMatchesPattern } from '../policies/host.js';
import type { EgressBudgets } from './egress-budget.js';
import { EndOfTurnQueue } from './end-of-turn-queue.js';
import type { GatewayEvents, RequestEvent } from './events.js';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE']);

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
} as const;

/** Metrics declared for features that do not exist yet: they have no series until those land. None now. */
export const RESERVED_METRIC_NAMES: readonly string[] = [];

// undici's own diagnostics channels (lib/core/diagnostics.js): process-global, so they report
// every undici connect in the process, not only this gateway's.
const UNDICI_BEFORE_CONNECT = 'undici:client:beforeConnect';
const UNDICI_CONNECTED = 'undici:client:connected';
const UNDICI_CONNECT_ERROR = 'undici:client:connectError';

export interface GatewayMetrics {
  readonly registry: client.Registry;
  /** Call after a policy reload so host labels follow the new rules. */
  setPolicy(policy: CompiledPolicy): void;
  /**
   * Counts now the requests that ended in this loop turn (they are otherwise counted at its end):
   * a scrape calls it first, so it never misses a request that ended before it.
   */
  countPending(): void;
  close(): void;
}

/** `budgets`: the gateway's egress counts, read at each scrape; absent = no budget gauges. */
export function startGatewayMetrics(events: GatewayEvents, policy: CompiledPolicy, budgets?: EgressBudgets): GatewayMetrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });

  const requests = new client.Counter({
    name: METRIC_NAMES.requests,
    help: 'HTTP requests by final decision (allow, deny, error), deciding rule, host as named by a rule (else "other") and method.',
    labelNames: ['decision', 'rule', 'host', 'method'] as const,
    registers: [registry],
  });
  const denied = new client.Counter({
    name: METRIC_NAMES.deniedRequests,
    help: 'Denied requests and tunnels by the step that denied them: framing (400), authority (421), policy (403), credentials (403), budget (429), destination (403, a private address), connect (CONNECT refused).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: METRIC_NAMES.requestDuration,
    help: 'Time from request head to the end of the response, by decision.',
    labelNames: ['decision'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const bytes = new client.Counter({
    name: METRIC_NAMES.bytes,
    help: 'Body bytes relayed, by direction (up = to the upstream, down = to the client) and rule.',
    labelNames: ['direction', 'rule'] as const,
    registers: [registry],
  });
  const connects = new client.Counter({
    name: METRIC_NAMES.connects,
    help: 'CONNECT tunnel decisions (allow, deny).',
    labelNames: ['decision'] as const,
    registers: [registry],
  });
  const tls = new client.Counter({
    name: METRIC_NAMES.tlsHandshakes,
    help: 'TLS handshakes with clients by outcome (ok, failed).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const leafCache = new client.Counter({
    name: METRIC_NAMES.leafCache,
    help: 'Leaf certificate cache lookups by result (hit, miss).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const open = new client.Gauge({
    name: METRIC_NAMES.openConnections,
    help: 'Client connections open now.',
    registers: [registry],
  });
  const upstreamErrors = new client.Counter({
    name: METRIC_NAMES.upstreamErrors,
    help: 'Upstream failures answered with 502, by kind of failure (dns, refused, certificate, timeout, reset, other).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const upstreamConnect = new client.Histogram({
    name: METRIC_NAMES.upstreamConnectDuration,
    help: 'Time to open an upstream connection (TCP and TLS), by outcome (ok, failed), from undici\'s process-global diagnostics channels: two gateways in one process both count every connect.',
    labelNames: ['outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const reloads = new client.Counter({
    name: METRIC_NAMES.policyReloads,
    help: 'Attempts to replace the policy (SIGHUP, file change, library reload) by outcome (ok, failed); after a failure the previous policy stays in force.',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const injections = new client.Counter({
    name: METRIC_NAMES.credentialInjections,
    help: 'Requests (and WebSocket upgrades) whose credential the gateway injected from a secret it holds, by rule; pre-initialised for every rule that injects.',
    labelNames: ['rule'] as const,
    registers: [registry],
  });
  const budgetRejections = new client.Counter({
    name: METRIC_NAMES.budgetRejections,
    help: 'Requests refused (429, or cut off mid-body) because they would cross their rule\'s egress budget, by rule; pre-initialised for every rule with a budget.',
    labelNames: ['rule'] as const,
    registers: [registry],
  });
  const auditLinesLost = new client.Counter({
    name: METRIC_NAMES.auditLinesLost,
    help: 'Audit log lines that were never written: the destination failed (disk full, I/O error) or fell over 16 MiB behind. The gateway keeps serving; the first failure of each kind is also told on stderr.',
    registers: [registry],
  });
  auditLinesLost.inc(0);
  let budgetRules = rulesWithBudgets(policy);
  if (budgets !== undefined) {
    // Read at each scrape: what each budget allows, and what its rule has sent in the window the
    // limit judges, so an alert can fire before requests are refused.
    const budgetPeriods = (collect: (rule: string, period: 'minute' | 'run', limit: number, sent: { lastMinute: number; perRun: number }) => void) => {
      for (const rule of budgetRules) {
        const sent = budgets.sent(rule.id);
        if (rule.budget.requestBytesPerMinute !== undefined) collect(rule.id, 'minute', rule.budget.requestBytesPerMinute, sent);
        if (rule.budget.requestBytesPerRun !== undefined) collect(rule.id, 'run', rule.budget.requestBytesPerRun, sent);
      }
    };
    new client.Gauge({
      name: METRIC_NAMES.budgetUsed,
      help: "Request bytes (line, headers and body) sent under each rule with an egress budget, by period: the last 60 s for a per-minute limit, the gateway's lifetime for a per-run one.",
      labelNames: ['rule', 'period'] as const,
      registers: [registry],
      collect() {
        this.reset();
        budgetPeriods((rule, period, _limit, sent) => this.set({ rule, period }, period === 'minute' ? sent.lastMinute : sent.perRun));
      },
    });
    new client.Gauge({
      name: METRIC_NAMES.budgetLimit,
      help: "Each rule's egress budget in request bytes, by period (minute, run), as the policy in force sets it.",
      labelNames: ['rule', 'period'] as const,
      registers: [registry],
      collect() {
        this.reset();
        budgetPeriods((rule, period, limit) => this.set({ rule, period }, limit));
      },
    });
  }
  const initialiseRuleSeries = (compiled: CompiledPolicy) => {
    for (const rule of compiled.policy.rules) {
      if (rule.action !== 'allow' || rule.protocol !== 'http') continue;
      if (rule.credentials?.some((credential) => credential.action.kind === 'inject')) injections.inc({ rule: rule.id }, 0);
      if (rule.budget !== undefined) budgetRejections.inc({ rule: rule.id }, 0);
    }
  };
  initialiseRuleSeries(policy);
  // Every label combination that always exists starts at zero, so dashboards and alerts see
  // a series before the first event of its kind.
  for (const outcome of ['ok', 'failed']) tls.inc({ outcome }, 0);
  for (const result of ['hit', 'miss']) leafCache.inc({ result }, 0);
  for (const decision of ['allow', 'deny']) connects.inc({ decision }, 0);
  for (const reason of ['framing', 'authority', 'policy', 'credentials', 'budget', 'destination', 'connect']) denied.inc({ reason }, 0);
  for (const kind of ['dns', 'refused', 'certificate', 'timeout', 'reset', 'other']) upstreamErrors.inc({ kind }, 0);
  for (const outcome of ['ok', 'failed']) reloads.inc({ outcome }, 0);
  for (const outcome of ['ok', 'failed']) upstreamConnect.zero({ outcome });

  // undici 7 builds a new connectParams object for each message, so one connect is recognised
  // by its connector (shared by a pool's clients) and its params; concurrent connects with the
  // same pair are paired first-in first-out, which keeps the count and the sum exact.
  const connectStarts = new WeakMap<object, Map<string, bigint[]>>();
  const startsOf = (message: unknown): bigint[] | null => {
    const key = connectKeyOf(message);
    if (key === null) return null;
    let byParams = connectStarts.get(key.connector);
    if (byParams === undefined) connectStarts.set(key.connector, (byParams = new Map()));
    let starts = byParams.get(key.params);
    if (starts === undefined) byParams.set(key.params, (starts = []));
    return starts;
  };
  const connectDone = (outcome: 'ok' | 'failed') => (message: unknown) => {
    const start = startsOf(message)?.shift();
    if (start !== undefined) upstreamConnect.observe({ outcome }, Number(process.hrtime.bigint() - start) / 1e9);
  };
  const undiciListeners: [string, (message: unknown) => void][] = [
    [UNDICI_BEFORE_CONNECT, (message) => {
      const starts = startsOf(message);
      // A connect that never reports back must not grow the queue without bound.
      if (starts && starts.length < 1000) starts.push(process.hrtime.bigint());
    }],
    [UNDICI_CONNECTED, connectDone('ok')],
    [UNDICI_CONNECT_ERROR, connectDone('failed')],
  ];
  for (const [name, listener] of undiciListeners) diagnosticsChannel.subscribe(name, listener);

  let hostLabel = hostLabeller(policy);
  // Counted at the end of the loop turn, with the turn's other requests: 2 % less gateway CPU per
  // request at 32 kept-alive connections than counting each as it ends (end-of-turn-queue.ts;
  // two gateways on one core loaded at once, five rounds: median ratio 0.984).
  const requestCounts = new EndOfTurnQueue<RequestEvent>(
    (event) => {
      const rule = event.rule ?? 'none';
      requests.inc({ decision: event.decision, rule, host: hostLabel(event.host), method: KNOWN_METHODS.has(event.method) ? event.method : 'OTHER' });
      duration.observe({ decision: event.decision }, event.durationMs / 1000);
      if (event.decision === 'deny' && !event.monitored) denied.inc({ reason: event.step });
      if (event.upstreamError) upstreamErrors.inc({ kind: event.upstreamError });
      if (event.bytesIn > 0) bytes.inc({ direction: 'up', rule }, event.bytesIn);
      if (event.bytesOut > 0) bytes.inc({ direction: 'down', rule }, event.bytesOut);
      if (event.credential === 'injected') injections.inc({ rule });
      if (event.step === 'budget' && event.decision === 'deny' && !event.monitored) budgetRejections.inc({ rule });
    },
    (_event, error) => process.stderr.write(`srt-gw: metrics: a request was not counted: ${String(error)}\n`),
  );
  const unsubscribe = [
    events.on('request', (event) => requestCounts.push(event)),
    events.on('connect', (event) => {
      connects.inc({ decision: event.decision });
      if (event.decision === 'deny') denied.inc({ reason: 'connect' });
    }),
    events.on('tls', (event) => tls.inc({ outcome: event.outcome })),
    events.on('leafCache', (event) => leafCache.inc({ result: event.hit ? 'hit' : 'miss' })),
    events.on('connections', (event) => open.inc(event.delta)),
    events.on('policyReload', (event) => reloads.inc({ outcome: event.outcome })),
    events.on('auditLinesLost', (event) => auditLinesLost.inc(event.lines)),
    () => {
      for (const [name, listener] of undiciListeners) diagnosticsChannel.unsubscribe(name, listener);
    },
  ];

  return {
    registry,
    countPending() {
      requestCounts.flush();
    },
    setPolicy(next) {
      requestCounts.flush(); // the requests of the old policy get its host labels
      hostLabel = hostLabeller(next);
      budgetRules = rulesWithBudgets(next);
      initialiseRuleSeries(next);
    },
    close() {
      for (const stop of unsubscribe) stop();
      registry.clear();
    },
  };
}

interface UndiciConnectMessage {
  connectParams?: { protocol?: unknown; hostname?: unknown; port?: unknown; servername?: unknown; localAddress?: unknown };
  connector?: unknown;
}

/** The connector and a string of the params that stay the same across one connect's messages. */
function connectKeyOf(message: unknown): { connector: object; params: string } | null {
  const { connectParams: p, connector } = (message ?? {}) as UndiciConnectMessage;
  if (p === undefined || (typeof connector !== 'function' && (typeof connector !== 'object' || connector === null))) return null;
  return { connector, params: JSON.stringify([p.protocol, p.hostname, p.port, p.servername, p.localAddress]) };
}

/** The allow rules whose budgets the gateway enforces. */
function rulesWithBudgets(policy: CompiledPolicy): { id: string; budget: EgressBudget }[] {
  const rules: { id: string; budget: EgressBudget }[] = [];
  for (const rule of policy.policy.rules) {
    if (rule.action === 'allow' && rule.protocol === 'http' && rule.budget !== undefined) rules.push({ id: rule.id, budget: rule.budget });
  }
  return rules;
}

/** Maps a host to the rule host that names it (exact or wildcard pattern), else "other". */
function hostLabeller(policy: CompiledPolicy): (host: string) => string {
  const patterns = [...new Set(policy.policy.rules.map((rule) => rule.host))];
  const cache = new Map<string, string>();
  return (host) => {
    let label = cache.get(host);
    if (label === undefined) {
      label = patterns.includes(host) ? host : patterns.find((pattern) => hostMatchesPattern(host, pattern)) ?? 'other';
      if (cache.size < 10_000) cache.set(host, label);
    }
    return label;
  };
}

/** Serves GET /metrics in the Prometheus text format. */
export function createMetricsServer(metrics: Pick<GatewayMetrics, 'registry' | 'countPending'>): http.Server {
  const registry = metrics.registry;
  return http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('srt-gw serves metrics at /metrics\n');
      return;
    }
    metrics.countPending();
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    );
  });
}
