// The timing shared by the gateway's sweeps (connection-sweeper.ts for client connections,
// response-deadlines.ts for upstream responses): a limit of 0 or Infinity means "never", and a
// sweep runs often enough that a limit fires at most a tenth of it late.

/** `ms` as a limit: itself when positive and finite, else Infinity (never). */
export function limitOrNever(ms: number): number {
  return ms > 0 && Number.isFinite(ms) ? ms : Number.POSITIVE_INFINITY;
}

/** How often a sweep over these limits runs: a tenth of the shortest, at least 100 ms, at most 1 s. */
export function sweepIntervalFor(...limitsMs: number[]): number {
  return Math.min(1000, Math.max(100, Math.floor(Math.min(...limitsMs) / 10)));
}
