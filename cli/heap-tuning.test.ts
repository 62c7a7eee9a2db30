import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, heapFlagsFor } from './heap-tuning.js';

describe('heapFlagsFor', () => {
  it('sets the old-generation growing factor when node was started without one', () => {
    expect(heapFlagsFor([])).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
    expect(heapFlagsFor(['--enable-source-maps', '--max-old-space-size=512'])).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
  });

  it("leaves the factor alone when the user chose one, in either of V8's spellings", () => {
    expect(heapFlagsFor(['--heap-growing-percent=50'])).toEqual([]);
    expect(heapFlagsFor(['--heap-growing-percent', '50'])).toEqual([]);
    expect(heapFlagsFor(['--heap_growing_percent=50'])).toEqual([]);
  });
});
