// EndOfTurnQueue: items wait for the end of the loop turn, are handled in order, and one that
// fails neither stops the others nor escapes.
import { describe, expect, test } from 'vitest';
import { EndOfTurnQueue } from './end-of-turn-queue.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('EndOfTurnQueue', () => {
  test('handles what was pushed at the end of the turn, in order, and nothing twice', async () => {
    const handled: number[] = [];
    const queue = new EndOfTurnQueue<number>((item) => handled.push(item), () => undefined);
    queue.push(1);
    queue.push(2);
    await Promise.resolve(); // microtasks run before the turn ends
    expect(handled).toEqual([]);
    queue.push(3);
    await nextTurn();
    expect(handled).toEqual([1, 2, 3]);
    queue.push(4);
    await nextTurn();
    await nextTurn();
    expect(handled).toEqual([1, 2, 3, 4]);
  });

  test('flush() handles the queue at once, and the turn then finds it empty', async () => {
    const handled: string[] = [];
    const queue = new EndOfTurnQueue<string>((item) => handled.push(item), () => undefined);
    queue.push('a');
    queue.push('b');
    queue.flush();
    expect(handled).toEqual(['a', 'b']);
    queue.push('c'); // pushed after a flush, before the turn ends: handled once, at its end
    await nextTurn();
    expect(handled).toEqual(['a', 'b', 'c']);
  });

  test('an item whose handling throws goes to onError, and the items after it are still handled', async () => {
    const handled: number[] = [];
    const failed: [number, string][] = [];
    const queue = new EndOfTurnQueue<number>(
      (item) => {
        if (item === 2) throw new Error('boom');
        handled.push(item);
      },
      (item, error) => failed.push([item, (error as Error).message]),
    );
    for (const item of [1, 2, 3]) queue.push(item);
    await nextTurn();
    expect(handled).toEqual([1, 3]);
    expect(failed).toEqual([[2, 'boom']]);
  });
});
