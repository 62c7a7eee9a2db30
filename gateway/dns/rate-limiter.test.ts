// ClientRateLimiter: token buckets per client that refill at their rate, in a bounded client table.
import { describe, expect, it } from 'vitest';
import { ClientRateLimiter } from './rate-limiter.js';

describe('ClientRateLimiter', () => {
  it('refills at the configured rate', () => {
    let now = 0;
    const limiter = new ClientRateLimiter({ queriesPerSecond: 10, burst: 2 }, () => now);
    expect([limiter.take('a'), limiter.take('a'), limiter.take('a')]).toEqual([true, true, false]);
    now += 100; // one token
    expect([limiter.take('a'), limiter.take('a')]).toEqual([true, false]);
  });

  it('keeps its client table bounded', () => {
    let now = 0;
    const limiter = new ClientRateLimiter({ queriesPerSecond: 10, burst: 2, maxClients: 3 }, () => now);
    for (let i = 0; i < 10; i++) {
      limiter.take(`10.0.0.${i}`);
      now += 1;
    }
    expect(limiter.trackedClients).toBeLessThanOrEqual(3);
  });
});
