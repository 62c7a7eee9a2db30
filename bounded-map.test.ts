// BoundedMap: never more than its capacity, evicts the oldest first (by insertion, or by use with
// refreshOnGet), reports what it evicts, and keeps its age order through deletes and replacements.
import { describe, expect, it } from 'vitest';
import { BoundedMap } from './bounded-map.js';

function filled(capacity: number, keys: string[], refreshOnGet = false, evicted: string[] = []): BoundedMap<string, number> {
  const map = new BoundedMap<string, number>({ capacity, refreshOnGet, onEvict: (key) => evicted.push(key) });
  keys.forEach((key, index) => map.set(key, index));
  return map;
}

describe('BoundedMap', () => {
  it('holds at most its capacity, evicting the oldest insertion first', () => {
    const evicted: string[] = [];
    const map = filled(3, ['a', 'b', 'c', 'd', 'e'], false, evicted);
    expect(map.size).toBe(3);
    expect([...map.keys()]).toEqual(['c', 'd', 'e']);
    expect(evicted).toEqual(['a', 'b']);
    expect(map.has('a')).toBe(false);
    expect(map.get('e')).toBe(4);
  });

  it('without refreshOnGet, a get does not save an entry from eviction', () => {
    const map = filled(2, ['a', 'b']);
    expect(map.get('a')).toBe(0);
    map.set('c', 2);
    expect([...map.keys()]).toEqual(['b', 'c']);
  });

  it('with refreshOnGet, the least recently used entry goes first', () => {
    const evicted: string[] = [];
    const map = filled(3, ['a', 'b', 'c'], true, evicted);
    map.get('a'); // order by use: b, c, a
    map.get('b'); // c, a, b
    map.set('d', 3);
    expect(evicted).toEqual(['c']);
    expect([...map.keys()]).toEqual(['a', 'b', 'd']);
    map.get('a'); // b, d, a
    map.set('e', 4);
    expect(evicted).toEqual(['c', 'b']);
    expect([...map.entries()]).toEqual([['d', 3], ['a', 0], ['e', 4]]);
  });

  it('peek reads without refreshing, even with refreshOnGet', () => {
    const map = filled(2, ['a', 'b'], true);
    expect(map.peek('a')).toBe(0);
    map.set('c', 2);
    expect(map.has('a')).toBe(false);
  });

  it('set on a present key replaces its value and makes it the youngest, evicting nothing', () => {
    const evicted: string[] = [];
    const map = filled(2, ['a', 'b'], false, evicted);
    map.set('a', 10);
    expect([...map.entries()]).toEqual([['b', 1], ['a', 10]]);
    map.set('c', 2);
    expect(evicted).toEqual(['b']);
  });

  it('delete and clear free room without calling onEvict', () => {
    const evicted: string[] = [];
    const map = filled(2, ['a', 'b'], true, evicted);
    expect(map.delete('a')).toBe(true);
    expect(map.delete('a')).toBe(false);
    map.set('c', 2);
    expect([...map.keys()]).toEqual(['b', 'c']);
    map.clear();
    expect(map.size).toBe(0);
    map.set('d', 3);
    expect([...map.keys()]).toEqual(['d']);
    expect(evicted).toEqual([]);
  });

  it('lets the entry just iterated be deleted', () => {
    const map = filled(5, ['a', 'b', 'c', 'd']);
    for (const [key, value] of map) if (value % 2 === 0) map.delete(key);
    expect([...map.keys()]).toEqual(['b', 'd']);
  });

  it('keeps its order through the youngest and the oldest being refreshed (capacity 1 and 2)', () => {
    const one = filled(1, ['a', 'b'], true);
    expect([...one.keys()]).toEqual(['b']);
    one.get('b');
    expect([...one.values()]).toEqual([1]);
    const two = filled(2, ['a', 'b'], true);
    two.get('b');
    two.get('a');
    two.get('a');
    two.set('c', 2);
    expect([...two.keys()]).toEqual(['a', 'c']);
  });

  it('refuses a capacity that is not a positive integer', () => {
    expect(() => new BoundedMap({ capacity: 0 })).toThrow(RangeError);
    expect(() => new BoundedMap({ capacity: 1.5 })).toThrow(/positive integer/);
  });
});
