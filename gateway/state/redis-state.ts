// The connection to the shared state server (Redis or a server that speaks its protocol). Every
// command is bounded by a short deadline and fails at once while the server is unreachable, so a
// down or hung server costs a request milliseconds, never a stall: the callers then fail closed
// (a budget refuses, a revocation check refuses, an approval is not assumed). The client reconnects
// with a capped exponential backoff. @redis/client loads only here, only with --state.
import type { StateLocation } from './state-url.js';

/** How long one command may take before the state counts as unavailable for it. */
export const DEFAULT_STATE_COMMAND_TIMEOUT_MS = 250;
/** Reconnect delays grow from 50 ms, doubling, to this. */
const MAX_RECONNECT_DELAY_MS = 2000;
const CONNECT_TIMEOUT_MS = 1000;

/** The shared state could not answer (down, unreachable, too slow, or it refused the command). */
export class StateUnavailableError extends Error {
  override readonly name = 'StateUnavailableError';
}

/** A server reply as the client decodes it (RESP2 arrays, or RESP3 maps). */
export type StateReply = string | number | null | StateReply[] | Map<unknown, unknown> | Record<string, unknown>;

/** What the shared stores need from a connection; a fake in tests. */
export interface SharedStateConnection {
  readonly keyPrefix: string;
  /** Runs one command; rejects with StateUnavailableError within the command deadline. */
  command(args: readonly string[]): Promise<StateReply>;
  /** Whether the last connection attempt and the last command succeeded. */
  readonly up: boolean;
  /** Commands that failed or timed out, since start. */
  readonly errors: number;
  /** Called each time `up` changes. */
  onStatusChange(listener: (up: boolean) => void): () => void;
  close(): Promise<void>;
}

export interface RedisStateOptions {
  commandTimeoutMs?: number;
  /** Where connection problems are reported (once per change of state). */
  log?: (line: string) => void;
}

interface MinimalRedisClient {
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  destroy(): void;
  readonly isReady: boolean;
}

/** Connects to the server named by `location`; resolves at once, the connection comes up in the background. */
export async function connectRedisState(location: StateLocation, options: RedisStateOptions = {}): Promise<SharedStateConnection> {
  const { createClient } = await import('@redis/client');
  const client = createClient({
      url: location.url,
      // A command sent while the connection is down fails at once instead of waiting for it.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: CONNECT_TIMEOUT_MS,
        keepAlive: true,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), MAX_RECONNECT_DELAY_MS),
      },
  }) as unknown as MinimalRedisClient;
  return new RedisState(client, location, options);
}

class RedisState implements SharedStateConnection {
  readonly keyPrefix: string;
  errors = 0;
  private connected = false;
  private lastCommandOk = true;
  private reportedUp: boolean | null = null;
  private readonly listeners = new Set<(up: boolean) => void>();
  private readonly timeoutMs: number;
  private closed = false;

  constructor(
    private readonly client: MinimalRedisClient,
    private readonly location: StateLocation,
    private readonly options: RedisStateOptions,
  ) {
    this.keyPrefix = location.keyPrefix;
    this.timeoutMs = options.commandTimeoutMs ?? DEFAULT_STATE_COMMAND_TIMEOUT_MS;
    client.on('ready', () => {
      this.connected = true;
      this.lastCommandOk = true;
      this.report();
    });
    const down = (error?: unknown) => {
      this.connected = false;
      this.report(error);
    };
    client.on('end', () => down());
    client.on('reconnecting', () => down());
    client.on('error', (error) => down(error));
    // The first attempt fails like any later one: reported through the events above, retried.
    client.connect().catch(() => undefined);
    this.report();
  }

  get up(): boolean {
    return this.connected && this.lastCommandOk;
  }

  async command(args: readonly string[]): Promise<StateReply> {
    if (!this.connected) {
      this.errors++;
      throw new StateUnavailableError(`the shared state at ${this.location.display} is not connected`);
    }
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new StateUnavailableError(`the shared state at ${this.location.display} did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const reply = (await Promise.race([this.client.sendCommand([...args]), deadline])) as StateReply;
      if (!this.lastCommandOk) {
        this.lastCommandOk = true;
        this.report();
      }
      return reply;
    } catch (error) {
      this.errors++;
      if (this.lastCommandOk) {
        this.lastCommandOk = false;
        this.report(error);
      }
      if (error instanceof StateUnavailableError) throw error;
      throw new StateUnavailableError(`the shared state at ${this.location.display} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  onStatusChange(listener: (up: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
  }

  private report(error?: unknown): void {
    const up = this.up;
    if (this.reportedUp === up) return;
    // Nothing to say about the first attempt that has not finished yet.
    const first = this.reportedUp === null;
    this.reportedUp = up;
    for (const listener of this.listeners) listener(up);
    if (this.closed || (first && !up && error === undefined)) return;
    const detail = error instanceof Error ? `: ${error.message}` : '';
    this.options.log?.(up ? `shared state ${this.location.display} is up` : `shared state ${this.location.display} is unavailable${detail}; budgets refuse (429 budget-state-unavailable) until it is back`);
  }
}

/** Resolves once `state` is up; rejects with StateUnavailableError after `timeoutMs` (a one-shot command line waits for it). */
export async function waitUntilUp(state: SharedStateConnection, timeoutMs: number): Promise<void> {
  if (state.up) return;
  await new Promise<void>((resolveUp, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new StateUnavailableError(`the shared state did not come up within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = state.onStatusChange((up) => {
      if (!up) return;
      clearTimeout(timer);
      stop();
      resolveUp();
    });
  });
}
