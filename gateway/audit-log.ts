// The audit log: one pino JSON line per request, CONNECT decision and failed TLS handshake,
// written by subscribing to the gateway's events. The field names are the published schema
// (docs/audit-log.schema.json); change them only with a version bump.
import pino from 'pino';
import type { GatewayEvents } from './events.js';

export interface AuditLog {
  /** Flushes and closes the destination. */
  close(): Promise<void>;
}

/** `destination`: a file path (appended), or a file descriptor (2 = stderr). */
export function startAuditLog(events: GatewayEvents, destination: string | number): AuditLog {
  // Lines are batched (one write per 4 KiB instead of one per line: the per-line write was ~5 %
  // of gateway CPU under load) and flushed at least every 100 ms, so a quiet gateway's last
  // decisions still reach the file promptly.
  const stream = pino.destination({ dest: destination, sync: false, mkdir: typeof destination === 'string', minLength: 4096 });
  const flushTimer = setInterval(() => {
    try {
      stream.flush();
    } catch {
      // not open yet: the next tick will flush
    }
  }, 100).unref();
  const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.epochTime, messageKey: 'msg' }, stream);
  let lastRateLimitedLine = 0;
  const unsubscribe = [
    events.on('request', (event) => logger.info(event)),
    events.on('connect', (event) => logger.info(event)),
    events.on('tls', (event) => {
      if (event.outcome === 'failed') logger.warn(event);
    }),
    events.on('policyReload', (event) => (event.outcome === 'ok' ? logger.info(event) : logger.error(event))),
    events.on('dns', (event) => {
      // A flood would otherwise become a flood of log lines: rate-limited queries are counted
      // in metrics and logged at most once a second.
      if (event.decision === 'rate-limited') {
        const now = Date.now();
        if (now - lastRateLimitedLine < 1000) return;
        lastRateLimitedLine = now;
      }
      logger.info({ kind: 'dns', ...event });
    }),
  ];
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const stop of unsubscribe) stop();
        clearInterval(flushTimer);
        const finish = () => {
          try {
            stream.flushSync();
          } catch {
            // not yet open or already closed: nothing buffered to lose
          }
          if (typeof destination === 'number') {
            resolve(); // never close stderr
            return;
          }
          stream.once('close', () => resolve());
          stream.end();
        };
        if ((stream as unknown as { fd: number }).fd >= 0) finish();
        else stream.once('ready', finish);
      }),
  };
}
