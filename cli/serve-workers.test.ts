import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { parseWorkerCount } from './serve-workers.js';

describe('parseWorkerCount', () => {
  it.each([
    [undefined, 1],
    ['1', 1],
    ['3', 3],
    ['auto', os.availableParallelism()],
  ])('--workers %s → %d processes', (value, expected) => {
    expect(parseWorkerCount(value)).toBe(expected);
  });

  it.each([['0'], ['-2'], ['1.5'], ['two'], [''], ['10000'], ['auto ']])('--workers %j is refused with SRTGW_CONFIG_INVALID', (value) => {
    expect(() => parseWorkerCount(value)).toThrow(expect.objectContaining({ code: 'SRTGW_CONFIG_INVALID' }));
  });
});
