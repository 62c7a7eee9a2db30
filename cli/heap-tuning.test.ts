import { describe, expect, it } from 'vitest';
import {
  BULK_ARRAY_BUFFER_BYTES,
  BULK_HOLD_MS,
  heapTuningFor,
  OLD_GENERATION_GROWTH_PERCENT,
  OldGenerationGrowth,
  semiSpaceGrowthFactorFor,
  YOUNG_GENERATION_CAP_BYTES,
} from './heap-tuning.js';

const MB = 1024 * 1024;

describe('heapTuningFor', () => {
  it("steers the old generation's growth and caps the young generation when node was started without flags of its own", () => {
    expect(heapTuningFor([])).toEqual({ steerOldGeneration: true, capYoungGeneration: true });
    expect(heapTuningFor(['--enable-source-maps', '--max-old-space-size=512'], '--trace-warnings')).toEqual({
      steerOldGeneration: true,
      capYoungGeneration: true,
    });
  });

  it("leaves the growing factor alone when the user chose one, in either of V8's spellings, on the command line or in NODE_OPTIONS", () => {
    for (const [argv, options] of [[['--heap-growing-percent=50'], ''], [['--heap-growing-percent', '50'], ''], [['--heap_growing_percent=50'], ''], [[], '--inspect --heap-growing-percent=50']] as const) {
      expect(heapTuningFor(argv, options).steerOldGeneration, `${argv.join(' ')} / ${options}`).toBe(false);
    }
  });

  it('leaves the young generation alone when the user sized it', () => {
    expect(heapTuningFor(['--max-semi-space-size=32']).capYoungGeneration).toBe(false);
    expect(heapTuningFor(['--min_semi_space_size=4']).capYoungGeneration).toBe(false);
    expect(heapTuningFor([], '--semi-space-growth-factor=4').capYoungGeneration).toBe(false);
  });
});

describe('OldGenerationGrowth', () => {
  const { steady, bulk } = OLD_GENERATION_GROWTH_PERCENT;

  it('starts at the steady growth and stays there while few buffers are in the heap', () => {
    const growth = new OldGenerationGrowth();
    expect(growth.percent).toBe(steady);
    for (let ms = 0; ms < 10_000; ms += 100) expect(growth.sample(900_000, ms)).toBeUndefined();
    expect(growth.sample(BULK_ARRAY_BUFFER_BYTES - 1, 10_000)).toBeUndefined();
    expect(growth.percent).toBe(steady);
  });

  it('switches to the bulk growth at the first pile of buffers and reports each switch once', () => {
    const growth = new OldGenerationGrowth();
    expect(growth.sample(BULK_ARRAY_BUFFER_BYTES, 1000)).toBe(bulk);
    expect(growth.sample(30 * MB, 1100)).toBeUndefined();
    expect(growth.percent).toBe(bulk);
  });

  it('keeps the bulk growth through the gaps between piles and drops it a hold after the last one', () => {
    const growth = new OldGenerationGrowth();
    growth.sample(20 * MB, 0);
    // A scavenge empties the pile; the next pile comes within the hold, which starts again from it.
    expect(growth.sample(1 * MB, BULK_HOLD_MS - 100)).toBeUndefined();
    expect(growth.sample(12 * MB, BULK_HOLD_MS - 50)).toBeUndefined();
    expect(growth.sample(1 * MB, 2 * BULK_HOLD_MS - 100)).toBeUndefined();
    expect(growth.percent).toBe(bulk);
    expect(growth.sample(1 * MB, 2 * BULK_HOLD_MS - 50)).toBe(steady);
    expect(growth.sample(1 * MB, 3 * BULK_HOLD_MS)).toBeUndefined();
  });
});

describe('semiSpaceGrowthFactorFor', () => {
  it("keeps V8's factor below the cap, stops growth at it, and lets a young generation V8 shrank while idle grow again", () => {
    expect(YOUNG_GENERATION_CAP_BYTES).toBe(16 * MB);
    expect(semiSpaceGrowthFactorFor(1 * MB)).toBe(2);
    expect(semiSpaceGrowthFactorFor(8 * MB)).toBe(2);
    expect(semiSpaceGrowthFactorFor(16 * MB)).toBe(1);
    expect(semiSpaceGrowthFactorFor(32 * MB)).toBe(1);
  });
});

// What the tuning does to V8's collector in a real process is measured by bench/heap-tuning.mjs
// (npm run bench): those are experiments whose results follow the machine's speed.
