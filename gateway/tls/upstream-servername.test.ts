import { describe, expect, it } from 'vitest';
import { upstreamServername } from './upstream-servername.js';

describe('upstreamServername', () => {
  it('is the policy-checked host for an https name', () => {
    expect(upstreamServername({ scheme: 'https', host: 'api.example.test' })).toBe('api.example.test');
  });

  it('is absent for IP literals, which SNI cannot carry', () => {
    expect(upstreamServername({ scheme: 'https', host: '192.0.2.7' })).toBeUndefined();
    expect(upstreamServername({ scheme: 'https', host: '2001:db8::1' })).toBeUndefined();
  });

  it('is absent for plain http', () => {
    expect(upstreamServername({ scheme: 'http', host: 'api.example.test' })).toBeUndefined();
  });
});
