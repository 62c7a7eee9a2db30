import dnsPacket from 'dns-packet';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { registerDnsMetrics } from './metrics.js';
import type { DnsQueryEvent } from './query-events.js';
import { DnsResponder } from './responder.js';
import { SyntheticAddressPool } from './synthetic-pool.js';
import { WildcardNameCap } from './wildcard-names.js';
import { parsePolicy } from '../../policies/loader.js';

describe('registerDnsMetrics', () => {
  it('counts queries by decision and bounded qtype, tunnel signals, and the pool size', async () => {
    const registry = new client.Registry();
    const pool = new SyntheticAddressPool();
    const listeners: ((event: DnsQueryEvent) => void)[] = [];
    const metrics = registerDnsMetrics(registry, (listener) => {
      listeners.push(listener);
      return () => listeners.splice(listeners.indexOf(listener), 1);
    }, pool);
    const responder = new DnsResponder({
      admission: { couldAllowHost: (h) => h.endsWith('.allowed.test') },
      pool,
      rateLimit: { queriesPerSecond: 1, burst: 4 },
      onQuery: (event) => listeners.forEach((listener) => listener(event)),
    });
    const send = (name: string, type: string) =>
      void responder.respond(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: type as 'A', name }] }), '10.1.1.1', 'udp');
    send('a.allowed.test', 'A');
    send('b.allowed.test', 'AAAA');
    send('mzxw6ytboi4dcmrtgq2tmnzygeztmnjqmzxw6ytboi4dcmrtgq2tmnzyge.attacker.test', 'TXT');
    send('a.allowed.test', 'UNKNOWN_4711');
    send('a.allowed.test', 'A'); // over the burst
    void responder.respond(Buffer.from([1, 2, 3]), '10.1.1.2', 'udp');
    const text = await registry.metrics();
    expect(text).toContain('srtgw_dns_queries_total{decision="synthetic",qtype="A"} 1');
    expect(text).toContain('srtgw_dns_queries_total{decision="synthetic",qtype="AAAA"} 1');
    expect(text).toContain('srtgw_dns_queries_total{decision="denied",qtype="TXT"} 1');
    expect(text).toContain('srtgw_dns_queries_total{decision="nodata",qtype="other"} 1');
    expect(text).toContain('srtgw_dns_queries_total{decision="rate-limited",qtype="A"} 1');
    expect(text).toContain('srtgw_dns_queries_total{decision="malformed",qtype=""} 1');
    expect(text).toContain('srtgw_dns_tunnel_signals_total{signal="long-label"} 1');
    expect(text).toContain('srtgw_dns_tunnel_signals_total{signal="high-entropy"} 1');
    expect(text).toContain('srtgw_dns_tunnel_signals_total{signal="burst"} 1');
    expect(text).toContain('srtgw_dns_synthetic_addresses 2');
    metrics.close();
    expect(listeners).toHaveLength(0);
    expect(await registry.metrics()).not.toContain('srtgw_dns_');
  });
});

describe('wildcard name metrics', () => {
  it('count cap refusals and tunnel-like names per wildcard rule, each name once', async () => {
    const registry = new client.Registry();
    const listeners: ((event: DnsQueryEvent) => void)[] = [];
    const metrics = registerDnsMetrics(registry, (listener) => {
      listeners.push(listener);
      return () => listeners.splice(listeners.indexOf(listener), 1);
    });
    const policy = parsePolicy('version: 1\ndns:\n  maxNamesPerWildcard: 2\nrules:\n  - id: wild\n    host: "*.allowed.test"\n');
    const responder = new DnsResponder({
      admission: { couldAllowHost: (h) => h.endsWith('.allowed.test') },
      pool: new SyntheticAddressPool(),
      rateLimit: false,
      wildcardNames: new WildcardNameCap(() => policy),
      onQuery: (event) => listeners.forEach((listener) => listener(event)),
    });
    const send = (name: string) => void responder.respond(dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name }] }), '10.1.1.1', 'udp');
    const long = 'mzxw6ytboi4dcmrtgq2tmnzygeztmnjqmzxw6ytboi4dcmrtgq2tmnzyge';
    send(`${long}.allowed.test`);
    send(`${long}.allowed.test`); // the same name: not counted again
    send('www.allowed.test');
    send('third.allowed.test'); // over the cap
    send('fourth.allowed.test');
    const text = await registry.metrics();
    expect(text).toContain('srtgw_dns_wildcard_names_refused_total{rule="wild"} 2');
    expect(text).toContain('srtgw_dns_wildcard_tunnel_signals_total{rule="wild",signal="long-label"} 1');
    expect(text).toContain('srtgw_dns_wildcard_tunnel_signals_total{rule="wild",signal="high-entropy"} 1');
    metrics.close();
  });
});
