// V8 heap settings for the commands that run a gateway in this process (`serve`, `run`): a
// larger old-generation headroom and a smaller young generation. The library API leaves the
// embedding program's V8 alone.

/**
 * How far V8 lets the old generation grow past the live heap before the next full collection:
 * limit = live x (1 + percent / 100), here 3x.
 *
 * Why: every TLS record a socket reads becomes a 16 KiB ArrayBuffer that lives until the next
 * scavenge (V8 scavenges for them only once 32 MB pile up), and V8 counts those bytes against the
 * old generation's headroom. Once a few full collections have sized that headroom from a proxy's
 * small live heap (17 MB live → a 41 MB limit), a stream of 1 MiB bodies keeps it used up: V8 then
 * starts a full mark-compact every ~50 ms (~10 ms each) and never gets out. 1 MiB downloads fell
 * from ~500 to ~290 MB/s so in 6 of 14 runs with V8's own factor (2.4 here), in none of 17 with
 * this one (README, "Heap tuning"). The price is old-generation garbage kept a little longer.
 */
export const HEAP_GROWING_PERCENT = 200;

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
  /** V8 flags to set once. */
  readonly flags: string[];
  /** Whether to hold the young generation at YOUNG_GENERATION_CAP_BYTES. */
  readonly capYoungGeneration: boolean;
}

/** What to tune, given node's command line and NODE_OPTIONS: nothing the user already chose. */
export function heapTuningFor(execArgv: readonly string[], nodeOptions = ''): HeapTuning {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  // V8 reads "_" and "-" in flag names alike.
  const chosen = (name: string) => given.some((arg) => arg.split('=', 1)[0]!.replace(/_/g, '-') === name);
  return {
    flags: chosen('--heap-growing-percent') ? [] : [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`],
    capYoungGeneration: !['--max-semi-space-size', '--min-semi-space-size', '--semi-space-growth-factor'].some(chosen),
  };
}

/**
 * Applies heapTuningFor(process.execArgv, NODE_OPTIONS). Only flags V8 reads each time it sizes
 * the heap are set here: one V8 reads at start-up (--max-semi-space-size, say) would silently do
 * nothing. node:v8 is loaded here, not with the CLI: loading it takes ~2.5 ms, which `srt-gw run`
 * spends after the command has started.
 */
export function tuneHeapForProxying(): void {
  const tuning = heapTuningFor(process.execArgv, process.env.NODE_OPTIONS);
  if (tuning.flags.length === 0 && !tuning.capYoungGeneration) return;
  const v8 = process.getBuiltinModule('node:v8');
  for (const flag of tuning.flags) v8.setFlagsFromString(flag);
  if (tuning.capYoungGeneration) capYoungGeneration(v8);
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
    v8.setFlagsFromString(`--semi-space-growth-factor=${wanted}`);
  });
  observer.observe({ entryTypes: ['gc'] });
}
