import { describe, expect, it } from 'vitest';
import { SYNTHETIC_POOL_CAPACITY, SyntheticAddressPool, SyntheticPoolExhaustedError, expandIPv6, isSyntheticAddress } from './synthetic-pool.js';

describe('SyntheticAddressPool', () => {
  it('issues addresses from 198.18.0.0/15 and the ULA /64, never 198.18.0.0 itself', () => {
    const pool = new SyntheticAddressPool();
    expect(pool.addressFor('api.example.test', 4)).toBe('198.18.0.1');
    expect(pool.addressFor('api.example.test', 6)).toBe('fd73:7274:6777::1');
    expect(pool.addressFor('b.example.test', 4)).toBe('198.18.0.2');
    expect(pool.nameFor('198.18.0.0')).toBeUndefined();
  });

  it('is stable for a name, case- and trailing-dot-insensitive', () => {
    const pool = new SyntheticAddressPool();
    const first = pool.addressFor('Api.Example.Test.', 4);
    pool.addressFor('other.test', 4);
    expect(pool.addressFor('api.example.test', 4)).toBe(first);
    expect(pool.size).toBe(2);
  });

  it('maps addresses back to names (v4, v6, v4-mapped v6, long v6 forms)', () => {
    const pool = new SyntheticAddressPool();
    pool.addressFor('a.test', 4);
    pool.addressFor('b.test', 6);
    expect(pool.nameFor('198.18.0.2')).toBe('b.test');
    expect(pool.nameFor('::ffff:198.18.0.1')).toBe('a.test');
    expect(pool.nameFor('fd73:7274:6777::2')).toBe('b.test');
    expect(pool.nameFor('FD73:7274:6777:0:0:0:0:1')).toBe('a.test');
    expect(pool.nameFor('198.18.0.3')).toBeUndefined(); // in range, not issued
    expect(pool.nameFor('10.0.0.1')).toBeUndefined();
    expect(pool.nameFor('fd73:7274:6778::1')).toBeUndefined();
    expect(pool.nameFor('not an address')).toBeUndefined();
  });

  it('crosses octet and group boundaries correctly', () => {
    const pool = new SyntheticAddressPool();
    let last = '';
    let last6 = '';
    for (let i = 1; i <= 70_000; i++) {
      last = pool.addressFor(`n${i}.test`, 4);
      if (i === 256) expect(last).toBe('198.18.1.0');
      if (i === 65_536) expect(last).toBe('198.19.0.0');
    }
    last6 = pool.addressFor('n70000.test', 6);
    expect(last).toBe('198.19.17.112');
    expect(last6).toBe('fd73:7274:6777::1:1170');
    expect(pool.nameFor(last)).toBe('n70000.test');
    expect(pool.nameFor(last6)).toBe('n70000.test');
  });

  it('covers the whole /15 minus two, then refuses new names instead of reusing', () => {
    expect(SYNTHETIC_POOL_CAPACITY).toBe(131_070);
    const pool = new SyntheticAddressPool();
    let last = '';
    for (let i = 0; i < SYNTHETIC_POOL_CAPACITY; i++) last = pool.addressFor(`n${i}.test`, 4);
    expect(last).toBe('198.19.255.254');
    expect(() => pool.addressFor('one-more.test', 4)).toThrow(SyntheticPoolExhaustedError);
    expect(pool.addressFor('n0.test', 4)).toBe('198.18.0.1'); // known names still work
    expect(pool.size).toBe(SYNTHETIC_POOL_CAPACITY);
  });

  it('honours a smaller capacity', () => {
    const pool = new SyntheticAddressPool({ capacity: 2 });
    pool.addressFor('a.test', 4);
    pool.addressFor('b.test', 6);
    expect(() => pool.addressFor('c.test', 4)).toThrow(/pool is full/);
  });

  it('isSyntheticAddress knows the ranges', () => {
    expect(isSyntheticAddress('198.19.255.254')).toBe(true);
    expect(isSyntheticAddress('198.20.0.1')).toBe(false);
    expect(isSyntheticAddress('198.17.255.255')).toBe(false);
    expect(isSyntheticAddress('fd73:7274:6777::1:fffe')).toBe(true);
    expect(isSyntheticAddress('fd73:7274:6777::1:ffff')).toBe(false);
  });

  it('expandIPv6 handles compressed forms and rejects nonsense', () => {
    expect(expandIPv6('::1')).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(expandIPv6('fd73::')).toEqual([0xfd73, 0, 0, 0, 0, 0, 0, 0]);
    expect(expandIPv6('1:2:3:4:5:6:7:8')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(expandIPv6('1::2::3')).toBeUndefined();
    expect(expandIPv6('1:2:3')).toBeUndefined();
  });
});
