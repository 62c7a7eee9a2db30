import { describe, expect, it, vi } from 'vitest';
import { compilePolicy } from '../policies/match.js';
import type { Policy } from '../policies/types.js';
import { approvedRuleId, isUnknownHost, UnknownHostQuestions, type UnknownHostCallback } from './unknown-host.js';

const POLICY: Policy = {
  version: 1,
  rules: [
    { id: 'api', host: 'api.example.test', methods: ['GET'], action: 'allow', protocol: 'http' },
    { id: 'web-443', host: 'web.example.test', port: 443, action: 'allow', protocol: 'http' },
    { id: 'blocked', host: 'blocked.example.test', action: 'deny', protocol: 'http' },
    { id: 'no-admin', host: 'admin.example.test', paths: ['/admin/**'], action: 'deny', protocol: 'http' },
    { id: 'ssh', host: 'git.example.test', port: 22, action: 'allow', protocol: 'tcp' },
    { id: 'no-ssh', host: 'vault.example.test', port: 22, action: 'deny', protocol: 'tcp' },
  ],
};

describe('isUnknownHost: only hosts no rule has a say about are asked about', () => {
  const policy = compilePolicy(POLICY);
  it.each([
    ['a host no rule names', 'new.example.test', 443, true],
    ['an IP literal no rule names', '203.0.113.9', 443, true],
    ['a host an allow rule names', 'api.example.test', 443, false],
    ['a host an allow rule names for another port only', 'web.example.test', 8443, true],
    ['a host a deny rule covers whole', 'blocked.example.test', 443, false],
    ['a host a deny rule covers for some paths only', 'admin.example.test', 443, true],
    ['a host a tcp rule allows on that port', 'git.example.test', 22, false],
    ['a host a tcp rule denies on that port', 'vault.example.test', 22, false],
  ])('%s', (_name, host, port, unknown) => {
    expect(isUnknownHost(policy, host, port)).toBe(unknown);
  });
});

describe('approvedRuleId', () => {
  it('names host and port in rule-id characters', () => {
    expect(approvedRuleId('api.example.test', 443)).toBe('approved-api.example.test-443');
    expect(approvedRuleId('::1', 8080)).toBe('approved-__1-8080');
  });
});

function questions(ask: UnknownHostCallback, overrides: { timeoutMs?: number; maxQuestions?: number; maxDeferredNames?: number } = {}) {
  const approved: string[] = [];
  const q = new UnknownHostQuestions(
    { ask, timeoutMs: overrides.timeoutMs ?? 5_000, maxQuestions: overrides.maxQuestions ?? 10, maxDeferredNames: overrides.maxDeferredNames ?? 10 },
    (host, port) => {
      approved.push(`${host}:${port}`);
      return approvedRuleId(host, port);
    },
  );
  return { q, approved };
}

describe('UnknownHostQuestions', () => {
  it('approves: the rule is added once and the answer is kept for that host:port', async () => {
    const ask = vi.fn(async () => true);
    const { q, approved } = questions(ask);
    expect(await q.ask('new.test', 443)).toEqual({ approved: true, ruleId: 'approved-new.test-443' });
    expect(await q.ask('new.test', 443)).toEqual({ approved: true, ruleId: 'approved-new.test-443' });
    expect(ask).toHaveBeenCalledTimes(1);
    expect(approved).toEqual(['new.test:443']);
  });

  it('asks again for another port of the same host', async () => {
    const ask = vi.fn(async (_host: string, port: number) => port === 443);
    const { q } = questions(ask);
    expect((await q.ask('new.test', 443)).approved).toBe(true);
    expect(await q.ask('new.test', 80)).toEqual({ approved: false, reason: 'onUnknownHost declined it' });
    expect(ask.mock.calls).toEqual([
      ['new.test', 443],
      ['new.test', 80],
    ]);
  });

  it('concurrent asks for one host:port share one question', async () => {
    let answer!: (value: boolean) => void;
    const ask = vi.fn(() => new Promise<boolean>((resolve) => (answer = resolve)));
    const { q } = questions(ask);
    const all = Promise.all([q.ask('new.test', 443), q.ask('new.test', 443), q.ask('new.test', 443)]);
    await Promise.resolve();
    await Promise.resolve();
    answer(true);
    expect((await all).map((a) => a.approved)).toEqual([true, true, true]);
    expect(ask).toHaveBeenCalledTimes(1);
  });

  it('a declined host is not asked about again', async () => {
    const ask = vi.fn(() => false);
    const { q, approved } = questions(ask);
    expect(await q.ask('evil.test', 443)).toEqual({ approved: false, reason: 'onUnknownHost declined it' });
    expect(await q.ask('evil.test', 443)).toEqual({ approved: false, reason: 'onUnknownHost declined it' });
    expect(ask).toHaveBeenCalledTimes(1);
    expect(approved).toEqual([]);
  });

  it('only true approves: a truthy non-boolean is a deny', async () => {
    const { q } = questions((() => 'yes') as unknown as UnknownHostCallback);
    expect((await q.ask('evil.test', 443)).approved).toBe(false);
  });

  it('no answer in time is a deny, and a late yes does not approve', async () => {
    let answer!: (value: boolean) => void;
    const { q, approved } = questions(() => new Promise<boolean>((resolve) => (answer = resolve)), { timeoutMs: 50 });
    expect(await q.ask('slow.test', 443)).toEqual({ approved: false, reason: 'onUnknownHost gave no answer within 0.05 s' });
    answer(true);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(approved).toEqual([]);
    expect((await q.ask('slow.test', 443)).approved).toBe(false);
  });

  it('a callback that throws or rejects denies, without repeating its message', async () => {
    const { q } = questions(() => {
      throw new Error('secret detail');
    });
    expect(await q.ask('a.test', 443)).toEqual({ approved: false, reason: 'onUnknownHost failed' });
    const { q: q2 } = questions(() => Promise.reject(new Error('secret detail')));
    expect(await q2.ask('a.test', 443)).toEqual({ approved: false, reason: 'onUnknownHost failed' });
  });

  it('asks about at most maxQuestions host:ports; beyond, unknown hosts are denied unasked', async () => {
    const ask = vi.fn(() => false);
    const { q } = questions(ask, { maxQuestions: 2 });
    await q.ask('a.test', 443);
    await q.ask('b.test', 443);
    expect((await q.ask('c.test', 443)).approved).toBe(false);
    expect(ask).toHaveBeenCalledTimes(2);
  });

  it('closing answers pending questions with a deny', async () => {
    const { q } = questions(() => new Promise<boolean>(() => undefined));
    const pending = q.ask('a.test', 443);
    q.close();
    expect(await pending).toEqual({ approved: false, reason: 'the gateway is closing' });
    expect(await q.ask('b.test', 443)).toEqual({ approved: false, reason: 'the gateway is closing' });
  });

  it('lets the resolver answer a bounded number of distinct unknown names', () => {
    const { q } = questions(() => true, { maxDeferredNames: 2 });
    expect(q.mayDeferName('a.test')).toBe(true);
    expect(q.mayDeferName('b.test')).toBe(true);
    expect(q.mayDeferName('a.test')).toBe(true);
    expect(q.mayDeferName('c.test')).toBe(false);
  });
});
