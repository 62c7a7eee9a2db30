// Prometheus metrics for the sandbox-facing DNS server, fed by its gateway's DNS query events.
// Labels are bounded: decisions and signals are closed sets, query types a fixed list + "other".
import client from 'prom-client';
import type { DnsQueryEvent } from './query-events.js';
import type { SyntheticAddressPool } from './synthetic-pool.js';

export const DNS_METRIC_NAMES = {
  queries: 'srtgw_dns_queries_total',
  syntheticAddresses: 'srtgw_dns_synthetic_addresses',
  tunnelSignals: 'srtgw_dns_tunnel_signals_total',
} as const;

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

  const unsubscribe = subscribe((event) => {
    const qtype = event.qtype === '' ? '' : QTYPE_LABELS.has(event.qtype) ? event.qtype : 'other';
    queries.inc({ decision: event.decision, qtype });
    for (const signal of event.tunnelSignals) signals.inc({ signal });
  });
  return {
    close() {
      unsubscribe();
      for (const name of Object.values(DNS_METRIC_NAMES)) registry.removeSingleMetric(name);
    },
  };
}
