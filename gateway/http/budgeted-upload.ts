// What the client sends upstream (a request body, WebSocket frames), counted as it streams and
// charged to its rule's egress budget when the rule has one.
import { Transform, type TransformCallback } from 'node:stream';
import type { ReasonCode } from '../../reason-codes.js';
import type { BudgetAccount, BudgetRefusal } from '../credentials/egress-budget.js';
import type { RequestEvent, RequestStep } from '../audit/events.js';
import { UPSTREAM_SOCKET_HIGH_WATER_MARK } from '../upstream/upstream-client.js';

/** The error a request body stream ends with when it crosses its rule's budget. */
class BudgetExceeded extends Error {}

/**
 * What the client sends upstream (a request body, WebSocket frames), counted and charged to the
 * rule's budget when it has one. The chunk that would cross the budget is never passed on: the
 * stream errors with BudgetExceeded after `onRefused`; in --monitor mode it is passed on and the
 * event marked as a would-deny.
 */
export class BudgetedUpload extends Transform {
  bytes = 0;

  constructor(
    private readonly account: BudgetAccount | null,
    private readonly monitor: boolean,
    private readonly event: RequestEvent,
    private readonly onRefused: (refusal: string, code: BudgetRefusal['code']) => void,
  ) {
    // A 16 KiB chunk (one TLS record) into a 16 KiB buffer reports "full" on every write, and the
    // client's socket was paused and resumed for each chunk; 64 KiB lets a few through.
    super({ highWaterMark: UPSTREAM_SOCKET_HIGH_WATER_MARK });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.account === null) {
      this.pass(chunk, callback);
      return;
    }
    const judged = this.account.tryCharge(chunk.length);
    if (judged === null) this.pass(chunk, callback);
    else if (typeof judged === 'string') this.judged(chunk, { reason: judged, code: 'budget-exceeded' }, callback);
    // The shared budgets (serve --state) answer later; the stream waits for them (backpressure).
    else judged.then((refusal) => (refusal === null ? this.pass(chunk, callback) : this.judged(chunk, refusal, callback)), (error: unknown) => callback(error as Error));
  }

  private judged(chunk: Buffer, refusal: BudgetRefusal, callback: TransformCallback): void {
    if (!this.monitor) {
      this.onRefused(refusal.reason, refusal.code);
      callback(new BudgetExceeded(refusal.reason));
      return;
    }
    this.account!.charge(chunk.length);
    if (!this.event.monitored) markMonitored(this.event, { step: 'budget', reason: refusal.reason, code: refusal.code });
    this.pass(chunk, callback);
  }

  private pass(chunk: Buffer, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** Records a denial that --monitor let through: the decision is deny, the exchange went on. */
export function markMonitored(event: RequestEvent, denial: { step: RequestStep; reason: string; code: ReasonCode }): void {
  event.decision = 'deny';
  event.monitored = true;
  event.step = denial.step;
  event.reason = denial.reason;
  event.code = denial.code;
}

