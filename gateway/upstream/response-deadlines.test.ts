// The upstream response limits on a fake clock. Head: sent in full and no head for the head limit.
// Body: no body byte for the body limit while the client reads. test/e2e/upstream-failures.test.ts
// runs them through a real gateway.
import { describe, expect, test } from 'vitest';
import { ResponseDeadlines, type ResponseLimits, type ResponseProgress } from './response-deadlines.js';

function setup(limits: ResponseLimits = { headMs: 2000, bodyMs: 1000 }) {
  let now = 0;
  const deadlines = new ResponseDeadlines(limits, (limit) => new Error(`${limit} timeout`), () => now);
  const advance = (ms: number) => {
    for (let t = 0; t < ms; t += deadlines.sweepIntervalMs) {
      now += deadlines.sweepIntervalMs;
      deadlines.sweep();
    }
  };
  const aborted: string[] = [];
  const watch = (sent: boolean): ResponseProgress => deadlines.watch(sent, (error) => aborted.push(error.message));
  return { deadlines, advance, watch, aborted };
}

describe('ResponseDeadlines: the response head', () => {
  test('aborts a sent request whose head has not come within the limit, and not before', () => {
    const { deadlines, advance, watch, aborted } = setup();
    watch(true);
    advance(1900);
    expect(aborted).toEqual([]);
    advance(600); // the limit plus up to two sweep intervals
    expect(aborted).toEqual(['head timeout']);
    expect(deadlines.size).toBe(0);
    deadlines.close();
  });

  test('does not time a request still being sent (a long upload); the clock starts when it is', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(false);
    advance(10_000);
    expect(aborted).toEqual([]);
    progress.sent = true;
    advance(1900);
    expect(aborted).toEqual([]);
    advance(600);
    expect(aborted).toEqual(['head timeout']);
    deadlines.close();
  });

  test('a head that comes while the request body is still being sent starts the body limit', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(false);
    progress.headReceived = true; // an early answer, the upload still going on
    advance(900);
    expect(aborted).toEqual([]);
    advance(400);
    expect(aborted).toEqual(['body timeout']);
    deadlines.close();
  });

  test('a head that arrives in time switches to the body limit', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(true);
    advance(1500);
    progress.headReceived = true;
    advance(900);
    expect(aborted).toEqual([]);
    advance(400);
    expect(aborted).toEqual(['body timeout']);
    deadlines.close();
  });
});

describe('ResponseDeadlines: the body', () => {
  test('a body that keeps arriving, however slowly in total, is never cut', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(true);
    progress.headReceived = true;
    for (let i = 0; i < 50; i++) {
      progress.bytes += 10;
      advance(700);
    }
    expect(aborted).toEqual([]);
    deadlines.close();
  });

  test('a body that stops is aborted after the body limit', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(true);
    progress.headReceived = true;
    progress.bytes = 1000;
    advance(900);
    expect(aborted).toEqual([]);
    advance(400);
    expect(aborted).toEqual(['body timeout']);
    deadlines.close();
  });

  test('a response paused because the client stopped reading is not timed, and restarts the clock when resumed', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(true);
    progress.headReceived = true;
    progress.bytes = 64 * 1024;
    progress.paused = true;
    advance(60_000);
    expect(aborted).toEqual([]);
    progress.paused = false;
    advance(900);
    expect(aborted).toEqual([]);
    advance(400);
    expect(aborted).toEqual(['body timeout']);
    deadlines.close();
  });
});

describe('ResponseDeadlines: bookkeeping', () => {
  test('a finished exchange is forgotten and never aborted', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const progress = watch(true);
    deadlines.done(progress);
    expect(deadlines.size).toBe(0);
    advance(10_000);
    expect(aborted).toEqual([]);
    deadlines.close();
  });

  test('finishing responses first, last and in the middle leaves the others timed; done twice is harmless', () => {
    const { deadlines, advance, watch, aborted } = setup();
    const responses = [0, 1, 2, 3, 4].map(() => watch(true));
    for (const index of [4, 2, 0]) deadlines.done(responses[index]!);
    deadlines.done(responses[2]!);
    expect(deadlines.size).toBe(2);
    responses[3]!.headReceived = true; // now on the (shorter) body limit
    advance(1400);
    expect(aborted).toEqual(['body timeout']);
    advance(1200);
    expect(aborted).toEqual(['body timeout', 'head timeout']);
    expect(deadlines.size).toBe(0);
    deadlines.close();
  });

  test('0 and Infinity mean no limit; with neither limit nothing is even watched', () => {
    const headOnly = setup({ headMs: 1000, bodyMs: 0 });
    const progress = headOnly.watch(true);
    progress.headReceived = true;
    headOnly.advance(60_000);
    expect(headOnly.aborted).toEqual([]);
    headOnly.deadlines.close();

    const none = setup({ headMs: Number.POSITIVE_INFINITY, bodyMs: 0 });
    none.watch(true);
    expect(none.deadlines.size).toBe(0);
    none.deadlines.close();
  });

  test('sweeps at a tenth of the shorter limit, between 100 ms and 1 s', () => {
    expect(setup({ headMs: 60_000, bodyMs: 300_000 }).deadlines.sweepIntervalMs).toBe(1000);
    expect(setup({ headMs: 2000, bodyMs: 5000 }).deadlines.sweepIntervalMs).toBe(200);
    expect(setup({ headMs: 300, bodyMs: 300 }).deadlines.sweepIntervalMs).toBe(100);
  });
});
