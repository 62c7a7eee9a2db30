// The observability seam: every decision the gateway makes is published on a diagnostics
// channel. The audit log, the Prometheus collector and the library API subscribe; nothing
// else writes decisions anywhere. Field names here are the audit log's schema.
import diagnosticsChannel from 'node:diagnostics_channel';
import type { ReasonCode, UpstreamFailureKind } from '../../reason-codes.js';
import { DNS_QUERY_CHANNEL, type DnsQueryEvent } from '../dns/query-events.js';

export const CHANNELS = {
  request: 'srt-gw:request:decision',
  connect: 'srt-gw:connect:decision',
  tls: 'srt-gw:tls:handshake',
  leafCache: 'srt-gw:tls:leaf-cache',
  connections: 'srt-gw:connections',
  policyReload: 'srt-gw:policy:reload',
  auditLinesLost: 'srt-gw:audit:lines-lost',
  dns: DNS_QUERY_CHANNEL,
} as const;

export type HttpProtocol = 'http/1.1' | 'h2';
export type RequestOutcome = 'allow' | 'deny' | 'error';

/** One per HTTP request (or WebSocket upgrade), published when the exchange ends. */
export interface RequestEvent {
  kind: 'request';
  conn: string;
  /**
   * The policy client that sent it (`clients:`, explicit proxy of srt-gw serve); absent when the
   * policy names no clients, or when the request did not authenticate (then code client-*).
   */
  clientId?: string;
  protocol: HttpProtocol;
  method: string;
  host: string;
  port: number;
  /** Normalised path without the query string (queries often carry secrets), capped in length. */
  path: string;
  decision: RequestOutcome;
  /** Deciding rule id; null for checks that come before the policy (framing, authority). */
  rule: string | null;
  reason: string;
  /** The reason's stable code (reason-codes.ts), e.g. allowed-by-rule, host-not-allowed, budget-exceeded. */
  code: ReasonCode;
  /**
   * Which pipeline step decided: framing (400), authority (421), policy (403), credentials (403),
   * budget (429), destination (403: the host resolved to a private address the policy does not
   * open), upstream (502). An allowed request names the policy step.
   */
  step: RequestStep;
  status: number;
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  /** For step "upstream": what kind of failure it was. */
  upstreamError?: UpstreamFailureKind;
  /** Only for denials that --monitor let through. */
  monitored?: boolean;
  /**
   * What the credentials step did, when the deciding rule has credential rules: injected the
   * secret, found a required credential allowed, stripped it, or refused the request (403, or
   * with `monitored`, passed it through unchanged). Never the value.
   */
  credential?: CredentialOutcomeField;
  /**
   * A gRPC call's status as the upstream sent it (trailers, or the headers of a trailers-only
   * reply): 0 is OK, 7 PERMISSION_DENIED, 16 UNAUTHENTICATED... Absent when none came.
   */
  grpcStatus?: number;
}

export type RequestStep = 'framing' | 'authentication' | 'authority' | 'policy' | 'credentials' | 'budget' | 'destination' | 'upstream';
export type CredentialOutcomeField = 'injected' | 'required-ok' | 'stripped' | 'refused';

/** One per CONNECT tunnel (or transparent connection) decision. */
export interface ConnectEvent {
  kind: 'connect';
  conn: string;
  /** The client's address ("ip:port"). */
  client: string;
  /** The policy client the CONNECT authenticated as (see RequestEvent.clientId). */
  clientId?: string;
  host: string;
  port: number;
  decision: 'allow' | 'deny';
  rule: string | null;
  reason: string;
  /** The reason's stable code (reason-codes.ts), e.g. checked-per-request, host-not-allowed, private-destination. */
  code: ReasonCode;
}

export type TlsHandshakeEvent =
  | { kind: 'tls'; conn: string; host: string; outcome: 'ok'; alpn: string }
  | {
      kind: 'tls';
      conn: string;
      host: string;
      outcome: 'failed';
      reason: string;
      /** Why, as a stable code: sni-host-mismatch, tls-handshake-failed, no-certificate, ... */
      code: ReasonCode;
    };

/** One per attempt to replace the policy (SIGHUP, file change, library reload). */
export interface PolicyReloadEvent {
  kind: 'policy-reload';
  outcome: 'ok' | 'failed';
  /** Why it failed (file:line:column message); the previous policy stays in force. */
  reason?: string;
  rules?: number;
}

export interface LeafCacheEvent {
  hit: boolean;
}

export interface ConnectionsEvent {
  /** +1 when a client connection opens, -1 when it closes. */
  delta: 1 | -1;
}

/** Audit lines the destination did not take (disk full, write error, backlog over its cap). */
export interface AuditLinesLostEvent {
  lines: number;
}

export interface GatewayEventMap {
  request: RequestEvent;
  connect: ConnectEvent;
  tls: TlsHandshakeEvent;
  leafCache: LeafCacheEvent;
  connections: ConnectionsEvent;
  policyReload: PolicyReloadEvent;
  auditLinesLost: AuditLinesLostEvent;
  dns: DnsQueryEvent;
}

type Listener<T> = (event: T) => void;

/**
 * One gateway's event fan-out. Subscribers of this gateway (its audit log, its metrics, the
 * library's decision stream) are called synchronously; the same event also goes to the
 * process-wide diagnostics channel, tagged with the gateway id, for outside observers.
 * Channels are process-global, so two gateways in one process must not share subscribers.
 */
export class GatewayEvents {
  private readonly listeners: { [K in keyof GatewayEventMap]: Listener<GatewayEventMap[K]>[] } = {
    request: [],
    connect: [],
    tls: [],
    leafCache: [],
    connections: [],
    policyReload: [],
    auditLinesLost: [],
    dns: [],
  };
  private readonly channels = {
    request: diagnosticsChannel.channel(CHANNELS.request),
    connect: diagnosticsChannel.channel(CHANNELS.connect),
    tls: diagnosticsChannel.channel(CHANNELS.tls),
    leafCache: diagnosticsChannel.channel(CHANNELS.leafCache),
    connections: diagnosticsChannel.channel(CHANNELS.connections),
    policyReload: diagnosticsChannel.channel(CHANNELS.policyReload),
    auditLinesLost: diagnosticsChannel.channel(CHANNELS.auditLinesLost),
    dns: diagnosticsChannel.channel(CHANNELS.dns),
  };

  constructor(readonly gatewayId: string) {}

  on<K extends keyof GatewayEventMap>(kind: K, listener: Listener<GatewayEventMap[K]>): () => void {
    const list = this.listeners[kind] as Listener<GatewayEventMap[K]>[];
    list.push(listener);
    return () => {
      const index = list.indexOf(listener);
      if (index >= 0) list.splice(index, 1);
    };
  }

  emit<K extends keyof GatewayEventMap>(kind: K, event: GatewayEventMap[K]): void {
    for (const listener of this.listeners[kind] as Listener<GatewayEventMap[K]>[]) listener(event);
    const channel = this.channels[kind];
    if (channel.hasSubscribers) channel.publish({ gateway: this.gatewayId, ...event });
  }
}
