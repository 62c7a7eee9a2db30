// Resource bounds for client connections: no slowloris, no unbounded headers or sessions.
import type { SweepClock } from './http/connection-sweeper.js';

export interface GatewayLimits {
  /** Largest request head accepted (bytes); larger → 431 and the connection closes. */
  maxHeaderBytes: number;
  /** Time for a client to send a complete request head. */
  headersTimeoutMs: number;
  /** Idle keep-alive connections are closed after this; 0: never (idleTimeoutMs still applies). */
  keepAliveTimeoutMs: number;
  /** A socket with no traffic at all for this long is closed; 0: never. */
  idleTimeoutMs: number;
  /** Time for a TLS handshake to complete. */
  handshakeTimeoutMs: number;
  /** Open client connections at once; further ones are refused. */
  maxConnections: number;
  /** Concurrent streams per HTTP/2 connection. */
  maxConcurrentStreams: number;
  /**
   * The clock and timer the keep-alive and idle limits are timed with. Default: the real ones;
   * a test passes its own to move time on instead of waiting for it.
   */
  sweepClock?: SweepClock;
}

export const DEFAULT_LIMITS: GatewayLimits = {
  maxHeaderBytes: 16 * 1024,
  headersTimeoutMs: 10_000,
  keepAliveTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 4096,
  maxConcurrentStreams: 128,
};
