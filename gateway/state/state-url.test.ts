import { describe, expect, it } from 'vitest';
import { parseStateLocation, STATE_PASSWORD_ENV } from './state-url.js';

describe('parseStateLocation', () => {
  it('takes redis:// and rediss:// with a database and a key prefix', () => {
    expect(parseStateLocation('redis://127.0.0.1:6379/2', {})).toEqual({ url: 'redis://127.0.0.1:6379/2', display: 'redis://127.0.0.1:6379/2', tls: false, keyPrefix: 'srtgw' });
    expect(parseStateLocation('rediss://cache.internal:6380?prefix=fleet-a', {})).toMatchObject({ tls: true, keyPrefix: 'fleet-a', url: 'rediss://cache.internal:6380' });
  });

  it('takes the password from the environment when the URL has none, and never shows it', () => {
    const location = parseStateLocation('redis://cache:6379', { [STATE_PASSWORD_ENV]: 's3cr3t/x' });
    expect(location.url).toBe('redis://:s3cr3t%2Fx@cache:6379');
    expect(location.display).not.toContain('s3cr3t');
    expect(parseStateLocation('redis://user:inurl@cache:6379', { [STATE_PASSWORD_ENV]: 'env' }).url).toBe('redis://user:inurl@cache:6379');
  });

  it.each([
    ['http://cache:6379', /use redis:\/\/ or rediss:\/\//],
    ['cache:6379', /scheme "cache"/],
    ['redis://cache:6379/x', /database "x"/],
    ['redis://cache:6379?db=1', /unknown parameter "db"/],
  ])('refuses %s', (text, message) => {
    expect(() => parseStateLocation(text, {})).toThrow(message);
  });

  it('an error never repeats a password', () => {
    expect(() => parseStateLocation('redis://u:hunter2@cache:6379/x', {})).toThrow(/u:\*\*\*@/);
    expect(() => parseStateLocation('redis://u:hunter2@cache:6379/x', {})).not.toThrow(/hunter2/);
  });
});
