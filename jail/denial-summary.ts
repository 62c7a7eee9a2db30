// What one run was refused, grouped so a user can fix the policy: host, port, rule and reason
// with a count. Fed by the gateway's decision events (the same seam as the audit log).
import type { DnsQueryEvent, TunnelSignal } from '../gateway/dns/query-events.js';
import type { GatewayEvents } from '../gateway/audit/events.js';

export interface Denial {
  /**
   * request: an HTTP request was refused; connection: a connection (IP literal, non-HTTP TCP);
   * dns: a name was not resolved; file/other: the OS jail refused an operation (macOS Seatbelt log);
   * dns-names: a wildcard rule (`host` is its pattern) reached its name cap or saw names that look
   * like a DNS tunnel (`reason` says which; `count` is the queries the cap refused);
   * upstream: an allowed request the upstream side failed (its name did not resolve, the
   * connection was refused or reset, its certificate did not verify, it timed out).
   */
  readonly kind: 'request' | 'connection' | 'dns' | 'dns-names' | 'upstream' | 'file' | 'other';
  readonly host: string;
  /** Absent for DNS. */
  readonly port?: number;
  /** Method and path of the first refused request of this group (requests only). */
  readonly example?: string;
  readonly rule: string | null;
  readonly reason: string;
  readonly count: number;
  /** True when --monitor let these through: they would have been denied. */
  readonly monitored: boolean;
}

export interface DenialCollectorOptions {
  /** Groups kept; later new groups are only counted. Default 200. */
  maxGroups?: number;
  /**
   * Only one jail's denials, on a gateway several runs share: its DNS queries (client
   * `clientLabel`), its connections (client `clientLabel:address`) and the requests on them.
   */
  clientLabel?: string;
}

/** Connection ids of one jail remembered to attribute its requests; the oldest are forgotten first. */
const MAX_TRACKED_CONNECTIONS = 65_536;
/** Wildcard rules followed for the names summary (a policy has few; reloads may add some). */
const MAX_WILDCARD_RULES = 100;

/** What the names under one wildcard rule looked like (dns events' `wildcard` field). */
interface WildcardNames {
  readonly rule: string;
  readonly pattern: string;
  names: number;
  cap: number;
  refused: number;
  longLabels: number;
  highEntropy: number;
}

/** Collects denials from `events` until stopped; bounded, so a flood cannot grow it without end. */
export class DenialCollector {
  private readonly groups = new Map<string, { -readonly [K in keyof Denial]: Denial[K] }>();
  private readonly wildcards = new Map<string, WildcardNames>();
  private dropped = 0;
  private readonly unsubscribe: (() => void)[];
  private readonly maxGroups: number;

  constructor(events: GatewayEvents, options: DenialCollectorOptions = {}) {
    this.maxGroups = options.maxGroups ?? 200;
    const label = options.clientLabel;
    const connections = new Set<string>();
    const ours = label === undefined ? null : { dns: (client: string) => client === label, connection: (client: string) => client.startsWith(`${label}:`) };
    this.unsubscribe = [
      events.on('request', (event) => {
        if (ours && !connections.has(event.conn)) return;
        if (event.decision === 'error') {
          this.add({ kind: 'upstream', host: event.host, port: event.port, example: `${event.method} ${event.path}`, rule: event.rule, reason: event.reason, monitored: false });
          return;
        }
        if (event.decision !== 'deny' && !event.monitored) return;
        this.add({ kind: 'request', host: event.host, port: event.port, example: `${event.method} ${event.path}`, rule: event.rule, reason: event.reason, monitored: event.monitored === true });
      }),
      events.on('connect', (event) => {
        if (ours) {
          if (!ours.connection(event.client)) return;
          if (event.decision === 'allow') {
            if (connections.size >= MAX_TRACKED_CONNECTIONS) connections.delete(connections.values().next().value!);
            connections.add(event.conn);
          }
        }
        if (event.decision !== 'deny') return;
        this.add({ kind: 'connection', host: event.host, port: event.port, rule: event.rule, reason: event.reason, monitored: false });
      }),
      events.on('dns', (event) => {
        if (ours && !ours.dns(event.client)) return;
        if (event.wildcard) this.countWildcardName(event.wildcard, event.tunnelSignals);
        // Refused by its rule's name cap: summed up in the rule's one line, not one line a name.
        if (event.wildcard?.capped) return;
        if (event.decision !== 'denied' && event.decision !== 'refused') return;
        // --monitor resolved it (A/AAAA upstream, other types an empty answer): a would-be denial.
        if (event.monitored) this.add({ kind: 'dns', host: event.name, rule: null, reason: `no rule allows ${event.name}`, monitored: true });
        else this.add({ kind: 'dns', host: event.name, rule: null, reason: `no rule allows ${event.name}, so the name was not resolved`, monitored: false });
      }),
    ];
  }

  private countWildcardName(use: NonNullable<DnsQueryEvent['wildcard']>, signals: readonly TunnelSignal[]): void {
    const key = `${use.rule}\u0000${use.pattern}`;
    let names = this.wildcards.get(key);
    if (names === undefined) {
      if (this.wildcards.size >= MAX_WILDCARD_RULES) return;
      names = { rule: use.rule, pattern: use.pattern, names: 0, cap: use.cap, refused: 0, longLabels: 0, highEntropy: 0 };
      this.wildcards.set(key, names);
    }
    // The gateway's count: on a gateway several runs share, it includes the other runs' names.
    names.names = Math.max(names.names, use.names);
    names.cap = use.cap;
    if (use.capped) names.refused++;
    if (!use.firstSeen) return;
    if (signals.includes('long-label')) names.longLabels++;
    if (signals.includes('high-entropy')) names.highEntropy++;
  }

