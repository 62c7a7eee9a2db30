// Prometheus metrics for the sandbox-facing DNS server, fed by its gateway's DNS query events.
// Labels are bounded: decisions and signals are closed sets, query types a fixed list + "other".
import client from 'prom-client';
import type { DnsQueryEvent } from './query-events.js';
import type { SyntheticAddressPool } from './synthetic-pool.js';

export const DNS_METRIC_NAMES = {
  queries: 'srtgw_dns_queries_total',
  syntheticAddresses: 'srtgw_dns_synthetic_addresses',
  tunnelSignals: 'srtgw_dns_tunnel_signals_total',
  wildcardNamesRefused: 'srtgw_dns_wildcard_names_refused_total',
  wildcardTunnelSignals: 'srtgw_dns_wildcard_tunnel_signals_total',
} as const;

/** Rule ids used as label values; later rules are counted as "other" (reloads can add rules). */
const MAX_RULE_LABELS = 100;

const QTYPE_LABELS = new Set(['A', 'AAAA', 'TXT', 'NULL', 'MX', 'CNAME', 'SRV', 'PTR', 'NS', 'SOA', 'CAA', 'ANY', 'HTTPS', 'SVCB', 'PRIVATE']);

export interface DnsMetrics {
  /** Unsubscribes from the events and removes the metrics from the registry. */
  close(): void;
}

/** Subscribes a listener to DNS query events; returns the unsubscribe function. */
export type DnsQuerySubscription = (listener: (event: DnsQueryEvent) => void) => () => void;

/**
 * Registers the DNS metrics on `registry`, counting the events `subscribe` delivers. Pass the
 * server's pool to report its size; without one the gauge stays 0.
 */
export function registerDnsMetrics(registry: client.Registry, subscribe: DnsQuerySubscription, pool?: Pick<SyntheticAddressPool, 'size'>): DnsMetrics {
  const queries = new client.Counter({
    name: DNS_METRIC_NAMES.queries,
    help: 'DNS queries from the sandbox by decision (synthetic, nodata, denied, refused, rate-limited, malformed) and query type (fixed list, else "other"; "" for malformed).',
    labelNames: ['decision', 'qtype'] as const,
    registers: [registry],
  });
  new client.Gauge({
    name: DNS_METRIC_NAMES.syntheticAddresses,
    help: 'Names holding a synthetic address (the pool never shrinks while the gateway runs).',
    registers: [registry],
    collect() {
      this.set(pool?.size ?? 0);
    },
  });
  const signals = new client.Counter({
    name: DNS_METRIC_NAMES.tunnelSignals,
    help: 'Signs of DNS tunnelling: long-label (a label over 40 characters), high-entropy (random-looking label), burst (client over its rate limit).',
    labelNames: ['signal'] as const,
    registers: [registry],
  });

  const namesRefused = new client.Counter({
    name: DNS_METRIC_NAMES.wildcardNamesRefused,
    help: 'Queries refused because their wildcard rule had admitted dns.maxNamesPerWildcard distinct names already (policy setting, default 300), by rule id.',
    labelNames: ['rule'] as const,
    registers: [registry],
  });
  const ruleSignals = new client.Counter({
    name: DNS_METRIC_NAMES.wildcardTunnelSignals,
    help: 'Distinct names under a wildcard rule that look like DNS tunnelling, by rule id and signal: long-label (a label over 40 characters), high-entropy (a random-looking label of 16 characters or more).',
    labelNames: ['rule', 'signal'] as const,
    registers: [registry],
  });
  const ruleLabels = new Set<string>();
  const ruleLabel = (rule: string): string => {
    if (ruleLabels.has(rule)) return rule;
    if (ruleLabels.size >= MAX_RULE_LABELS) return 'other';
    ruleLabels.add(rule);
    return rule;
  };

  const unsubscribe = subscribe((event) => {
    const qtype = event.qtype === '' ? '' : QTYPE_LABELS.has(event.qtype) ? event.qtype : 'other';
    queries.inc({ decision: event.decision, qtype });
    for (const signal of event.tunnelSignals) signals.inc({ signal });
    const wildcard = event.wildcard;
    if (wildcard === undefined) return;
    if (wildcard.capped) namesRefused.inc({ rule: ruleLabel(wildcard.rule) });
    if (!wildcard.firstSeen) return;
    for (const signal of event.tunnelSignals) if (signal !== 'burst') ruleSignals.inc({ rule: ruleLabel(wildcard.rule), signal });
  });
  return {
    close() {
      unsubscribe();
      for (const name of Object.values(DNS_METRIC_NAMES)) registry.removeSingleMetric(name);
    },
  };
}
