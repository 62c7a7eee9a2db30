// Egress budgets: how many request bytes (line, headers and body) each rule has sent, per sliding
// minute and per run, so that even an allowed channel cannot carry a bulk exfiltration. The counts
// live as long as the gateway (a run) and survive policy reloads, keyed by rule id; the limits are
// the policy's.
import { formatByteSize } from '../../policies/byte-size.js';
import type { EgressBudget } from '../../policies/types.js';

/** The per-minute window: 60 one-second buckets, so the window slides in 1-second steps. */
const WINDOW_SECONDS = 60;

/** A refusal of the shared budgets (serve --state): over the limit, or the state could not say. */
export interface BudgetRefusal {
  readonly reason: string;
  readonly code: 'budget-exceeded' | 'budget-state-unavailable';
}

export interface BudgetAccount {
  /**
   * Counts `bytes` against the rule if both limits leave room for them and returns null;
   * otherwise counts nothing and returns why (a sentence that names the rule and the limit).
   * The in-process budgets answer at once; shared ones (serve --state) answer with a promise.
   */
  tryCharge(bytes: number): string | null | Promise<BudgetRefusal | null>;
  /** Counts `bytes` unconditionally (bytes --monitor let through over the limit). */
  charge(bytes: number): void;
}

class RuleUsage {
  perRun = 0;
  private readonly bucketBytes = new Float64Array(WINDOW_SECONDS);
  private readonly bucketSecond = new Float64Array(WINDOW_SECONDS).fill(-Infinity);

  inLastMinute(second: number): number {
    let total = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      if (this.bucketSecond[i]! > second - WINDOW_SECONDS) total += this.bucketBytes[i]!;
    }
    return total;
  }

  add(second: number, bytes: number): void {
    const slot = second % WINDOW_SECONDS;
    if (this.bucketSecond[slot] !== second) {
      this.bucketSecond[slot] = second;
      this.bucketBytes[slot] = 0;
    }
    this.bucketBytes[slot] = this.bucketBytes[slot]! + bytes;
    this.perRun += bytes;
  }
}

/** The usage key of requests that no client identity covers (a jail's, or a policy without clients:). */
const NO_CLIENT = '';

export class EgressBudgets {
  /** Rule id → client id → usage; client ids are the policy's (authenticated), so the map stays small. */
  private readonly usage = new Map<string, Map<string, RuleUsage>>();

  /** `now` in milliseconds; injectable for tests. */
  constructor(private readonly now: () => number = Date.now) {}

  /**
   * The account of rule `ruleId` for client `clientId` under `budget` (the limits of the policy
   * in force): each client of a rule has its own budget, as with the shared budgets (serve --state).
   */
  account(ruleId: string, budget: EgressBudget, clientId?: string): BudgetAccount {
    let byClient = this.usage.get(ruleId);
    if (byClient === undefined) {
      byClient = new Map();
      this.usage.set(ruleId, byClient);
    }
    const client = clientId ?? NO_CLIENT;
    let usage = byClient.get(client);
    if (usage === undefined) {
      usage = new RuleUsage();
      byClient.set(client, usage);
    }
    const counted = usage;
    const second = () => Math.floor(this.now() / 1000);
    return {
      tryCharge: (bytes) => {
        // Nothing to send crosses nothing (an empty chunk of a streamed body).
        if (bytes === 0) return null;
        const now = second();
        const perRun = budget.requestBytesPerRun;
        if (perRun !== undefined && counted.perRun + bytes > perRun) {
          return refusal(ruleId, bytes, perRun, 'per run', Math.max(0, perRun - counted.perRun));
        }
        const perMinute = budget.requestBytesPerMinute;
        if (perMinute !== undefined) {
          const used = counted.inLastMinute(now);
          if (used + bytes > perMinute) return refusal(ruleId, bytes, perMinute, 'per minute', Math.max(0, perMinute - used));
        }
        counted.add(now, bytes);
        return null;
      },
      charge: (bytes) => counted.add(second(), bytes),
    };
  }

  /** Bytes rule `ruleId` has sent, all clients together, in the sliding minute (the window its per-minute limit judges) and in this run. */
  sent(ruleId: string): { lastMinute: number; perRun: number } {
    const second = Math.floor(this.now() / 1000);
    let lastMinute = 0;
    let perRun = 0;
    for (const usage of this.usage.get(ruleId)?.values() ?? []) {
      lastMinute += usage.inLastMinute(second);
      perRun += usage.perRun;
    }
    return { lastMinute, perRun };
  }
}

function refusal(ruleId: string, bytes: number, limit: number, period: string, left: number): string {
  return `rule ${ruleId} has an egress budget of ${formatByteSize(limit)} ${period} (request lines, headers and bodies); ${bytes} more bytes would exceed it (${left} left)`;
}
