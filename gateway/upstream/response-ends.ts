// When a forwarded response whose upstream answer is complete is ended towards its client: at
// once when it is the gateway's only exchange in flight, else at the end of the loop turn,
// together with the turn's other completed responses. One per gateway (startGateway makes it),
// so one gateway's traffic never changes when another's responses end.
import { EndOfTurnQueue } from '../end-of-turn-queue.js';

/** What ResponseEnds needs of a client response (an http.ServerResponse or Http2ServerResponse). */
export interface EndableResponse {
  end(): unknown;
  destroy(error?: Error): unknown;
}

/**
 * Why batch: ending the turn's completed responses together, after the turn's reads, cost 8-9 %
 * less gateway CPU per request at 32 kept-alive connections (bench/README.md, "Where the CPU of a
 * keep-alive request goes"). Why not always: a response that ends while it is the only exchange
 * in flight has no other write to be batched with, and waiting for the end of the turn would only
 * make its client wait for the bookkeeping done meanwhile (+0.02 ms of p50 latency at one
 * connection, 8 alternating pairs).
 */
export class ResponseEnds {
  readonly #queue = new EndOfTurnQueue<EndableResponse>(
    (response) => response.end(),
    (response, error) => response.destroy(error as Error),
  );
  #inFlight = 0;

  /** Exchanges forwarded and not yet settled. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Responses waiting for the end of this loop turn. */
  get queued(): number {
    return this.#queue.length;
  }

  /** An exchange was handed to the upstream. */
  started(): void {
    this.#inFlight++;
  }

  /** An exchange settled (its response ended, failed or was never sent). */
  settled(): void {
    this.#inFlight--;
  }

  /** Ends `response` now when it is alone, else with the loop turn's other responses. */
  end(response: EndableResponse): void {
    if (this.#inFlight > 1 || this.#queue.length > 0) this.#queue.push(response);
    else response.end();
  }
}
