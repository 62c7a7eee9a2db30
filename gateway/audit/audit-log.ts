// The audit log: one pino JSON line per request, CONNECT decision and failed TLS handshake,
// written by subscribing to the gateway's events. The field names are the published schema
// (docs/audit-log.schema.json); change them only with a version bump.
import pino from 'pino';
import { AuditLogFile } from './audit-log-file.js';
import { EndOfTurnQueue } from '../end-of-turn-queue.js';
import type { GatewayEvents, RequestEvent } from './events.js';

/**
 * The line pino's `logger.info(event)` writes for a request event, built with one
 * JSON.stringify. Request lines are the hot path (one per proxied request): pino assembles a line
 * by concatenating each key and value, which allocated 2.8 kB of short-lived strings per 300-byte
 * line (18 % of everything the gateway allocated per request in the keep-alive bench, measured
 * with V8's sampling heap profiler). The fields are flat scalars, so the bytes are the same;
 * audit-log.test.ts holds the two formats equal. Other events, rare, stay with pino.
 */
export function requestLine(event: RequestEvent): string {
  return `{"level":30,"time":${Date.now()},${JSON.stringify(event).slice(1)}\n`;
}

/** The pino logger every other audit line goes through. */
export function auditLogger(destination: pino.DestinationStream): pino.Logger {
  return pino({ base: null, timestamp: pino.stdTimeFunctions.epochTime, messageKey: 'msg' }, destination);
}

export interface AuditLog {
  /** Opens the log file again by name (after log rotation); nothing for a descriptor. */
  reopen(): void;
  /** Flushes and closes the destination. */
  close(): Promise<void>;
}

/** `destination`: a file path (appended), or a file descriptor (2 = stderr). */
export function startAuditLog(events: GatewayEvents, destination: string | number): AuditLog {
  const stream = new AuditLogFile(destination, (lines) => events.emit('auditLinesLost', { lines }));
  // Request lines are built once per turn of the event loop, together, rather than each as its
  // request ends, in the middle of that request's socket work: the same lines, 5-6 % less gateway
  // CPU per request at 32 kept-alive connections (end-of-turn-queue.ts). Building them by hand
  // instead of with JSON.stringify gained nothing more once batched. Events are not changed after
  // they are emitted (the library's decision stream hands out copies), so a line built later is
  // the same line.
  const requestLines = new EndOfTurnQueue<RequestEvent>(
    (event) => stream.write(requestLine(event)),
    (event, error) => process.stderr.write(`srt-gw: audit log: request ${event.conn} ${event.method} ${event.host}${event.path} not logged: ${String(error)}\n`),
  );
  // Every other line goes through pino; the request lines waiting are written first, so the file
  // keeps the order in which things happened.
  const logger = auditLogger({
    write: (line: string) => {
      requestLines.flush();
      stream.write(line);
    },
  });
  let lastRateLimitedLine = 0;
  const unsubscribe = [
    events.on('request', (event) => requestLines.push(event)),
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
    reopen: () => {
      requestLines.flush();
      stream.reopen();
    },
    close: async () => {
      for (const stop of unsubscribe) stop();
      requestLines.flush();
      await stream.close();
    },
  };
}
