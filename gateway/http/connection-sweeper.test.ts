// The sweep's rules on a fake clock. Idle: no byte moved for the idle limit, whatever the
// connection is doing. Keep-alive: last response written and no byte moved for the keep-alive
// limit. test/e2e/connection-limits.test.ts runs them on real connections.
import { EventEmitter } from 'node:events';
import { describe, expect, test } from 'vitest';
import { ConnectionSweeper, type SweepLimits } from './connection-sweeper.js';

class FakeSocket extends EventEmitter {
  bytesRead = 0;
  bytesWritten = 0;
  destroyed = false;
  destroy(): this {
    this.destroyed = true;
    this.emit('close');
    return this;
  }
}

function setup(limits: SweepLimits = { idleMs: 5000, keepAliveMs: 1000 }) {
  let now = 0;
  // The test runs every sweep itself: the clock's timer does nothing.
  const sweeper = new ConnectionSweeper(limits, { now: () => now, every: () => () => undefined });
  const advance = (ms: number) => {
    for (let t = 0; t < ms; t += sweeper.sweepIntervalMs) {
      now += sweeper.sweepIntervalMs;
      sweeper.sweep();
    }
  };
  return { sweeper, advance };
}

const finished = { writableFinished: true };

describe('ConnectionSweeper: keep-alive', () => {
  test('closes a connection whose last response is written once nothing has moved for the limit', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    sweeper.track(socket);
    sweeper.noteRequest(socket, finished);
    advance(900);
    expect(socket.destroyed).toBe(false);
    advance(200);
    expect(socket.destroyed).toBe(true);
    expect(sweeper.size).toBe(0);
    sweeper.close();
  });

  test('bytes moving (a next request head arriving slowly) count as activity', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    sweeper.track(socket);
    sweeper.noteRequest(socket, finished);
    for (let i = 0; i < 30; i++) {
      socket.bytesRead += 1;
      advance(200);
    }
    expect(socket.destroyed).toBe(false);
    advance(1100);
    expect(socket.destroyed).toBe(true);
    sweeper.close();
  });

  test('a response still being written is not waiting for a request: only the idle limit applies', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    sweeper.track(socket);
    const response = { writableFinished: false };
    sweeper.noteRequest(socket, response);
    for (let i = 0; i < 20; i++) {
      socket.bytesWritten += 100; // the response trickles out
      advance(500);
    }
    expect(socket.destroyed).toBe(false);
    response.writableFinished = true;
    advance(900);
    expect(socket.destroyed).toBe(false);
    advance(200);
    expect(socket.destroyed).toBe(true);
    sweeper.close();
  });

  test('only the latest response counts: a later request restarts the watch', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    sweeper.track(socket);
    sweeper.noteRequest(socket, finished);
    advance(800);
    sweeper.noteRequest(socket, { writableFinished: false });
    advance(2000);
    expect(socket.destroyed).toBe(false);
    sweeper.close();
  });

  test('a connection that has had no request yet (an HTTP/2 session, a fresh connection) is not under it', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    sweeper.track(socket);
    advance(4000);
    expect(socket.destroyed).toBe(false);
    sweeper.close();
  });
});

describe('ConnectionSweeper: idle', () => {
  test('closes any connection, busy or not, once no byte has moved for the idle limit', () => {
    const { sweeper, advance } = setup();
    const waiting = new FakeSocket(); // a request waiting for a stalled upstream
    const session = new FakeSocket(); // an HTTP/2 session
    sweeper.track(waiting);
    sweeper.track(session);
    sweeper.noteRequest(waiting, { writableFinished: false });
    advance(4800);
    expect(waiting.destroyed || session.destroyed).toBe(false);
    advance(400);
    expect(waiting.destroyed && session.destroyed).toBe(true);
    sweeper.close();
  });

  test('traffic keeps a connection open past the idle limit', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    sweeper.track(socket);
    for (let i = 0; i < 10; i++) {
      socket.bytesRead += 10;
      advance(2000);
    }
    expect(socket.destroyed).toBe(false);
    sweeper.close();
  });
});

describe('ConnectionSweeper', () => {
  test('a closed connection is dropped; a forgotten (upgraded) one is never closed and keeps no listener', () => {
    const { sweeper, advance } = setup();
    const closed = new FakeSocket();
    const upgraded = new FakeSocket();
    sweeper.track(closed);
    sweeper.track(upgraded);
    sweeper.noteRequest(upgraded, finished);
    expect(sweeper.size).toBe(2);
    closed.emit('close');
    expect(sweeper.size).toBe(1);
    sweeper.forget(upgraded);
    expect(upgraded.listenerCount('close')).toBe(0);
    advance(20_000);
    expect(upgraded.destroyed).toBe(false);
    expect(sweeper.size).toBe(0);
    sweeper.close();
  });

  test("a limit of 0 or Infinity turns that rule off, as node's timeouts of 0 do", () => {
    for (const off of [0, Number.POSITIVE_INFINITY]) {
      const { sweeper, advance } = setup({ idleMs: off, keepAliveMs: 1000 });
      const socket = new FakeSocket();
      sweeper.track(socket);
      advance(60_000);
      expect(socket.destroyed).toBe(false); // no request yet: only idle could close it, and it is off
      sweeper.noteRequest(socket, finished);
      advance(1100);
      expect(socket.destroyed).toBe(true);
      sweeper.close();
    }
    const { sweeper, advance } = setup({ idleMs: 0, keepAliveMs: 0 });
    const socket = new FakeSocket();
    sweeper.track(socket);
    sweeper.noteRequest(socket, finished);
    expect(sweeper.size).toBe(0);
    advance(60_000);
    expect(socket.destroyed).toBe(false);
    sweeper.close();
  });

  test("the clock's timer runs while connections are watched, at the sweep interval, and stops when none are", () => {
    const timers: { intervalMs: number; sweep: () => void; stopped: boolean }[] = [];
    const sweeper = new ConnectionSweeper(
      { idleMs: 5000, keepAliveMs: 1000 },
      {
        now: () => 0,
        every(intervalMs, sweep) {
          const timer = { intervalMs, sweep, stopped: false };
          timers.push(timer);
          return () => (timer.stopped = true);
        },
      },
    );
    expect(timers).toHaveLength(0);
    const first = new FakeSocket();
    const second = new FakeSocket();
    sweeper.track(first);
    sweeper.track(second);
    expect(timers).toEqual([expect.objectContaining({ intervalMs: 100, stopped: false })]);
    first.destroy();
    second.destroy();
    timers[0]!.sweep();
    expect(timers[0]!.stopped).toBe(true);
    sweeper.track(new FakeSocket());
    expect(timers).toHaveLength(2);
    sweeper.close();
    expect(timers[1]!.stopped).toBe(true);
  });

  test('the sweep interval is a tenth of the shorter limit, between 100 ms and 1 s', () => {
    expect(new ConnectionSweeper({ idleMs: 120_000, keepAliveMs: 30_000 }).sweepIntervalMs).toBe(1000);
    expect(new ConnectionSweeper({ idleMs: 120_000, keepAliveMs: 5_000 }).sweepIntervalMs).toBe(500);
    expect(new ConnectionSweeper({ idleMs: 3_000, keepAliveMs: 0 }).sweepIntervalMs).toBe(300);
    expect(new ConnectionSweeper({ idleMs: 200, keepAliveMs: 30_000 }).sweepIntervalMs).toBe(100);
  });
});
