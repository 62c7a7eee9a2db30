// How a rule's or path's origin reads in messages: "preset:github:38:5, extended at policy.yaml:3:5".
import type { SourceLocation } from './types.js';

/** "preset:npm-read:12:5". */
export function formatLocation(location: SourceLocation): string {
  return `${location.file}:${location.line}:${location.column}`;
}

/** The `extends:` entries that brought a part in, nearest first. */
export function extendedChain(location: SourceLocation | undefined): string[] {
  const chain: string[] = [];
  for (let at = location?.extendedAt; at !== undefined; at = at.extendedAt) chain.push(formatLocation(at));
  return chain;
}

/** "preset:npm-read:12:5, extended at policy.yaml:2:5". */
export function describeOrigin(location: SourceLocation | undefined): string {
  if (location === undefined) return 'added by a command-line flag or the library API';
  return [formatLocation(location), ...extendedChain(location).map((at) => `extended at ${at}`)].join(', ');
}
