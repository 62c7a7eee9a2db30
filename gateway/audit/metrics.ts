// The gateway's Prometheus metrics, fed by its events: the table of instruments
// (metric-table.ts), one handler per kind of event, and gauges read at each scrape. Label values
// are bounded: hosts only as a rule names them (else "other"), methods from a fixed list, rules
// from the policy.
import http from 'node:http';
import client from 'prom-client';
import { BoundedMap } from '../../bounded-map.js';
import { hostMatchesPattern } from '../../policies/host.js';
import type { CompiledPolicy } from '../../policies/match.js';
import type { EgressBudget } from '../../policies/types.js';
import type { EgressBudgets } from '../credentials/egress-budget.js';
import { EndOfTurnQueue } from '../end-of-turn-queue.js';
import { clientLabeler } from '../../identity/client-metrics-label.js';
import type { ConnectEvent, GatewayEvents, RequestEvent } from './events.js';
import { createMetricTable, initialiseRuleSeries, METRIC_NAMES, type MetricTable } from './metric-table.js';
import { timeUpstreamConnects } from './upstream-connect-timing.js';

export { METRIC_NAMES };

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE']);

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
  const table = createMetricTable(registry);
  initialiseRuleSeries(table, policy);
  let budgetRules = rulesWithBudgets(policy);
  if (budgets !== undefined) registerBudgetGauges(registry, budgets, () => budgetRules);
  let hostLabel = hostLabeller(policy);
  let clientLabel = clientLabelFor(policy, table);
  // Counted at the end of the loop turn, with the turn's other requests: 2 % less gateway CPU per
  // request at 32 kept-alive connections than counting each as it ends (end-of-turn-queue.ts;
  // two gateways on one core loaded at once, five rounds: median ratio 0.984).
  const requestCounts = new EndOfTurnQueue<RequestEvent>(
    (event) => {
      countRequest(table, event, hostLabel(event.host));
      if (clientLabel !== null && (event.clientId !== undefined || event.step === 'authentication')) table.clientRequests.inc({ client: clientLabel(event.clientId), decision: event.decision });
    },
    (_event, error) => process.stderr.write(`srt-gw: metrics: a request was not counted: ${String(error)}\n`),
  );
  const unsubscribe = [
    events.on('request', (event) => requestCounts.push(event)),
    events.on('connect', (event) => countConnect(table, event)),
    events.on('tls', (event) => table.tls.inc({ outcome: event.outcome })),
    events.on('leafCache', (event) => table.leafCache.inc({ result: event.hit ? 'hit' : 'miss' })),
    events.on('connections', (event) => table.open.inc(event.delta)),
    events.on('policyReload', (event) => table.reloads.inc({ outcome: event.outcome })),
    events.on('auditLinesLost', (event) => table.auditLinesLost.inc(event.lines)),
    timeUpstreamConnects(table.upstreamConnect),
  ];

  return {
    registry,
    countPending() {
      requestCounts.flush();
    },
    setPolicy(next) {
      requestCounts.flush(); // the requests of the old policy get its host labels
      hostLabel = hostLabeller(next);
      clientLabel = clientLabelFor(next, table);
      budgetRules = rulesWithBudgets(next);
      initialiseRuleSeries(table, next);
    },
    close() {
      for (const stop of unsubscribe) stop();
      registry.clear();
    },
  };
}

/** One request or WebSocket upgrade, once it has ended. */
function countRequest(table: MetricTable, event: RequestEvent, host: string): void {
  const rule = event.rule ?? 'none';
  table.requests.inc({ decision: event.decision, rule, host, method: KNOWN_METHODS.has(event.method) ? event.method : 'OTHER' });
  table.duration.observe({ decision: event.decision }, event.durationMs / 1000);
  if (event.decision === 'deny' && !event.monitored) table.denied.inc({ reason: event.step });
  if (event.step === 'authentication') table.clientAuthenticationFailures.inc({ code: event.code });
  if (event.upstreamError) table.upstreamErrors.inc({ kind: event.upstreamError });
  if (event.bytesIn > 0) table.bytes.inc({ direction: 'up', rule }, event.bytesIn);
  if (event.bytesOut > 0) table.bytes.inc({ direction: 'down', rule }, event.bytesOut);
  if (event.credential === 'injected') table.injections.inc({ rule });
  if (event.step === 'budget' && event.decision === 'deny' && !event.monitored) table.budgetRejections.inc({ rule });
}

/**
 * The `client` label of the policy's clients (bounded: the ids it names, else "other"), with
 * their series started at zero; null when it names none, and then no client series exist.
 */
function clientLabelFor(policy: CompiledPolicy, table: MetricTable): ((clientId: string | undefined) => string) | null {
  const clients = policy.policy.clients;
  if (clients === undefined || clients.length === 0) return null;
  const label = clientLabeler(clients);
  for (const client of clients) for (const decision of ['allow', 'deny']) table.clientRequests.inc({ client: client.id, decision }, 0);
  return label;
}

/** One CONNECT tunnel or jail connection decision. */
function countConnect(table: MetricTable, event: ConnectEvent): void {
  table.connects.inc({ decision: event.decision });
  if (event.decision === 'deny' && event.code.startsWith('client-')) table.clientAuthenticationFailures.inc({ code: event.code });
  if (event.decision === 'deny') table.denied.inc({ reason: 'connect' });
}

/**
 * What each budget allows, and what its rule has sent in the window the limit judges, read at
 * each scrape, so an alert can fire before requests are refused.
 */
function registerBudgetGauges(registry: client.Registry, budgets: EgressBudgets, rules: () => readonly { id: string; budget: EgressBudget }[]): void {
  const budgetPeriods = (collect: (rule: string, period: 'minute' | 'run', limit: number, sent: { lastMinute: number; perRun: number }) => void) => {
    for (const rule of rules()) {
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
  const cache = new BoundedMap<string, string>({ capacity: 10_000 });
  return (host) => {
    let label = cache.get(host);
    if (label === undefined) {
      label = patterns.includes(host) ? host : patterns.find((pattern) => hostMatchesPattern(host, pattern)) ?? 'other';
      cache.set(host, label);
    }
    return label;
  };
}

/** What /readyz reports (createMetricsServer). */
export interface GatewayHealth {
  /** True once the policy is loaded and the listeners are up, false again when the gateway starts closing. */
  ready(): boolean;
}

/** Serves GET /metrics in the Prometheus text format, and /healthz and /readyz when `health` is given. */
export function createMetricsServer(metrics: Pick<GatewayMetrics, 'registry' | 'countPending'>, health?: GatewayHealth): http.Server {
  const registry = metrics.registry;
  return http.createServer((req, res) => {
    if (health !== undefined && req.method === 'GET' && (req.url === '/healthz' || req.url === '/readyz')) {
      // /healthz: the process answers. /readyz: the policy is loaded, the listeners are up and
      // the gateway is not closing (a load balancer stops sending before the drain ends).
      const ok = req.url === '/healthz' || health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(ok ? 'ok\n' : 'not ready\n');
      return;
    }
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
