// Egress budgets shared by every replica of `serve --state`: one count per rule and client, kept
// in the state server and charged by one Lua script (read, judge, add, expire in one atomic step,
// so two replicas never both spend the last bytes). The window is the in-process one: 60
// one-second buckets, sliding in 1-second steps, judged by the gateway's clock (replicas' clocks
// must agree to within a second or so). When the state cannot answer, the request is refused
// (fail closed): 429 with code budget-state-unavailable.
import type { EgressBudget } from '../../policies/types.js';
import { EgressBudgets, type BudgetAccount, type BudgetRefusal } from '../credentials/egress-budget.js';
import { formatByteSize } from '../../policies/byte-size.js';
import type { SharedStateConnection } from './redis-state.js';

export const BUDGET_WINDOW_SECONDS = 60;
/** The minute buckets outlive their window by a second, then expire on their own. */
const MINUTE_KEY_TTL_MS = (BUDGET_WINDOW_SECONDS + 1) * 1000;

/** A client id stands for no authenticated client. */
export const NO_CLIENT_ID = '-';

/**
 * The keys of one rule's and client's counts. Both carry the same hash tag ({…}), so a Redis
 * Cluster keeps them in one slot and the script may touch both. Ids are percent-encoded: a rule
 * or client id with ":" or "}" cannot run into another's keys.
 */
export function budgetKeys(prefix: string, ruleId: string, clientId: string): { perRun: string; perMinute: string } {
  const tag = `{${encodeURIComponent(ruleId)}|${encodeURIComponent(clientId)}}`;
  return { perRun: `${prefix}:budget:${tag}:run`, perMinute: `${prefix}:budget:${tag}:minute` };
}

/** The second a byte counted at `nowMs` belongs to, and the oldest second still in its window. */
export function budgetWindow(nowMs: number): { second: number; oldestCounted: number } {
  const second = Math.floor(nowMs / 1000);
  return { second, oldestCounted: second - BUDGET_WINDOW_SECONDS + 1 };
}

// KEYS: per-run counter, per-minute hash (second → bytes).
// ARGV: bytes, second, oldest counted second, per-run limit (-1: none), per-minute limit (-1:
// none), 1 = charge even over the limit (--monitor), minute TTL ms.
// Returns { verdict, left }: 0 = charged, 1 = over the per-run limit, 2 = over the per-minute limit.
export const CHARGE_SCRIPT = `
local bytes = tonumber(ARGV[1])
local second = ARGV[2]
local oldest = tonumber(ARGV[3])
local perRun = tonumber(ARGV[4])
local perMinute = tonumber(ARGV[5])
local force = ARGV[6] == '1'
local run = tonumber(redis.call('GET', KEYS[1]) or '0')
local used = 0
local buckets = redis.call('HGETALL', KEYS[2])
for i = 1, #buckets, 2 do
  if tonumber(buckets[i]) >= oldest then
    used = used + tonumber(buckets[i + 1])
  else
    redis.call('HDEL', KEYS[2], buckets[i])
  end
end
if not force then
  if perRun >= 0 and run + bytes > perRun then return {1, perRun - run} end
  if perMinute >= 0 and used + bytes > perMinute then return {2, perMinute - used} end
end
redis.call('INCRBY', KEYS[1], bytes)
redis.call('HINCRBY', KEYS[2], second, bytes)
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {0, 0}
`;

export class SharedEgressBudgets extends EgressBudgets {
  /** `now` in milliseconds; injectable for tests. */
  constructor(
    private readonly state: SharedStateConnection,
    private readonly clock: () => number = Date.now,
  ) {
    super(clock);
  }

  /** The account of rule `ruleId` for `clientId`, counted in the shared state. */
  override account(ruleId: string, budget: EgressBudget, clientId: string = NO_CLIENT_ID): BudgetAccount {
    // This replica's share, for the srtgw_budget_used_bytes gauge.
    const local = super.account(ruleId, budget);
    const keys = budgetKeys(this.state.keyPrefix, ruleId, clientId);
    const run = (bytes: number, force: boolean) => {
      const window = budgetWindow(this.clock());
      return this.state.command([
        'EVAL',
        CHARGE_SCRIPT,
        '2',
        keys.perRun,
        keys.perMinute,
        String(bytes),
        String(window.second),
        String(window.oldestCounted),
        String(budget.requestBytesPerRun ?? -1),
        String(budget.requestBytesPerMinute ?? -1),
        force ? '1' : '0',
        String(MINUTE_KEY_TTL_MS),
      ]);
    };
    return {
      tryCharge: async (bytes): Promise<BudgetRefusal | null> => {
        if (bytes === 0) return null;
        let reply;
        try {
          reply = await run(bytes, false);
        } catch (error) {
          return { code: 'budget-state-unavailable', reason: `rule ${ruleId} has an egress budget, and the shared budget state cannot be reached to count this request: ${(error as Error).message}` };
        }
        const [verdict, left] = Array.isArray(reply) ? reply.map(Number) : [NaN, 0];
        if (verdict === 0) {
          local.charge(bytes);
          return null;
        }
        if (verdict === 1) return { code: 'budget-exceeded', reason: sharedRefusal(ruleId, bytes, budget.requestBytesPerRun!, 'per run (shared by all replicas)', left!) };
        if (verdict === 2) return { code: 'budget-exceeded', reason: sharedRefusal(ruleId, bytes, budget.requestBytesPerMinute!, 'per minute (shared by all replicas)', left!) };
        return { code: 'budget-state-unavailable', reason: `rule ${ruleId} has an egress budget, and the shared budget state answered ${JSON.stringify(reply)}` };
      },
      charge: (bytes) => {
        local.charge(bytes);
        // --monitor only: what went over is counted when the state can count it; nothing waits.
        run(bytes, true).catch(() => undefined);
      },
    };
  }
}

function sharedRefusal(ruleId: string, bytes: number, limit: number, period: string, left: number): string {
  return `rule ${ruleId} has an egress budget of ${formatByteSize(limit)} ${period} (request lines, headers and bodies); ${bytes} more bytes would exceed it (${Math.max(0, left)} left)`;
}
