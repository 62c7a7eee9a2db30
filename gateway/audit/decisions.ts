// The library's view of what a gateway decided: typed records built from the gateway's events
// (the same seam the audit log subscribes to), fanned out to listeners and to async iterators
// that each keep a bounded buffer, so a consumer that stops reading costs a fixed amount of memory.
import type { ReasonCode } from '../../reason-codes.js';
import type { DnsDecision as DnsOutcome, DnsQueryEvent } from '../dns/query-events.js';
import type { ConnectEvent, GatewayEvents, RequestEvent } from './events.js';

/** One HTTP request (or WebSocket upgrade): the audit log's `request` line, plus when it was decided. */
export interface RequestDecision extends Readonly<RequestEvent> {
  /** Milliseconds since the epoch, as the audit line's `time`. */
  readonly time: number;
}

/** One CONNECT tunnel or jail connection: the audit log's `connect` line, plus when. */
export interface ConnectionDecision extends Readonly<ConnectEvent> {
  readonly time: number;
}

/** One DNS query from the sandbox: the audit log's `dns` line, in the shape of the other records. */
export interface DnsLookupDecision {
  readonly kind: 'dns';
  readonly time: number;
  /** The queried name as the audit log has it (over 64 characters: cut and hashed). */
  readonly host: string;
  /** allow: the name got a synthetic address (or an empty answer for other types); deny: anything else. */
  readonly decision: 'allow' | 'deny';
  /** What the resolver did: the audit line's `decision` field (synthetic, nodata, denied, refused, rate-limited, malformed). */
  readonly outcome: DnsOutcome;
  /**
   * The resolver answers from the policy as a whole, never from one rule (null), except when a
   * wildcard rule's name cap refused the name: that rule's id.
   */
  readonly rule: string | null;
  readonly reason: string;
  /** The reason's stable code (reason-codes.ts): name-allowed, host-not-allowed, wildcard-cap-reached, ... */
  readonly code: ReasonCode;
  readonly qtype: string;
  readonly rcode: string;
  readonly client: string;
  readonly transport: 'udp' | 'tcp';
  readonly tunnelSignals: readonly DnsQueryEvent['tunnelSignals'][number][];
}

/** What `gateway.decisions()` yields and `gateway.on('decision', ...)` receives. */
export type Decision = RequestDecision | ConnectionDecision | DnsLookupDecision;

/** The record type for each kind `gateway.on(kind, ...)` accepts. */
export interface DecisionKinds {
  decision: Decision;
  request: RequestDecision;
  connect: ConnectionDecision;
  dns: DnsLookupDecision;
}

export interface DecisionStreamOptions {
  /**
   * Decisions held for this iterator while its consumer is not reading. When full, the oldest is
   * dropped and `dropped` counts it. Default 1024.
   */
  bufferSize?: number;
}

/** An async iterator over decisions; ends when the gateway closes or `return()` is called. */
export interface DecisionStream extends AsyncIterableIterator<Decision> {
  /** Decisions dropped (oldest first) because the buffer was full. */
  readonly dropped: number;
  /** How many decisions wait in the buffer now. */
  readonly buffered: number;
}

export const DEFAULT_DECISION_BUFFER = 1024;

/** One gateway's decision fan-out. */
export class DecisionHub {
  private readonly listeners = new Set<(decision: Decision) => void>();
  private readonly streams = new Set<BoundedDecisionStream>();
  private readonly unsubscribe: (() => void)[];
  private ended = false;

  constructor(events: GatewayEvents) {
    this.unsubscribe = [
      events.on('request', (event) => this.publish(() => ({ ...event, time: Date.now() }))),
      events.on('connect', (event) => this.publish(() => ({ ...event, time: Date.now() }))),
      events.on('dns', (event) => this.publish(() => dnsDecision(event))),
    ];
  }

  /** Calls `listener` with every decision from now on; returns the function that stops it. */
  on<K extends keyof DecisionKinds>(kind: K, listener: (decision: DecisionKinds[K]) => void): () => void {
    const wrapped = (decision: Decision) => {
      if (kind === 'decision' || decision.kind === kind) listener(decision as DecisionKinds[K]);
    };
    this.listeners.add(wrapped);
    return () => this.listeners.delete(wrapped);
  }

