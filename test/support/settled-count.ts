// Waits for a count that grows while something flows (bytes read, bytes written) to stop
// growing: how a test sees that a transfer stalled, on a machine of any speed. A transfer that
// never stalls fails at the deadline, which only a hang reaches.

export interface SettledCountOptions {
  /** The count must be above 0 first (the transfer started). Default true. */
  started?: boolean;
  /** It must stay the same over this many checks in a row. Default 3. */
  checks?: number;
  /** Time between checks. Default 200 ms. */
  intervalMs?: number;
  /** Default 30 s. */
  deadlineMs?: number;
}

/** Resolves with the count once it has stopped changing; rejects at the deadline. */
export async function settledCount(read: () => number, options: SettledCountOptions = {}): Promise<number> {
  const { started = true, checks = 3, intervalMs = 200, deadlineMs = 30_000 } = options;
  const deadline = Date.now() + deadlineMs;
  let last = read();
  let same = 0;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const now = read();
    same = now === last && (!started || now > 0) ? same + 1 : 0;
    last = now;
    if (same >= checks) return now;
    if (Date.now() > deadline) throw new Error(`the count never settled within ${deadlineMs} ms (last ${now})`);
  }
}
