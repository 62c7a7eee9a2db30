// The upstream response limits of `--upstream-timeout` (README: 60 s for the response head once
// the request is sent, 300 s between two chunks of its body), enforced by one sweep over the
// responses in flight instead of timers per request.
//
// Why not undici's headersTimeout and bodyTimeout: undici arms a new timer each time a connection
// switches between waiting for a head and reading a body, two per request, and a cleared one
// leaves undici's timer list only at its next tick, up to a second later. At 15k requests/s that
// kept ~30k timer objects alive long enough to be promoted: the old generation grew by ~3 MB/s
// at c=32 (V8's sampling heap profiler, counting what full collections freed: about 60 % of it
// undici's timers), and the gateway spent 1.4-3.1 % more CPU per request (two gateways sharing
// one core under the same load, four rounds). A sweep costs a request one object and a few
// field writes.
//
// The rules (undici's, except that undici timed the head from the start of the request and let it
// off while a body was still being written):
// - head: the request has been handed over in full (its body, if any, ended) and no response
//   head has come for the head limit;
// - body: the head has come (an upload may still be going on) and no body byte has for the body
//   limit, while the client reads; a response paused because the client stopped reading
//   (backpressure) is not timed.
// A sweep notices each change of a response's state and times from there, so a limit fires
// between the limit and the limit plus two sweep intervals after the last change, never early.

import { limitOrNever, sweepIntervalFor } from '../sweep-timing.js';

export interface ResponseLimits {
  /** No response head this long after the request was sent: abort. 0 or Infinity: never. */
  headMs: number;
  /** No body byte this long while the client reads: abort. 0 or Infinity: never. */
  bodyMs: number;
}

/** One response in flight: the upstream client sets the first four fields, the sweeper the rest. */
export class ResponseProgress {
  /** The request, body included, has been handed over. */
  sent: boolean;
  /** The response head has arrived. */
  headReceived = false;
  /** Body bytes received so far. */
  bytes = 0;
  /** The client stopped reading; the upstream is paused until it drains. */
  paused = false;
  /** What the last sweep saw: bytes, and the flags as bits. */
  seenBytes = -1;
  seenState = -1;
  /** When a sweep last saw a change (ms, the sweeper's clock). */
  changedAt = 0;
  /** Links of the sweeper's list of responses in flight; null once the response is done. */
  previous: ResponseProgress | null = null;
  next: ResponseProgress | null = null;
  listed = false;

  constructor(
    sent: boolean,
    /** Ends the exchange with this error (undici's HeadersTimeoutError or BodyTimeoutError). */
    readonly abort: (error: Error) => void,
  ) {
    this.sent = sent;
  }
}

export class ResponseDeadlines {
  /**
   * The responses in flight, as a list threaded through them. Not a Set: a Set that gains and
   * loses an entry per request replaces its hash table every few dozen requests, and a replaced
   * table that had reached the old generation still points at its entries, so V8's scavenges
   * kept every request they reached alive (and promoted it) until the next full collection:
   * with a Set, 18-23 % more CPU per request at c=32 and a full collection every 0.5 s.
   */
  #first: ResponseProgress | null = null;
  #size = 0;
  readonly #headMs: number;
  readonly #bodyMs: number;
  readonly #expired: (limit: 'head' | 'body') => Error;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;

  /** `expired` makes the error a response that runs out of time is aborted with. */
  constructor(limits: ResponseLimits, expired: (limit: 'head' | 'body') => Error, now: () => number = () => performance.now()) {
    this.#headMs = limitOrNever(limits.headMs);
    this.#bodyMs = limitOrNever(limits.bodyMs);
    this.#expired = expired;
    this.#now = now;
  }

  /** A tenth of the shorter limit, at least 100 ms, at most 1 s. */
  get sweepIntervalMs(): number {
    return sweepIntervalFor(this.#headMs, this.#bodyMs);
  }

  /** Responses being timed. */
  get size(): number {
    return this.#size;
  }

  /** Starts timing a response; `sent` is false while a request body is still being handed over. */
  watch(sent: boolean, abort: (error: Error) => void): ResponseProgress {
    const progress = new ResponseProgress(sent, abort);
    if (this.#headMs === Number.POSITIVE_INFINITY && this.#bodyMs === Number.POSITIVE_INFINITY) return progress;
    progress.next = this.#first;
    if (this.#first !== null) this.#first.previous = progress;
    this.#first = progress;
    progress.listed = true;
    this.#size += 1;
    this.#timer ??= setInterval(() => this.sweep(), this.sweepIntervalMs).unref();
    return progress;
  }

  /** The exchange is over, however it ended. */
  done(progress: ResponseProgress): void {
    if (!progress.listed) return;
    if (progress.previous !== null) progress.previous.next = progress.next;
    else this.#first = progress.next;
    if (progress.next !== null) progress.next.previous = progress.previous;
    // Cleared, so a finished response keeps none of its neighbours alive.
    progress.previous = null;
    progress.next = null;
    progress.listed = false;
    this.#size -= 1;
  }

  /** One pass: aborts the responses past a limit. Runs on a timer; public for tests. */
  sweep(): void {
    const now = this.#now();
    for (let progress = this.#first, next: ResponseProgress | null; progress !== null; progress = next) {
      next = progress.next;
      const state = (progress.sent ? 1 : 0) | (progress.headReceived ? 2 : 0) | (progress.paused ? 4 : 0);
      if (progress.bytes !== progress.seenBytes || state !== progress.seenState) {
        progress.seenBytes = progress.bytes;
        progress.seenState = state;
        progress.changedAt = now;
        continue;
      }
      // The body is timed once the head is in, even while an upload still goes on beside it.
      if (progress.paused || !(progress.headReceived || progress.sent)) continue;
      const limit = progress.headReceived ? 'body' : 'head';
      if (now - progress.changedAt < (limit === 'head' ? this.#headMs : this.#bodyMs)) continue;
      this.done(progress);
      progress.abort(this.#expired(limit));
    }
    if (this.#size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  /** Stops the timer; the exchanges still open are ended by their owners. */
  close(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    while (this.#first !== null) this.done(this.#first);
  }
}
