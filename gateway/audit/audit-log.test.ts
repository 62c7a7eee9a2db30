// Request lines skip pino's line builder for speed (audit-log.ts says why); these hold them to the
// exact bytes pino writes for the same event, so the published format cannot drift. They are also
// built a loop turn after their request ends: the file must still keep the order of events.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { auditLogger, requestLine, startAuditLog } from './audit-log.js';
import { GatewayEvents, type RequestEvent } from './events.js';

function pinoLine(event: RequestEvent): string {
  const written: string[] = [];
  auditLogger({ write: (line: string) => written.push(line) }).info(event);
  expect(written).toHaveLength(1);
  return written[0]!;
}

const allowed: RequestEvent = {
  kind: 'request',
  conn: 'c12',
  protocol: 'http/1.1',
  method: 'GET',
  host: 'api.example.test',
  port: 443,
  path: '/v1/files/report.txt',
  decision: 'allow',
  rule: 'api-read',
  reason: 'matched rule api-read',
  code: 'allowed-by-rule',
  step: 'policy',
  status: 200,
  bytesIn: 0,
  bytesOut: 1024,
  durationMs: 0.878,
};

const cases: [string, RequestEvent][] = [
  ['an allowed request', allowed],
  ['a framing refusal: no rule (null), status 400', { ...allowed, decision: 'deny', rule: null, step: 'framing', status: 400, reason: 'Content-Length together with Transfer-Encoding' }],
  [
    'an upstream failure with every optional field',
    { ...allowed, protocol: 'h2', decision: 'error', step: 'upstream', status: 502, upstreamError: 'certificate', monitored: true, credential: 'injected', grpcStatus: 7 },
  ],
  ['quotes, backslashes, control characters and non-ASCII in strings', { ...allowed, path: '/a"b\\c\td\u0001é😀', reason: 'x'.repeat(150) + '"\n' }],
  ['an optional field set to undefined is left out', { ...allowed, upstreamError: undefined, credential: undefined }],
  ['fractional and large numbers', { ...allowed, durationMs: 12345.678, bytesOut: 2 ** 40 + 1 }],
];

describe('requestLine', () => {
  afterEach(() => vi.useRealTimers());

  test.each(cases)('%s: the same bytes as pino', (_, event) => {
    vi.useFakeTimers({ now: 1795869296156 });
    const line = requestLine(event);
    expect(line).toBe(pinoLine(event));
    expect(line.endsWith('}\n')).toBe(true);
    expect(JSON.parse(line)).toEqual({ level: 30, time: 1795869296156, ...JSON.parse(JSON.stringify(event)) });
  });

  test('the time is the moment of writing, in epoch milliseconds', () => {
    vi.useFakeTimers({ now: 1_000 });
    expect(JSON.parse(requestLine(allowed)).time).toBe(1_000);
    vi.setSystemTime(2_500);
    expect(JSON.parse(requestLine(allowed)).time).toBe(2_500);
  });
});

describe('startAuditLog', () => {
  const connect = { kind: 'connect', conn: 'c13', client: '127.0.0.1:5000', host: 'api.example.test', port: 443, decision: 'allow', rule: 'api-read', reason: 'matched rule api-read', code: 'allowed-by-rule' } as const;

  function logLines(path: string): Record<string, unknown>[] {
    return readFileSync(path, 'utf8')
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  test('request lines, built a loop turn later, keep their place among the other lines and are all written by close()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srt-gw-audit-'));
    try {
      const path = join(dir, 'audit.log');
      const events = new GatewayEvents('test');
      const log = startAuditLog(events, path);
      events.emit('request', { ...allowed, path: '/first' });
      events.emit('request', { ...allowed, path: '/second' });
      events.emit('connect', connect);
      events.emit('request', { ...allowed, path: '/third' });
      await new Promise((resolve) => setImmediate(resolve));
      events.emit('request', { ...allowed, path: '/fourth' });
      events.emit('connect', { ...connect, conn: 'c14' });
      events.emit('request', { ...allowed, path: '/fifth' });
      await log.close(); // in the same turn as the last request: its line must not be lost
      expect(logLines(path).map((line) => (line.kind === 'request' ? line.path : line.conn))).toEqual(['/first', '/second', 'c13', '/third', '/fourth', 'c14', '/fifth']);
      events.emit('request', { ...allowed, path: '/after-close' });
      await new Promise((resolve) => setImmediate(resolve));
      expect(logLines(path)).toHaveLength(7);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
