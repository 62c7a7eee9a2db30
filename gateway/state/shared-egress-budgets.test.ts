import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingRedisServer, startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { connectRedisState, StateUnavailableError, type SharedStateConnection, type StateReply } from './redis-state.js';
import { budgetKeys, budgetWindow, SharedEgressBudgets } from './shared-egress-budgets.js';
import { parseStateLocation } from './state-url.js';

describe('budgetKeys', () => {
  it('keys each rule and client apart, under one hash tag per pair', () => {
    expect(budgetKeys('srtgw', 'api', '-')).toEqual({ perRun: 'srtgw:budget:{api|-}:run', perMinute: 'srtgw:budget:{api|-}:minute' });
    expect(budgetKeys('fleet-a', 'api', 'ci-bot').perRun).toBe('fleet-a:budget:{api|ci-bot}:run');
  });

  it('encodes ids, so a rule id with "|" or "}" cannot collide with another rule and client', () => {
    const tricky = budgetKeys('srtgw', 'a|b', 'c');
    const other = budgetKeys('srtgw', 'a', 'b|c');
    expect(tricky.perRun).not.toBe(other.perRun);
    expect(budgetKeys('srtgw', 'x}y', '-').perRun).toBe('srtgw:budget:{x%7Dy|-}:run');
  });
});

describe('budgetWindow', () => {
  it('counts the current second and the 59 before it', () => {
    expect(budgetWindow(120_999)).toEqual({ second: 120, oldestCounted: 61 });
    expect(budgetWindow(121_000)).toEqual({ second: 121, oldestCounted: 62 });
  });
});

/** A connection whose server is gone: every command fails as the real one does. */
function unreachableState(): SharedStateConnection {
  return {
    keyPrefix: 'srtgw',
    up: false,
    errors: 0,
    command: async (_args: readonly string[]): Promise<StateReply> => {
      throw new StateUnavailableError('the shared state at redis://127.0.0.1:1 is not connected');
    },
    onStatusChange: () => () => undefined,
    close: async () => undefined,
  };
}

describe('SharedEgressBudgets without its state', () => {
  it('refuses (fail closed) with budget-state-unavailable, naming the rule', async () => {
    const budgets = new SharedEgressBudgets(unreachableState());
    const refusal = await budgets.account('api', { requestBytesPerRun: 1000 }).tryCharge(10);
    expect(refusal).toMatchObject({ code: 'budget-state-unavailable' });
    expect((refusal as { reason: string }).reason).toContain('rule api');
  });
});

const skipRedis = missingRedisServer();

describe.skipIf(skipRedis !== null)('SharedEgressBudgets on a real redis-server', () => {
  let server: RedisServer;
  let state: SharedStateConnection;
  let other: SharedStateConnection;
  let prefix = 0;

  beforeAll(async () => {
    server = await startRedisServer();
    state = await connectRedisState(parseStateLocation(server.url));
    other = await connectRedisState(parseStateLocation(server.url));
    await waitUp(state);
    await waitUp(other);
  });

  afterAll(async () => {
    await state?.close();
    await other?.close();
    await server?.stop();
  });

  /** Two replicas' budgets on one server, under a key prefix of their own per test, with one injected clock. */
  function replicas(clock: () => number): [SharedEgressBudgets, SharedEgressBudgets] {
    prefix++;
    const scoped = (connection: SharedStateConnection): SharedStateConnection => ({
      keyPrefix: `t${prefix}`,
      get up() {
        return connection.up;
      },
      get errors() {
        return connection.errors;
      },
      command: (args) => connection.command(args),
      onStatusChange: (listener) => connection.onStatusChange(listener),
      close: async () => undefined,
    });
    return [new SharedEgressBudgets(scoped(state), clock), new SharedEgressBudgets(scoped(other), clock)];
  }

  it('a per-run budget is one count for both replicas: the charge that would cross it is refused on either', async () => {
    const [a, b] = replicas(() => 1_000_000);
    const budget = { requestBytesPerRun: 250 };
    expect(await a.account('api', budget).tryCharge(100)).toBeNull();
    expect(await b.account('api', budget).tryCharge(100)).toBeNull();
    const refusal = await a.account('api', budget).tryCharge(100);
    expect(refusal).toMatchObject({ code: 'budget-exceeded' });
    expect((refusal as { reason: string }).reason).toContain('(50 left)');
    expect(await b.account('api', budget).tryCharge(51)).toMatchObject({ code: 'budget-exceeded' });
    expect(await b.account('api', budget).tryCharge(50)).toBeNull();
  });

  it('rules and clients have counts of their own', async () => {
    const [a, b] = replicas(() => 1_000_000);
    const budget = { requestBytesPerRun: 100 };
    expect(await a.account('api', budget, 'alice').tryCharge(100)).toBeNull();
    expect(await b.account('api', budget, 'bob').tryCharge(100)).toBeNull();
    expect(await b.account('other', budget, 'alice').tryCharge(100)).toBeNull();
    expect(await b.account('api', budget, 'alice').tryCharge(1)).toMatchObject({ code: 'budget-exceeded' });
  });

  it('the per-minute window slides in 1-second steps by the injected clock, as in one process', async () => {
    let now = 5_000_000;
    const [a, b] = replicas(() => now);
    const budget = { requestBytesPerMinute: 100 };
    expect(await a.account('api', budget).tryCharge(60)).toBeNull(); // second 5000
    now += 30_000;
    expect(await b.account('api', budget).tryCharge(40)).toBeNull(); // second 5030
    expect(await a.account('api', budget).tryCharge(1)).toMatchObject({ code: 'budget-exceeded' });
    now = 5_059_999; // second 5059: 5000 is still in the window
    expect(await b.account('api', budget).tryCharge(1)).toMatchObject({ code: 'budget-exceeded' });
    now = 5_060_000; // second 5060: 5000 has left it, 60 bytes are free again
    expect(await b.account('api', budget).tryCharge(60)).toBeNull();
    expect(await a.account('api', budget).tryCharge(1)).toMatchObject({ code: 'budget-exceeded' });
  });

  it('charge() counts what --monitor let through, over the limit', async () => {
    const [a, b] = replicas(() => 1_000_000);
    const budget = { requestBytesPerRun: 100 };
    a.account('api', budget).charge(150);
    await waitFor(async () => (await b.account('api', budget).tryCharge(1)) !== null);
    expect(b.sent('api').perRun).toBe(0); // this replica's share: it sent nothing
    expect(a.sent('api').perRun).toBe(150);
  });
});

async function waitUp(connection: SharedStateConnection): Promise<void> {
  await waitFor(async () => connection.up);
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
