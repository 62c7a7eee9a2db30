// Work that can wait until the end of the current turn of the event loop, done there all together.
//
// Why: on a busy gateway one turn of the loop reads many sockets, and each read finishes some
// request. Doing that request's last steps (ending its response, building its audit line) right
// there interleaves them with the reads of every other socket; doing them in one pass after all
// the reads (setImmediate runs once the turn's I/O is handled) cost 5-9 % less CPU per request at
// 32 kept-alive connections (bench/README.md, "Where the CPU of a keep-alive request goes").

/** Items handled in the order they were pushed, once per loop turn, or at once by flush(). */
export class EndOfTurnQueue<T> {
  #items: T[] = [];
  readonly #flush = (): void => this.flush();

  /**
   * `handle` takes one item; when it throws, `onError` gets the item and the error, and the
   * other items are still handled.
   */
  constructor(
    private readonly handle: (item: T) => void,
    private readonly onError: (item: T, error: unknown) => void,
  ) {}

  /** Items waiting. */
  get length(): number {
    return this.#items.length;
  }

  push(item: T): void {
    if (this.#items.push(item) === 1) setImmediate(this.#flush);
  }

  /** Handles every queued item now (the timer then finds nothing left to do). */
  flush(): void {
    if (this.#items.length === 0) return;
    const batch = this.#items;
    this.#items = [];
    for (const item of batch) {
      try {
        this.handle(item);
      } catch (error) {
        this.onError(item, error);
      }
    }
  }
}
