// Closes HTTP/1.1 connections inside tunnels that sit between requests for longer than the
// keep-alive limit (README: "30 s keep-alive idle").
//
// Why not node's own keepAliveTimeout: node re-arms the socket's timer twice per request (the
// keep-alive limit when a response ends, the idle limit when the next request starts), and each
// re-arm allocates a bound function and a Timeout and relinks the timer lists. Measured with two
// gateways sharing one core under the same keep-alive load (bench/README.md): 1.4-2.9 % of the
// gateway's CPU per request. One sweep over the open connections a second costs nothing per
// request: a request only records its response.
//
// A connection is idle when its last response has been written out and no byte has moved either
// way since the previous sweep. Like node's timer (any read or write re-arms it), a client that
// is sending its next request head is not idle; a head that never completes is node's header
// timeout's job.

/** What the sweeper needs of a connection: public members of net.Socket and tls.TLSSocket. */
export interface SweptSocket {
  readonly bytesRead: number;
  readonly bytesWritten: number;
  destroy(): unknown;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

interface ConnectionState {
  /** The response to the latest request; responses go out in order, so its end is the end of all. */
  lastResponse: { readonly writableFinished: boolean };
  /** bytesRead + bytesWritten when last swept. */
  bytesSeen: number;
  /** When the sweep last saw this connection busy or moving bytes (ms, the sweeper's clock). */
  lastActive: number;
  readonly onClose: () => void;
}

export class KeepAliveSweeper {
  readonly #connections = new Map<SweptSocket, ConnectionState>();
  readonly #idleLimitMs: number;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;

  /**
   * `idleLimitMs`: how long a connection may wait for its next request. Connections are closed
   * between idleLimitMs and idleLimitMs plus one sweep interval (a tenth of the limit, at least
   * 100 ms, at most 1 s) after their last activity. 0 (or Infinity) turns the limit off, as
   * node's keepAliveTimeout: 0 does; the socket idle timeout still applies.
   */
  constructor(idleLimitMs: number, now: () => number = () => performance.now()) {
    this.#idleLimitMs = idleLimitMs;
    this.#now = now;
  }

  get sweepIntervalMs(): number {
    return Math.min(1000, Math.max(100, Math.floor(this.#idleLimitMs / 10)));
  }

  /** Open connections being watched (between their first request and their close or upgrade). */
  get size(): number {
    return this.#connections.size;
  }

  /** Called for every HTTP/1.1 request, with the response that answers it. */
  noteRequest(socket: SweptSocket, response: { readonly writableFinished: boolean }): void {
    if (!(this.#idleLimitMs > 0 && Number.isFinite(this.#idleLimitMs))) return;
    const state = this.#connections.get(socket);
    if (state !== undefined) {
      state.lastResponse = response;
      return;
    }
    const onClose = () => this.#connections.delete(socket);
    this.#connections.set(socket, { lastResponse: response, bytesSeen: socket.bytesRead + socket.bytesWritten, lastActive: this.#now(), onClose });
    socket.once('close', onClose);
    if (this.#timer === null) this.#timer = setInterval(() => this.sweep(), this.sweepIntervalMs).unref();
  }

  /** Stops watching `socket` (it was upgraded to a WebSocket: the idle socket timeout governs it). */
  forget(socket: SweptSocket): void {
    const state = this.#connections.get(socket);
    if (state === undefined) return;
    this.#connections.delete(socket);
    // An upgraded socket collects close listeners from both relay pipelines; ours would be the
    // eleventh, and node warns of a leak on stderr past ten.
    socket.off('close', state.onClose);
  }

  /** One pass: closes the connections idle for the limit. Runs on a timer; public for tests. */
  sweep(): void {
    const now = this.#now();
    for (const [socket, state] of this.#connections) {
      const bytes = socket.bytesRead + socket.bytesWritten;
      if (bytes !== state.bytesSeen || !state.lastResponse.writableFinished) {
        state.bytesSeen = bytes;
        state.lastActive = now;
      } else if (now - state.lastActive >= this.#idleLimitMs) {
        this.#connections.delete(socket);
        socket.destroy();
      }
    }
    if (this.#connections.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Stops the timer; the connections are closed by their owners. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#connections.clear();
  }
}
