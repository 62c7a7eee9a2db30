// onUnknownHost approvals kept in the shared state (serve --state, or a library gateway given
// sharedState): one hash of "host:port" → when it was approved. Read when a replica meets a host
// it has no answer for (and again, at most every few seconds, for one it denied).
import type { SharedApprovals } from '../unknown-host.js';
import type { SharedStateConnection } from './redis-state.js';

export function approvalsKey(prefix: string): string {
  return `${prefix}:approvals`;
}

/** The hash field of host:port; IPv6 literals are bracketed, so the port is unambiguous. */
export function approvalField(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

export class RedisApprovals implements SharedApprovals {
  private readonly key: string;

  constructor(
    private readonly state: SharedStateConnection,
    private readonly now: () => number = Date.now,
  ) {
    this.key = approvalsKey(state.keyPrefix);
  }

  async isApproved(host: string, port: number): Promise<boolean> {
    return Number(await this.state.command(['HEXISTS', this.key, approvalField(host, port)])) === 1;
  }

  async record(host: string, port: number): Promise<void> {
    await this.state.command(['HSET', this.key, approvalField(host, port), new Date(this.now()).toISOString()]);
  }
}
