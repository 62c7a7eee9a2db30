// V8 heap settings for the commands that run a gateway in this process (`serve`, `run`): an
// old-generation headroom sized to what the gateway is doing, and a smaller young generation.
// The library API leaves the embedding program's V8 alone.
import { canSetV8Flags, setV8Flag } from '../gateway/node-internals.js';

/**
 * How far V8 lets the old generation grow past the live heap before the next full collection,
 * limit = live x (1 + percent / 100): 2x while the gateway moves little data, 3x while bulk
 * transfers run (OldGenerationGrowth below decides which).
 *
 * Why 3x under bulk transfers: every TLS record a socket reads becomes a 16 KiB ArrayBuffer that
 * lives until the next scavenge (V8 scavenges for them only once 32 MB pile up), and V8 counts
 * those bytes against the old generation's headroom. Once a few full collections have sized that
 * headroom from a proxy's small live heap (17 MB live → a 41 MB limit), a stream of 1 MiB bodies
 * keeps it used up: V8 then starts a full mark-compact every ~50 ms (~10 ms each) and never gets
 * out. 1 MiB downloads fell from ~500 to ~290 MB/s so in 6 of 14 runs with V8's own factor (2.4
 * here), in none of 17 with 3x (README, "Heap tuning").
 *
 * Why 2x otherwise: node 20's V8 promotes every accepted connection's objects (its net.Socket
 * constructor copies its options with `{ ...options }` and adds properties to the copy, after
 * which V8 11.3's scavenges keep the objects around it alive; node 22's V8 does not), so new
 * connections fill the old generation with ~8 KB of garbage each. At 3x that garbage filled the
 * old space to 42-44 MB before a full collection, and the next bulk transfer piled its buffers on
 * top: the bench's peak RSS. At 2x it stays under 29 MB (README, "Heap tuning").
 */
export const OLD_GENERATION_GROWTH_PERCENT = { steady: 100, bulk: 200 } as const;

/** ArrayBuffer bytes in the heap from which the gateway counts as moving bulk data. */
export const BULK_ARRAY_BUFFER_BYTES = 8 * 1024 * 1024;

/** How long the 3x headroom stays after the last sample that saw a pile of buffers. */
export const BULK_HOLD_MS = 5000;

/** How often the ArrayBuffer bytes are sampled (process.memoryUsage(), ~8 µs each). */
export const BULK_SAMPLE_INTERVAL_MS = 100;

/**
 * Which old-generation growth to ask of V8, from samples of the heap's ArrayBuffer bytes. A
 * connection churn leaves them under 1 MB; 1 MiB bodies at c=4 swing them between 2 and 36 MB,
 * so a 100 ms sample sees a pile within a few samples, and a 5 s hold outlasts the gaps.
 *
 * V8 reads the growth when a full collection ends, to size the next limit, so a switch takes
 * effect at the next full collection: when bulk data starts after a churn, the buffers soon push
 * the heap over the 2x limit, and that collection (which also frees the churn's garbage) sets a
 * 3x limit.
 */
export class OldGenerationGrowth {
  private bulkUntilMs = -Infinity;
  /** The growth V8 was last asked for. */
  percent: number = OLD_GENERATION_GROWTH_PERCENT.steady;

  /** Takes one sample; returns the new percent when it changed, else undefined. */
  sample(arrayBufferBytes: number, nowMs: number): number | undefined {
    if (arrayBufferBytes >= BULK_ARRAY_BUFFER_BYTES) this.bulkUntilMs = nowMs + BULK_HOLD_MS;
    const wanted = nowMs < this.bulkUntilMs ? OLD_GENERATION_GROWTH_PERCENT.bulk : OLD_GENERATION_GROWTH_PERCENT.steady;
    if (wanted === this.percent) return undefined;
    this.percent = wanted;
    return wanted;
  }
}

