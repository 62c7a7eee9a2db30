// The schema of the `filesystem:` section: which paths the jailed command may read and write.
import { z } from 'zod';
import { fieldError } from './issues.js';

/**
 * Why a `filesystem:` path cannot be used, or undefined. Shared with the srt importer, which skips
 * such entries instead of failing.
 */
export function filesystemPathProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty; write a path such as "~/.npm", "/opt/cache" or "./build"';
  if (value.includes('\0')) return 'must not contain a NUL character';
  if (/[\n\r]/.test(value)) return 'must not contain a line break';
  if (/^~[^/]/.test(value)) {
    return `names another user's home directory; only "~" and "~/..." (your own home) are expanded, so write the absolute path instead`;
  }
  if (/[*?[]/.test(value)) {
    return 'must not contain "*", "?" or "["; globs are not supported: name the directory, which covers everything below it';
  }
  return undefined;
}

const filesystemPath = z
  .string({ error: fieldError('a path: absolute ("/opt/keys"), in your home directory ("~/.npm") or relative to this policy file ("./build")') })
  .superRefine((value, ctx) => {
    const problem = filesystemPathProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
  });

function filesystemPaths(description: string) {
  return z
    .array(filesystemPath, { error: fieldError('a list of paths, such as ["~/.npm", "./build"]') })
    .optional()
    .meta({ description });
}

export const filesystemFileSchema = z
  .strictObject(
    {
      denyRead: filesystemPaths(
        'Hidden inside the jail (reading gives "Permission denied"), besides the built-in credential paths such as ~/.ssh and ~/.aws.',
      ),
      allowRead: filesystemPaths(
        "Readable again although inside a hidden path (denyRead or built-in). Cannot re-expose srt-gw's own CA and state directories.",
      ),
      allowWrite: filesystemPaths(
        "Writable besides the working directory and the jail's private /tmp. Must exist when the command starts; shell startup files, .git/hooks, .git/config and editor settings inside stay read-only.",
      ),
      denyWrite: filesystemPaths('Read-only even inside the working directory or an allowWrite path; wins over allowWrite.'),
      writeMode: z
        .enum(['direct', 'overlay'], { error: fieldError('"direct" or "overlay"') })
        .optional()
        .meta({
          description:
            'direct (default): the command writes the working directory and allowWrite paths in place. overlay (Linux): its writes go to a private layer in your state directory; when it ends, srt-gw applies the safe ones and holds the rest (git hooks and configuration, startup and policy files, new executable bits, outside symlinks, files you changed meanwhile) for `srt-gw changes`.',
        }),
      deletes: z
        .enum(['apply', 'hold'], { error: fieldError('"apply" or "hold"') })
        .optional()
        .meta({ description: 'With writeMode overlay: apply (default) the files and directories the command deleted, or hold every deletion for review.' }),
    },
    {
      error: (issue) =>
        issue.code === 'invalid_type'
          ? 'must be a mapping with any of "denyRead", "allowRead", "allowWrite", "denyWrite", "writeMode" and "deletes"'
          : undefined,
    },
  )
  .meta({
    description:
      'What the command run by `srt-gw run` may read and write. Paths are absolute ("/opt/keys"), "~" or "~/..." (your home directory), or relative to the directory of this policy file ("./build", "build"); symlinks are resolved, a directory covers everything below it, and globs are not supported.',
  });
