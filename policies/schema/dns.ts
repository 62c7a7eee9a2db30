// The schema of the `dns:` section: settings of the gateway's DNS for the sandbox.
import { z } from 'zod';
import { fieldError } from './issues.js';

export const dnsFileSchema = z
  .strictObject(
    {
      maxNamesPerWildcard: z
        .number({ error: fieldError('a whole number of names, such as 300') })
        .int({ error: fieldError('a whole number of names, such as 300') })
        .min(1, { error: fieldError('at least 1') })
        .max(1_000_000, { error: fieldError('at most 1000000') })
        .optional()
        .meta({
          description:
            'Distinct names one wildcard rule ("*.example.test", "*") may admit per gateway run (default 300). Each new name under a wildcard costs an upstream DNS lookup that reaches the zone\'s own servers when the program connects, so many new names are a DNS tunnel; names beyond the cap are refused.',
        }),
    },
    { error: fieldError('a mapping, such as { maxNamesPerWildcard: 300 }') },
  )
  .meta({ description: "Settings of the gateway's DNS for the sandbox." });
