// The time limits of the connections served inside tunnels (README "Bounds": 30 s keep-alive
// idle, 120 s socket idle), enforced by one sweep over the open connections instead of node's
// per-socket timers.
//
// Why not node's timers (server.setTimeout, keepAliveTimeout): node re-arms a socket's idle timer
// on every read and write, walking up to the tunnel socket beneath and re-arming its timer too,
// and re-arms the keep-alive timer twice per request (when a response ends and when the next
// request starts), each time allocating a bound function and a Timeout. Measured with two
// gateways sharing one core under the same keep-alive load (bench/README.md): the keep-alive
// timers 1.4-2.9 % of the gateway's CPU per request, the idle timers about 3.5 % more. A sweep a
// second costs nothing per request: a request only records its response.
//
// Two rules, the same as node's:
// - idle: no byte has moved either way for the idle limit, whatever the connection is doing (a
//   request waiting that long for its upstream included);
// - keep-alive (HTTP/1.1 only): the last response has been written and no byte has moved for the
//   keep-alive limit. A client sending its next request head is not idle; a head that never
//   completes is node's header timeout's job.
// An upgraded (WebSocket) connection is dropped from the sweep: node's HTTP server stops timing a
// socket once it hands it over for an upgrade, and so does this.

import { limitOrNever, sweepIntervalFor } from '../sweep-timing.js';

/** What the sweeper needs of a connection: public members of net.Socket and tls.TLSSocket. */
export interface SweptSocket {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  destroy(): unknown;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

/**
 * The sweeper's time: a clock and a timer that runs the sweep. The gateway uses the real ones;
 * a test passes its own (GatewayLimits.sweepClock) to drive time instead of waiting for it.
 */
export interface SweepClock {
  /** Milliseconds on a monotonic clock. */
  now(): number;
  /** Calls `sweep` every `intervalMs` until the returned function is called. */
  every(intervalMs: number, sweep: () => void): () => void;
}

export const REAL_SWEEP_CLOCK: SweepClock = {
  now: () => performance.now(),
  every(intervalMs, sweep) {
    // Never what keeps a process alive.
    const timer = setInterval(sweep, intervalMs).unref();
    return () => clearInterval(timer);
  },
};

export interface SweepLimits {
  /** No byte either way for this long closes a connection; 0 or Infinity: never. */
  idleMs: number;
  /** An HTTP/1.1 connection waiting this long for its next request is closed; 0 or Infinity: never. */
  keepAliveMs: number;
}

interface ConnectionState {
  /** The response to the latest HTTP/1.1 request; responses go out in order, so its end is the end of all. */
  lastResponse: { readonly writableFinished: boolean } | null;
  /** bytesRead + bytesWritten when last swept. */
  bytesSeen: number;
  /** When a sweep last saw bytes move (ms, the sweeper's clock). */
  lastMoved: number;
  /** When a sweep last saw bytes move or a response still being written. */
  lastBusy: number;
  readonly onClose: () => void;
}

export class ConnectionSweeper {
  readonly #connections = new Map<SweptSocket, ConnectionState>();
  readonly #idleMs: number;
  readonly #keepAliveMs: number;
  readonly #clock: SweepClock;
  /** Stops the running sweep timer; null while no connection is watched. */
  #stopTimer: (() => void) | null = null;

  /**
   * Connections are closed between a limit and the limit plus one sweep interval after their
   * last activity; the interval is a tenth of the shorter limit, at least 100 ms, at most 1 s.
   */
  constructor(limits: SweepLimits, clock: SweepClock = REAL_SWEEP_CLOCK) {
    this.#idleMs = limitOrNever(limits.idleMs);
    this.#keepAliveMs = limitOrNever(limits.keepAliveMs);
    this.#clock = clock;
  }

  get sweepIntervalMs(): number {
    return sweepIntervalFor(this.#idleMs, this.#keepAliveMs);
  }

  /** Open connections being watched (from track() to their close or upgrade). */
  get size(): number {
    return this.#connections.size;
  }

  /** Starts watching a connection being served (a TLS socket once its handshake is done, or a plain one). */
  track(socket: SweptSocket): void {
    if (this.#idleMs === Number.POSITIVE_INFINITY && this.#keepAliveMs === Number.POSITIVE_INFINITY) return;
    if (this.#connections.has(socket)) return;
    const onClose = () => this.#connections.delete(socket);
    const now = this.#clock.now();
    this.#connections.set(socket, { lastResponse: null, bytesSeen: socket.bytesRead + socket.bytesWritten, lastMoved: now, lastBusy: now, onClose });
    socket.once('close', onClose);
    this.#stopTimer ??= this.#clock.every(this.sweepIntervalMs, () => this.sweep());
  }

  /** Called for every HTTP/1.1 request, with the response that answers it. */
  noteRequest(socket: SweptSocket, response: { readonly writableFinished: boolean }): void {
    const state = this.#connections.get(socket);
    if (state !== undefined) state.lastResponse = response;
  }

  /** Stops watching `socket`: it was upgraded (node stops timing an upgraded socket as well). */
  forget(socket: SweptSocket): void {
    const state = this.#connections.get(socket);
    if (state === undefined) return;
    this.#connections.delete(socket);
    // An upgraded socket collects close listeners from both relay pipelines; ours would be the
    // eleventh, and node warns of a leak on stderr past ten.
    socket.off('close', state.onClose);
  }

  /** One pass: closes the connections past a limit. Runs on a timer; public for tests. */
  sweep(): void {
    const now = this.#clock.now();
    for (const [socket, state] of this.#connections) {
      const bytes = socket.bytesRead + socket.bytesWritten;
      if (bytes !== state.bytesSeen) {
        state.bytesSeen = bytes;
        state.lastMoved = now;
        state.lastBusy = now;
        continue;
      }
      if (state.lastResponse !== null && !state.lastResponse.writableFinished) state.lastBusy = now;
      const idle = now - state.lastMoved >= this.#idleMs;
      const waitedForRequest = state.lastResponse !== null && now - state.lastBusy >= this.#keepAliveMs;
      if (idle || waitedForRequest) {
        this.#connections.delete(socket);
        socket.destroy();
      }
    }
    if (this.#connections.size === 0 && this.#stopTimer !== null) {
      this.#stopTimer();
      this.#stopTimer = null;
    }
  }

  /** Stops the timer; the connections are closed by their owners. */
  close(): void {
    this.#stopTimer?.();
    this.#stopTimer = null;
    this.#connections.clear();
  }
}
