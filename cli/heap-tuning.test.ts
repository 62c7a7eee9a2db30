import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

describe('tuneHeapForProxying in a node process', () => {
  // The built module, in a child: the flags are process-wide, and this test's worker is not a proxy.
  const module = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'heap-tuning.js');
  /** Runs an ES module `script` in a new node process with `nodeFlags`; returns what it printed. */
  const runInNode = (script: string, nodeFlags: string[] = []): string =>
    execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { encoding: 'utf8' });
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
    return Number(runInNode(script)) / MB;
  };

  /** Largest old-generation use (MB) under a churn that keeps promoting objects that then die. */
  const oldGenerationPeak = (nodeFlags: string[]): number => {
    const script = `
      import v8 from 'node:v8';
      import { tuneHeapForProxying } from ${JSON.stringify(module)};
      tuneHeapForProxying();
      const used = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
      // A live set of ~20 MB replaced piece by piece, as connections come and go: each object
      // outlives a few scavenges, is promoted, and dies in the old generation. The first third
      // of the rounds fills the set and is not measured.
      const ring = new Array(80000);
      let at = 0, peak = 0;
      for (let round = 0; round < 900; round++) {
        for (let i = 0; i < 2000; i++) { ring[at] = { at, text: 'x'.repeat(100) + at, list: [at, at + 1] }; at = (at + 1) % ring.length; }
        if (round >= 300) peak = Math.max(peak, used());
        await new Promise((resolve) => setImmediate(resolve));
      }
      process.stdout.write(String(peak));`;
    return Number(runInNode(script, nodeFlags)) / MB;
  };

  it('keeps less garbage in the old generation under a churn than the fixed 3x headroom it replaced', () => {
    // --heap-growing-percent on node's command line turns the steering off: the old fixed setting.
    const fixed = oldGenerationPeak([`--heap-growing-percent=${OLD_GENERATION_GROWTH_PERCENT.bulk}`]);
    const steered = oldGenerationPeak([]);
    expect(steered).toBeLessThan(fixed * 0.85);
  });

  it('switches to the bulk headroom while buffers pile up in the heap', () => {
    const script = `
      import { tuneHeapForProxying } from ${JSON.stringify(module)};
      const growth = tuneHeapForProxying();
      const before = growth.percent;
      // 16 KiB buffers, as TLS records are, up to 16 MB at a time, for 0.6 s (six samples).
      let buffers = [];
      const end = performance.now() + 600;
      while (performance.now() < end) {
        for (let i = 0; i < 64; i++) buffers.push(Buffer.allocUnsafeSlow(16384));
        if (buffers.length > 1024) buffers = [];
        await new Promise((resolve) => setImmediate(resolve));
      }
      process.stdout.write(JSON.stringify({ before, after: growth.percent }));`;
    const seen = JSON.parse(runInNode(script));
    expect(seen).toEqual({ before: OLD_GENERATION_GROWTH_PERCENT.steady, after: OLD_GENERATION_GROWTH_PERCENT.bulk });
  });

  it("holds the young generation at the cap, where V8 alone would let it double", () => {
    expect(youngGenerationPeak(false)).toBeGreaterThan(16);
    expect(youngGenerationPeak(true)).toBeLessThanOrEqual(16);
  });
});
