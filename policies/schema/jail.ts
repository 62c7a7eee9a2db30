// The schema of the `jail:` section: local binding and the host unix sockets the command may use.
import { z } from 'zod';
import { fieldError } from './issues.js';

export const jailFileSchema = z
  .strictObject(
    {
      allowLocalBinding: z
        .boolean({ error: fieldError('true or false') })
        .optional()
        .meta({
          description:
            'Let the command listen on loopback (default false). macOS: without it the Seatbelt profile refuses every bind and accept. Linux: accepted and changes nothing — the jail has its own private loopback, so a listener there is always allowed and reachable only from inside the jail.',
        }),
      allowUnixSockets: z
        .array(
          z.string().refine((path) => path.startsWith('/') || path === '~' || path.startsWith('~/'), {
            error: 'must be an absolute path or start with "~/" (your home directory), such as "/var/run/docker.sock" or "~/.ssh/agent.sock"',
          }),
          { error: fieldError('a list of socket paths') },
        )
        .optional()
        .meta({
          description:
            'Host unix sockets the command may connect to (absolute or "~/..." paths; symlinks are followed). Linux: every other unix socket the jail did not create itself is refused (EACCES), wherever it is visible; a socket under /run or /tmp is mounted into the jail\'s private /run or /tmp. Lists from extended files are appended.',
        }),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'must be a mapping such as { allowLocalBinding: true }' : undefined) },
  )
  .meta({ description: 'How `srt-gw run` jails the command, beyond its network requests and files.' });
