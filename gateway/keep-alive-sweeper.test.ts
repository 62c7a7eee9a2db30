// The sweep's rules on a fake clock: idle means "last response written and no byte moved"; the
// limit counts from the last sweep that saw activity. test/e2e/keep-alive.test.ts runs it for real.
import { EventEmitter } from 'node:events';
import { describe, expect, test } from 'vitest';
import { KeepAliveSweeper } from './keep-alive-sweeper.js';

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

function setup(limitMs = 1000) {
  let now = 0;
  const sweeper = new KeepAliveSweeper(limitMs, () => now);
  const advance = (ms: number) => {
    for (let t = 0; t < ms; t += sweeper.sweepIntervalMs) {
      now += sweeper.sweepIntervalMs;
      sweeper.sweep();
    }
  };
  return { sweeper, advance };
}

const finished = { writableFinished: true };

describe('KeepAliveSweeper', () => {
  test('closes a connection whose last response is written once nothing has moved for the limit', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
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

  test('a response still being written is never idle, however long it takes', () => {
    const { sweeper, advance } = setup();
    const socket = new FakeSocket();
    const response = { writableFinished: false };
    sweeper.noteRequest(socket, response);
    advance(10_000);
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
    sweeper.noteRequest(socket, finished);
    advance(800);
    const pending = { writableFinished: false };
    sweeper.noteRequest(socket, pending);
    advance(2000);
    expect(socket.destroyed).toBe(false);
    sweeper.close();
  });

  test('a closed connection is dropped; a forgotten (upgraded) one is never closed and keeps no listener', () => {
    const { sweeper, advance } = setup();
    const closed = new FakeSocket();
    const upgraded = new FakeSocket();
    sweeper.noteRequest(closed, finished);
    sweeper.noteRequest(upgraded, finished);
    expect(sweeper.size).toBe(2);
    closed.emit('close');
    expect(sweeper.size).toBe(1);
    sweeper.forget(upgraded);
    expect(upgraded.listenerCount('close')).toBe(0);
    advance(5000);
    expect(upgraded.destroyed).toBe(false);
    expect(sweeper.size).toBe(0);
    sweeper.close();
  });

  test('a limit of 0 or Infinity turns it off, as node\'s keepAliveTimeout: 0 does', () => {
    for (const limit of [0, Number.POSITIVE_INFINITY]) {
      const { sweeper, advance } = setup(limit);
      const socket = new FakeSocket();
      sweeper.noteRequest(socket, finished);
      expect(sweeper.size).toBe(0);
      advance(60_000);
      expect(socket.destroyed).toBe(false);
      sweeper.close();
    }
  });

  test('the sweep interval is a tenth of the limit, between 100 ms and 1 s', () => {
    expect(new KeepAliveSweeper(30_000).sweepIntervalMs).toBe(1000);
    expect(new KeepAliveSweeper(5_000).sweepIntervalMs).toBe(500);
    expect(new KeepAliveSweeper(200).sweepIntervalMs).toBe(100);
  });
});
