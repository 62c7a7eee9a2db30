import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, heapTuningFor, semiSpaceGrowthFactorFor, YOUNG_GENERATION_CAP_BYTES } from './heap-tuning.js';

const MB = 1024 * 1024;

describe('heapTuningFor', () => {
  it('sets the old-generation growing factor and caps the young generation when node was started without flags of its own', () => {
    expect(heapTuningFor([])).toEqual({ flags: [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`], capYoungGeneration: true });
    expect(heapTuningFor(['--enable-source-maps', '--max-old-space-size=512'], '--trace-warnings')).toEqual({
      flags: [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`],
      capYoungGeneration: true,
    });
  });

  it("leaves the growing factor alone when the user chose one, in either of V8's spellings, on the command line or in NODE_OPTIONS", () => {
    for (const [argv, options] of [[['--heap-growing-percent=50'], ''], [['--heap-growing-percent', '50'], ''], [['--heap_growing_percent=50'], ''], [[], '--inspect --heap-growing-percent=50']] as const) {
      expect(heapTuningFor(argv, options).flags, `${argv.join(' ')} / ${options}`).toEqual([]);
    }
  });

  it('leaves the young generation alone when the user sized it', () => {
    expect(heapTuningFor(['--max-semi-space-size=32']).capYoungGeneration).toBe(false);
    expect(heapTuningFor(['--min_semi_space_size=4']).capYoungGeneration).toBe(false);
    expect(heapTuningFor([], '--semi-space-growth-factor=4').capYoungGeneration).toBe(false);
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

describe('tuneHeapForProxying in a node process', () => {
  // The built module, in a child: the flags are process-wide, and this test's worker is not a proxy.
  const module = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'heap-tuning.js');
  /** Largest young generation (MB) while objects that survive a scavenge or two keep being made. */
  const youngGenerationPeak = (tune: boolean): number => {
    const script = `
      import v8 from 'node:v8';
      import { tuneHeapForProxying } from ${JSON.stringify(module)};
      if (${tune}) tuneHeapForProxying();
      let peak = 0;
      const sample = () => { peak = Math.max(peak, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size); };
      let kept = [];
      // Small steps with turns of the event loop between them, as a proxy's requests are: the
      // observer runs between turns (node hands it the collections' entries with setImmediate).
      for (let round = 0; round < 800; round++) {
        for (let i = 0; i < 5000; i++) { kept.push({ i, text: 'x' + i }); if (kept.length > 200000) kept = []; }
        sample();
        await new Promise((resolve) => setImmediate(resolve));
      }
      process.stdout.write(String(peak));`;
    return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) / MB;
  };

  it("holds the young generation at the cap, where V8 alone would let it double", () => {
    expect(youngGenerationPeak(false)).toBeGreaterThan(16);
    expect(youngGenerationPeak(true)).toBeLessThanOrEqual(16);
  });
});
