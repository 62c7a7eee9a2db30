// Per-client token buckets for the DNS server: a tunnel needs many queries per second, a program
// resolving its hosts needs few. The table of clients is bounded so spoofed sources cannot grow it.
import { BoundedMap } from '../../bounded-map.js';

export interface ClientRateLimitOptions {
  /** Sustained queries per second per client address (default 200). */
  queriesPerSecond?: number;
  /** Bucket size: queries allowed in a burst (default 400). */
  burst?: number;
  /** Bound on tracked clients (default 4096); full, idle buckets are forgotten first. */
  maxClients?: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class ClientRateLimiter {
  private readonly rate: number;
  private readonly burst: number;
  private readonly buckets: BoundedMap<string, Bucket>;

  constructor(options: ClientRateLimitOptions = {}, private readonly now: () => number = () => performance.now()) {
    this.rate = Math.max(0.001, options.queriesPerSecond ?? 200);
    this.burst = Math.max(1, options.burst ?? 400);
    // Full: the client first seen longest ago goes (after the idle ones, makeRoom).
    this.buckets = new BoundedMap({ capacity: Math.max(1, Math.floor(options.maxClients ?? 4096)) });
  }

  /** Takes one token for `client`; false when the client is over its rate. */
  take(client: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(client);
    if (bucket) {
      bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * this.rate);
      bucket.updatedAt = now;
    } else {
      this.makeRoom(now);
      bucket = { tokens: this.burst, updatedAt: now };
      this.buckets.set(client, bucket);
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get trackedClients(): number {
    return this.buckets.size;
  }

  private makeRoom(now: number): void {
    if (this.buckets.size < this.buckets.capacity) return;
    // A bucket that has refilled completely carries no state worth keeping.
    const refillMs = (this.burst / this.rate) * 1000;
    for (const [client, bucket] of this.buckets) {
      if (now - bucket.updatedAt >= refillMs) this.buckets.delete(client);
    }
  }
}
