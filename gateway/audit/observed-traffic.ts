// What a run's requests were, for `--write-policy FILE`: fed by the gateway's decision events
// (the same seam as the audit log), kept per host, port, method and path prefix so a long run
// stays small, and written out as a draft policy (policies/draft-policy.ts).
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { BoundedMap } from '../../bounded-map.js';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import { buildDraftPolicy, draftPathGlob, type ObservedOutcome, type ObservedRequest } from '../../policies/draft-policy.js';
import type { GatewayEvents, RequestEvent } from './events.js';

export interface ObservedTrafficOptions {
  /**
   * Only one jail's traffic, on a gateway several runs share: the requests on connections whose
   * client is `clientLabel:address`, and the DNS queries of client `clientLabel`.
   */
  clientLabel?: string;
  /** Distinct host/port/method/prefix entries kept; later new ones are only counted. Default 10000. */
  maxEntries?: number;
}

/** Connection ids of one jail remembered to attribute its requests; the oldest are forgotten first. */
const MAX_TRACKED_CONNECTIONS = 65_536;
const MAX_LOOKED_UP_NAMES = 500;

/** Collects requests from `events` until stopped. */
export class ObservedTraffic {
  private readonly entries = new Map<string, { -readonly [K in keyof ObservedRequest]: ObservedRequest[K] }>();
  private readonly lookedUp = new Set<string>();
  private notKept = 0;
  private readonly unsubscribe: (() => void)[];
  private readonly maxEntries: number;

  constructor(events: GatewayEvents, options: ObservedTrafficOptions = {}) {
    this.maxEntries = options.maxEntries ?? 10_000;
    const label = options.clientLabel;
    // The oldest connections are forgotten first.
    const connections = new BoundedMap<string, true>({ capacity: MAX_TRACKED_CONNECTIONS });
    this.unsubscribe = [
      events.on('request', (event) => {
        if (label !== undefined && !connections.has(event.conn)) return;
        this.addRequest(event);
      }),
      events.on('dns', (event) => {
        if (label !== undefined && event.client !== label) return;
        // A name a rule allows, or one cut for the log ("…#" and a digest), says nothing a request will not.
        if (event.decision !== 'denied' || event.name.includes('…') || this.lookedUp.size >= MAX_LOOKED_UP_NAMES) return;
        this.lookedUp.add(event.name);
      }),
    ];
    if (label !== undefined) {
      this.unsubscribe.push(
        events.on('connect', (event) => {
          if (event.decision !== 'allow' || !event.client.startsWith(`${label}:`)) return;
          connections.set(event.conn, true);
        }),
      );
    }
  }

  private addRequest(event: RequestEvent): void {
    // Malformed requests and a Host that differs from the TLS name are refused in every mode;
    // no rule would change that, so they draft nothing.
    if (event.step === 'framing' || event.step === 'authority') return;
    const outcome: ObservedOutcome = event.monitored ? 'would-be-denied' : event.decision === 'deny' ? 'denied' : 'allowed';
    const key = [event.host, event.port, event.method, outcome, draftPathGlob(event.path)].join('\u0000');
    const entry = this.entries.get(key);
    if (entry) {
      entry.count = (entry.count ?? 1) + 1;
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      this.notKept++;
      return;
    }
    this.entries.set(key, { host: event.host, port: event.port, method: event.method, path: event.path, outcome, count: 1 });
  }

  stop(): void {
    for (const unsubscribe of this.unsubscribe) unsubscribe();
  }

  /** The requests seen so far, one entry per host, port, method, outcome and path prefix, with counts. */
  requests(): ObservedRequest[] {
    return [...this.entries.values()].map((entry) => ({ ...entry }));
  }

  /** The draft policy's YAML text; `source` names what the traffic came from. */
  draft(source?: string): string {
    const text = buildDraftPolicy(this.requests(), { source, lookedUpOnly: [...this.lookedUp] });
    return this.notKept === 0 ? text : `# ${this.notKept} more requests, to hosts or paths not among the first ${this.maxEntries}, were not drafted (see the audit log).\n${text}`;
  }

  /**
   * Writes the draft to `file` atomically: a temporary file beside it, renamed over it, so a
   * reader (or a crash) never sees half a policy. Throws SrtGwError(CONFIG_INVALID) saying why.
   */
  writeDraft(file: string, source?: string): void {
    const target = resolve(file);
    const temporary = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      writeFileSync(temporary, this.draft(source), { flag: 'wx', mode: 0o644 });
      renameSync(temporary, target);
    } catch (error) {
      rmSync(temporary, { force: true });
      throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot write the draft policy ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; give --write-policy a file in a writable directory`, { cause: error });
    }
  }
}

/** Checks, before anything runs, that `file`'s directory exists, so the draft can be written at the end. */
export function checkDraftPolicyPath(file: string): void {
  const directory = dirname(resolve(file));
  let isDirectory = false;
  try {
    isDirectory = statSync(directory).isDirectory();
  } catch {
    // reported below
  }
  if (!isDirectory) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--write-policy ${file}: the directory ${directory} does not exist`);
  try {
    if (statSync(resolve(file)).isDirectory()) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--write-policy ${file}: is a directory; give a file name`);
  } catch (error) {
    if (error instanceof SrtGwError) throw error;
    // absent: it will be created
  }
}