  stream(options: DecisionStreamOptions = {}): DecisionStream {
    const size = options.bufferSize ?? DEFAULT_DECISION_BUFFER;
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`bufferSize must be a positive integer (got ${String(size)})`);
    const stream = new BoundedDecisionStream(size, () => this.streams.delete(stream));
    if (this.ended) stream.end();
    else this.streams.add(stream);
    return stream;
  }

  /** The gateway closed: every iterator ends once it has yielded what it holds. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    for (const stop of this.unsubscribe) stop();
    for (const stream of this.streams) stream.end();
    this.streams.clear();
    this.listeners.clear();
  }

  private publish(build: () => Decision): void {
    if (this.listeners.size === 0 && this.streams.size === 0) return;
    const decision = Object.freeze(build());
    for (const listener of this.listeners) {
      try {
        listener(decision);
      } catch (error) {
        // The event is emitted in the middle of serving a connection: a listener's bug must not
        // break that connection (nor the audit log, which gets the same event).
        process.emitWarning(`srt-gw: a decision listener threw: ${(error as Error)?.message ?? String(error)}`);
      }
    }
    for (const stream of this.streams) stream.push(decision);
  }
}

class BoundedDecisionStream implements DecisionStream {
  // A ring buffer: push and shift are O(1), memory is fixed at `capacity` slots.
  private readonly slots: (Decision | undefined)[];
  private head = 0;
  private count = 0;
  private waiting: ((result: IteratorResult<Decision, undefined>) => void) | null = null;
  private done = false;
  dropped = 0;

  constructor(
    private readonly capacity: number,
    private readonly detach: () => void,
  ) {
    this.slots = new Array<Decision | undefined>(capacity);
  }

  get buffered(): number {
    return this.count;
  }

  push(decision: Decision): void {
    if (this.done) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: decision, done: false });
      return;
    }
    if (this.count === this.capacity) {
      // Full: the oldest goes, so the consumer sees the most recent decisions when it comes back.
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      this.dropped++;
    }
    this.slots[(this.head + this.count) % this.capacity] = decision;
    this.count++;
  }

  /** No more decisions will come; what is buffered is still yielded. */
  end(): void {
    this.done = true;
    if (this.waiting && this.count === 0) {
      const resolve = this.waiting;
      this.waiting = null;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Decision, undefined>> {
    if (this.count > 0) {
      const decision = this.slots[this.head]!;
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
      this.count--;
      return Promise.resolve({ value: decision, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    if (this.waiting) return Promise.reject(new Error('decisions(): next() called again before the previous call settled'));
    return new Promise((resolve) => (this.waiting = resolve));
  }

  /** Stops this iterator (what `break` in a for await loop calls): it detaches and drops what it holds. */
  return(): Promise<IteratorResult<Decision, undefined>> {
    this.detach();
    this.slots.fill(undefined);
    this.count = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function dnsDecision(event: DnsQueryEvent): DnsLookupDecision {
  const allowed = event.decision === 'synthetic' || event.decision === 'nodata';
  return {
    kind: 'dns',
    time: Date.now(),
    host: event.name,
    decision: allowed ? 'allow' : 'deny',
    outcome: event.decision,
    rule: event.wildcard?.capped ? event.wildcard.rule : null,
    reason: event.reason ?? dnsReason(event),
    code: event.code,
    qtype: event.qtype,
    rcode: event.rcode,
    client: event.client,
    transport: event.transport,
    tunnelSignals: [...event.tunnelSignals],
  };
}

function dnsReason(event: DnsQueryEvent): string {
  switch (event.decision) {
    case 'synthetic':
      return `${event.name} may be reached; answered with a synthetic address`;
    case 'nodata':
      return `${event.name} may be reached, but ${event.qtype || 'this'} records are never answered`;
    case 'denied':
      return `no rule allows ${event.name}, so the name was not resolved`;
    case 'refused':
      return `the query was refused (${event.rcode})`;
    case 'rate-limited':
      return `too many queries from ${event.client}`;
    case 'malformed':
      return 'the packet was not a well-formed DNS query';
  }
}