  /** One dns-names entry per wildcard rule that hit its cap or saw tunnel-like names. */
  private wildcardDenials(): Denial[] {
    const lines: Denial[] = [];
    for (const names of this.wildcards.values()) {
      const signs = [
        ...(names.longLabels > 0 ? [`${names.longLabels} with long labels`] : []),
        ...(names.highEntropy > 0 ? [`${names.highEntropy} with random-looking labels`] : []),
      ];
      if (signs.length === 0 && names.refused === 0) continue;
      const parts = [`${names.names} distinct names`, ...signs].join(', ');
      const verdict = signs.length > 0 ? ' — possible DNS tunnel' : '';
      const capped = names.refused > 0 ? `; capped at ${names.cap}` : '';
      lines.push({ kind: 'dns-names', host: names.pattern, rule: names.rule, reason: `${parts}${verdict}${capped}`, count: names.refused, monitored: false });
    }
    return lines;
  }

  private add(denial: Omit<Denial, 'count'>): void {
    const key = [denial.kind, denial.host, denial.port, denial.rule, denial.reason, denial.monitored].join('\u0000');
    const group = this.groups.get(key);
    if (group) {
      group.count++;
      return;
    }
    if (this.groups.size >= this.maxGroups) {
      this.dropped++;
      return;
    }
    this.groups.set(key, { ...denial, count: 1 });
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribe) unsubscribe();
  }

  /** Groups in the order first seen; `omitted` counts denials beyond the group limit. */
  denials(): { denials: Denial[]; omitted: number } {
    return { denials: [...this.groups.values(), ...this.wildcardDenials()], omitted: this.dropped };
  }
}

/**
 * The lines `srt-gw run` prints on stderr at exit: first one line per wildcard rule that reached
 * its name cap or saw tunnel-like names, then what --monitor let through, each line
 * saying "would be denied", then what was refused (some checks deny even in --monitor mode:
 * malformed requests, a Host that differs from the TLS name). A DNS denial of a host that was
 * also refused as a connection or request says nothing new, and is folded into it.
 */
/** The summary's closing advice for a run whose own policy decided. */
export const LOCAL_POLICY_HINT = 'To allow a host, add a rule to the policy (srt-gw policy explain shows which rule decides).';

/** `hint`: the closing advice (a run through a remote gateway points at that gateway's policy). */
export function formatDenialSummary(all: readonly Denial[], omitted = 0, hint: string = LOCAL_POLICY_HINT): string {
  if (all.length === 0 && omitted === 0) return '';
  const wildcardNames = all.filter((d) => d.kind === 'dns-names');
  const upstreamFailures = all.filter((d) => d.kind === 'upstream');
  const denials = all.filter((d) => d.kind !== 'dns-names' && d.kind !== 'upstream');
  const hostsWithOtherDenials = new Set(denials.filter((d) => d.kind !== 'dns').map((d) => `${d.host}\u0000${d.monitored}`));
  const shown = denials.filter((d) => d.kind !== 'dns' || !hostsWithOtherDenials.has(`${d.host}\u0000${d.monitored}`));
  const wouldBeDenied = shown.filter((d) => d.monitored);
  const denied = shown.filter((d) => !d.monitored);
  const lines: string[] = [];
  if (wildcardNames.length > 0) {
    lines.push('srt-gw: names under wildcard rules (each new name costs an upstream DNS lookup):');
    for (const d of wildcardNames) lines.push(`  ${d.host}: ${d.reason}  [${d.rule ?? 'no rule'}]`);
  }
  if (upstreamFailures.length > 0) {
    lines.push('srt-gw: allowed, but the upstream failed:');
    for (const d of upstreamFailures) lines.push(summaryLine(d, ''));
  }
  if (denials.length === 0 && omitted === 0) return lines.join('\n') + '\n';
  if (wouldBeDenied.length > 0) {
    lines.push('srt-gw: --monitor: these would have been denied (they were let through):');
    for (const d of wouldBeDenied) lines.push(summaryLine(d, 'would be denied  '));
  }
  if (denied.length > 0 || wouldBeDenied.length === 0) {
    lines.push('srt-gw: denied during this run:');
    for (const d of denied) lines.push(summaryLine(d, ''));
  }
  if (omitted > 0) lines.push(`  ... and ${omitted} more (see the audit log: --log FILE)`);
  lines.push(`  ${hint}`);
  if (wouldBeDenied.length > 0) lines.push('  srt-gw run --monitor --write-policy FILE drafts a policy from what a run did.');
  return lines.join('\n') + '\n';
}

function summaryLine(d: Denial, verdict: string): string {
  const where = d.port === undefined ? d.host : `${d.host}:${d.port}`;
  const what = d.kind === 'request' || d.kind === 'upstream' ? `${d.example ?? 'request'}` : d.kind === 'dns' ? 'DNS lookup' : d.kind === 'connection' ? 'connection' : (d.example ?? d.kind);
  const times = d.count > 1 ? ` (${d.count}x)` : '';
  return `  ${where}  ${what}${times}  ${verdict}[${d.rule ?? 'no rule'}] ${d.reason}`;
}
