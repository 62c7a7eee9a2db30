// The schema of `allowPrivateDestinations:`: the private ranges the gateway may connect to.
import { z } from 'zod';
import { parseHostPattern } from '../host.js';
import { fieldError } from './issues.js';

const privateDestinationError = fieldError('a CIDR block such as "127.0.0.0/8" or "10.1.2.0/24", or one IP address');
const privateDestination = z.string({ error: privateDestinationError }).superRefine((value, ctx) => {
  const parsed = parseHostPattern(value);
  if ('error' in parsed) {
    ctx.addIssue({ code: 'custom', message: parsed.error });
  } else if (parsed.pattern.kind !== 'address' && parsed.pattern.kind !== 'range') {
    ctx.addIssue({ code: 'custom', message: `must be a CIDR block such as "127.0.0.0/8" or one IP address, not a host name (got ${JSON.stringify(value)})` });
  }
});

export const allowPrivateDestinationsSchema = z
  .array(privateDestination, { error: fieldError('a list of CIDR blocks, such as ["127.0.0.0/8"]') })
  .meta({
    description:
      'Private ranges the gateway may connect to when an allowed name resolves into them. By default, after resolving a name the gateway refuses loopback, RFC 1918, CGNAT, link-local (cloud metadata), unique-local, multicast and its own addresses unless a rule names the address or range, or --resolve pins the name to it.',
  });