/**
 * The young generation's size at which it stops growing: two 8 MB semi-spaces. V8 (node 20 on
 * 64-bit) grows them to 16 MB each, 32 MB committed, which a proxy does not need: its young
 * objects die within a request. 8 MB semi-spaces cost 0.6-0.8 % more CPU in scavenges at 32
 * kept-alive connections (167-172 against 123-132 ms of scavenges in 6 s, --trace-gc); the bench's
 * peak RSS over its load cases was 146-155 MB against 156-170 MB (README, "Heap tuning").
 * `--max-semi-space-size=8` would say the same, but V8 reads it only at start-up, and `srt-gw`
 * starts through a `#!/usr/bin/env node` line.
 */
export const YOUNG_GENERATION_CAP_BYTES = 16 * 1024 * 1024;

/**
 * V8's semi-space growth factor for a young generation of `bytes`: its default (2) below the cap,
 * 1 (no more growth) at it. V8 shrinks an idle young generation back towards 1 MB, so the factor
 * must go back to 2 then, or the young generation would stay that small under the next load.
 */
export function semiSpaceGrowthFactorFor(bytes: number): 1 | 2 {
  return bytes >= YOUNG_GENERATION_CAP_BYTES ? 1 : 2;
}

export interface HeapTuning {
  /** Whether to steer the old generation's growth (OldGenerationGrowth). */
  readonly steerOldGeneration: boolean;
  /** Whether to hold the young generation at YOUNG_GENERATION_CAP_BYTES. */
  readonly capYoungGeneration: boolean;
}

/** What to tune, given node's command line and NODE_OPTIONS: nothing the user already chose. */
export function heapTuningFor(execArgv: readonly string[], nodeOptions = ''): HeapTuning {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  // V8 reads "_" and "-" in flag names alike.
  const chosen = (name: string) => given.some((arg) => arg.split('=', 1)[0]!.replace(/_/g, '-') === name);
  return {
    steerOldGeneration: !chosen('--heap-growing-percent'),
    capYoungGeneration: !['--max-semi-space-size', '--min-semi-space-size', '--semi-space-growth-factor'].some(chosen),
  };
}

/**
 * Applies heapTuningFor(process.execArgv, NODE_OPTIONS). Only flags V8 reads each time it sizes
 * the heap are set here: one V8 reads at start-up (--max-semi-space-size, say) would silently do
 * nothing. node:v8 is loaded here, not with the CLI: loading it takes ~2.5 ms, which `srt-gw run`
 * spends after the command has started. Returns the old generation's steering, when it runs, so
 * that a test or a debugger can see its state.
 */
export function tuneHeapForProxying(): OldGenerationGrowth | undefined {
  const tuning = heapTuningFor(process.execArgv, process.env.NODE_OPTIONS);
  if (!tuning.steerOldGeneration && !tuning.capYoungGeneration) return undefined;
  const v8 = process.getBuiltinModule('node:v8');
  // A node without run-time V8 flags keeps V8's own heap sizing (gateway/node-internals.ts).
  if (!canSetV8Flags(v8)) return undefined;
  if (tuning.capYoungGeneration) capYoungGeneration(v8);
  return tuning.steerOldGeneration ? steerOldGeneration(v8) : undefined;
}

/** Samples the heap's ArrayBuffer bytes on a timer and sets V8's old-generation growth from them. */
function steerOldGeneration(v8: typeof import('node:v8')): OldGenerationGrowth {
  const growth = new OldGenerationGrowth();
  setV8Flag(v8, `--heap-growing-percent=${growth.percent}`);
  setInterval(() => {
    const changed = growth.sample(process.memoryUsage().arrayBuffers, performance.now());
    if (changed !== undefined) setV8Flag(v8, `--heap-growing-percent=${changed}`);
  }, BULK_SAMPLE_INTERVAL_MS).unref();
  return growth;
}

/** After every collection, sets the growth factor for the young generation's new size. */
function capYoungGeneration(v8: typeof import('node:v8')): void {
  const { PerformanceObserver } = process.getBuiltinModule('node:perf_hooks');
  let factor = 2;
  const observer = new PerformanceObserver(() => {
    const young = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
    if (young === undefined) return;
    const wanted = semiSpaceGrowthFactorFor(young.space_size);
    if (wanted === factor) return;
    factor = wanted;
    setV8Flag(v8, `--semi-space-growth-factor=${wanted}`);
  });
  observer.observe({ entryTypes: ['gc'] });
}
