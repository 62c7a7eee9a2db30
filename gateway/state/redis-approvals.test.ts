import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { missingRedisServer, startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { approvedRuleId, UnknownHostQuestions, type SharedApprovals, type UnknownHostCallback } from '../unknown-host.js';
import { approvalField, RedisApprovals } from './redis-approvals.js';
import { connectRedisState, type SharedStateConnection } from './redis-state.js';
import { parseStateLocation } from './state-url.js';

/** One replica's questions: what its callback was asked and which rules it added. */
function replica(ask: UnknownHostCallback, shared: SharedApprovals, now: () => number = Date.now) {
  const added: string[] = [];
  const questions = new UnknownHostQuestions({ ask, timeoutMs: 5000, maxQuestions: 10, maxDeferredNames: 10, shared, sharedRecheckMs: 5000, now }, (host, port) => {
    added.push(`${host}:${port}`);
    return approvedRuleId(host, port);
  });
  return { questions, added };
}

describe('approvalField', () => {
  it('brackets IPv6 literals so the port stays unambiguous', () => {
    expect(approvalField('api.example.test', 443)).toBe('api.example.test:443');
    expect(approvalField('2001:db8::1', 443)).toBe('[2001:db8::1]:443');
  });
});

describe('shared approvals without their state', () => {
  it('a replica asks its own callback, as without --state, and its deny stands', async () => {
    const unreachable: SharedApprovals = { isApproved: async () => Promise.reject(new Error('down')), record: async () => Promise.reject(new Error('down')) };
    const ask = vi.fn(async () => false);
    const { questions, added } = replica(ask, unreachable);
    expect(await questions.ask('new.test', 443)).toEqual({ approved: false, reason: 'onUnknownHost declined it' });
    expect(ask).toHaveBeenCalledTimes(1);
    expect(added).toEqual([]);
  });
});

const skip = missingRedisServer();

describe.skipIf(skip !== null)('shared approvals on a real redis-server', () => {
  let server: RedisServer;
  let stateA: SharedStateConnection;
  let stateB: SharedStateConnection;

  beforeAll(async () => {
    server = await startRedisServer();
    stateA = await connectRedisState(parseStateLocation(`${server.url}?prefix=approvals-a`));
    stateB = await connectRedisState(parseStateLocation(`${server.url}?prefix=approvals-a`));
    const deadline = Date.now() + 15_000;
    while (!(stateA.up && stateB.up) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  });

  afterAll(async () => {
    await stateA?.close();
    await stateB?.close();
    await server?.stop();
  });

  it("an approval on one replica is an approval on the other, without asking the other's callback", async () => {
    const a = replica(async () => true, new RedisApprovals(stateA));
    const askB = vi.fn(async () => false);
    const b = replica(askB, new RedisApprovals(stateB));
    expect(await a.questions.ask('new.test', 443)).toEqual({ approved: true, ruleId: 'approved-new.test-443' });
    expect(await b.questions.ask('new.test', 443)).toEqual({ approved: true, ruleId: 'approved-new.test-443' });
    expect(askB).not.toHaveBeenCalled();
    expect(b.added).toEqual(['new.test:443']);
    // Another port is another question.
    expect((await b.questions.ask('new.test', 8443)).approved).toBe(false);
    expect(askB).toHaveBeenCalledTimes(1);
  });

  it('a replica that denied a host sees a later approval from another once its deny is a few seconds old', async () => {
    let now = 1_000_000;
    const askA = vi.fn(async () => false);
    const a = replica(askA, new RedisApprovals(stateA), () => now);
    const b = replica(async () => true, new RedisApprovals(stateB));
    expect((await a.questions.ask('later.test', 443)).approved).toBe(false);
    expect((await b.questions.ask('later.test', 443)).approved).toBe(true);
    now += 1000;
    expect((await a.questions.ask('later.test', 443)).approved).toBe(false); // its deny is still fresh
    now += 5000;
    expect(await a.questions.ask('later.test', 443)).toEqual({ approved: true, ruleId: 'approved-later.test-443' });
    expect(a.added).toEqual(['later.test:443']);
    expect(askA).toHaveBeenCalledTimes(1);
  });
});
