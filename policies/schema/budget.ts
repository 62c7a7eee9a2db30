// The schema of a rule's `budget:`: how many request bytes it may send per minute and per run.
import { z } from 'zod';
import { parseByteSize } from '../byte-size.js';
import { fieldError, hasUnknownKey, isRecord } from './issues.js';

const byteSizeError = fieldError('a size such as "10MiB" or a whole number of bytes');
const byteSize = z.union(
  [
    z.number({ error: byteSizeError }).superRefine((value, ctx) => {
      const parsed = parseByteSize(value);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    }),
    z.string({ error: byteSizeError }).superRefine((value, ctx) => {
      const parsed = parseByteSize(value);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    }),
  ],
  { error: byteSizeError },
);

export const budgetFileSchema = z
  .strictObject(
    {
      requestBytesPerMinute: byteSize
        .optional()
        .meta({ description: 'Request bytes (line, headers, body) this rule may send in any 60-second window (sliding, 1-second steps), e.g. "1MiB".' }),
      requestBytesPerRun: byteSize
        .optional()
        .meta({ description: 'Request bytes (line, headers, body) this rule may send while the gateway runs (one `srt-gw run`, or one `srt-gw serve`), e.g. "100MiB".' }),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'must be a mapping with "requestBytesPerMinute" and/or "requestBytesPerRun", such as { requestBytesPerRun: 100MiB }' : undefined,
    },
  )
  .superRefine(
    (budget, ctx) => {
      if (isRecord(budget) && !hasUnknownKey(ctx) && budget.requestBytesPerMinute === undefined && budget.requestBytesPerRun === undefined) {
        ctx.addIssue({ code: 'custom', path: [], message: 'must set "requestBytesPerMinute", "requestBytesPerRun" or both, such as { requestBytesPerRun: 100MiB }' });
      }
    },
    { when: () => true },
  )
  .meta({ description: 'Egress budget: beyond it, requests under this rule get 429. Sizes are whole bytes or strings such as "10MiB" (KiB/MiB/GiB = 1024-based, KB/MB/GB = 1000-based).' });
