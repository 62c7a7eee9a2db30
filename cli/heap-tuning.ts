// V8 heap settings for the commands that run a gateway in this process (`serve`, `run`).
// The library API leaves the embedding program's V8 alone.

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

/** The V8 flags to set at run time, given node's own command line: none the user already chose. */
export function heapFlagsFor(execArgv: readonly string[]): string[] {
  // V8 reads "_" and "-" in flag names alike.
  const chosen = (name: string) => execArgv.some((arg) => arg.split('=', 1)[0]!.replace(/_/g, '-') === name);
  return chosen('--heap-growing-percent') ? [] : [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`];
}

/**
 * Applies heapFlagsFor(process.execArgv). Only flags V8 reads each time it sizes the heap are set
 * here: one V8 reads at start-up (--max-semi-space-size, say) would silently do nothing. node:v8
 * is loaded here, not with the CLI: loading it takes ~2.5 ms, which `srt-gw run` spends after
 * the command has started.
 */
export function tuneHeapForProxying(): void {
  const flags = heapFlagsFor(process.execArgv);
  if (flags.length === 0) return;
  const v8 = process.getBuiltinModule('node:v8');
  for (const flag of flags) v8.setFlagsFromString(flag);
}
