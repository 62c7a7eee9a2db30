// Budget accounting: per run and per sliding minute, with a clock the test moves.
import { describe, expect, test } from 'vitest';
import { EgressBudgets } from './egress-budget.js';

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

describe('EgressBudgets', () => {
  test('per run: bytes up to the limit pass, the chunk that would cross it is refused and not counted', () => {
    const budgets = new EgressBudgets();
    const account = budgets.account('uploads', { requestBytesPerRun: 1000 });
    expect(account.tryCharge(600)).toBeNull();
    expect(account.tryCharge(400)).toBeNull();
    const refusal = account.tryCharge(1);
    expect(refusal).toContain('rule uploads');
    expect(refusal).toContain('1000 bytes per run (request lines, headers and bodies)');
    expect(refusal).toContain('(0 left)');
    expect(budgets.sent('uploads').perRun).toBe(1000);
  });

  test('each client of a rule has its own budget; sent() adds them up', () => {
    const budgets = new EgressBudgets();
    const budget = { requestBytesPerRun: 100 };
    expect(budgets.account('api', budget, 'ci').tryCharge(100)).toBeNull();
    expect(budgets.account('api', budget, 'ci').tryCharge(1)).toContain('(0 left)');
    expect(budgets.account('api', budget, 'builders').tryCharge(100)).toBeNull();
    expect(budgets.account('api', budget).tryCharge(100)).toBeNull();
    expect(budgets.sent('api').perRun).toBe(300);
  });

  test('per run: a body larger than what is left is refused whole, and what is left stays usable', () => {
    const budgets = new EgressBudgets();
    const account = budgets.account('uploads', { requestBytesPerRun: 1024 });
    expect(account.tryCharge(1000)).toBeNull();
    expect(account.tryCharge(100)).toContain('(24 left)');
    expect(account.tryCharge(24)).toBeNull();
  });

  test('per minute: the window slides — bytes sent 60 s ago no longer count', () => {
    const time = clock();
    const budgets = new EgressBudgets(time.now);
    const account = budgets.account('api', { requestBytesPerMinute: 100 });
    expect(account.tryCharge(60)).toBeNull();
    time.advance(30_000);
    expect(account.tryCharge(40)).toBeNull();
    expect(account.tryCharge(1)).toContain('per minute');
    time.advance(30_000); // the first 60 bytes are now 60 s old
    expect(account.tryCharge(60)).toBeNull();
    expect(account.tryCharge(1)).toContain('per minute');
    time.advance(30_000);
    expect(account.tryCharge(40)).toBeNull();
  });

  test('per minute and per run together: the tighter one refuses', () => {
    const time = clock();
    const budgets = new EgressBudgets(time.now);
    const account = budgets.account('api', { requestBytesPerMinute: 100, requestBytesPerRun: 150 });
    expect(account.tryCharge(100)).toBeNull();
    expect(account.tryCharge(1)).toContain('per minute');
    time.advance(61_000);
    expect(account.tryCharge(60)).toContain('per run');
    expect(account.tryCharge(50)).toBeNull();
  });

  test('charge() counts unconditionally (what --monitor let through)', () => {
    const budgets = new EgressBudgets();
    const account = budgets.account('api', { requestBytesPerRun: 10 });
    account.charge(25);
    expect(budgets.sent('api').perRun).toBe(25);
    expect(account.tryCharge(0)).toBeNull();
    expect(account.tryCharge(1)).not.toBeNull();
  });

  test('counts are per rule id and survive a new account for the same rule (a reload)', () => {
    const budgets = new EgressBudgets();
    expect(budgets.account('a', { requestBytesPerRun: 10 }).tryCharge(10)).toBeNull();
    expect(budgets.account('b', { requestBytesPerRun: 10 }).tryCharge(10)).toBeNull();
    expect(budgets.account('a', { requestBytesPerRun: 15 }).tryCharge(6)).not.toBeNull();
    expect(budgets.account('a', { requestBytesPerRun: 15 }).tryCharge(5)).toBeNull();
  });
});
