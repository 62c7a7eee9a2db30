// Request lines skip pino's line builder for speed (audit-log.ts says why); these hold them to the
// exact bytes pino writes for the same event, so the published format cannot drift.
import { afterEach, describe, expect, test, vi } from 'vitest';
import { auditLogger, requestLine } from './audit-log.js';
import type { RequestEvent } from './events.js';

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
