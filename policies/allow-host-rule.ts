// The rule behind the CLI flag `--allow HOST`. Its own module so that a run with only --allow
// flags never loads the YAML parser and the schema (a third of srt-gw run's start-up).
import { ErrorCodes, SrtGwError } from '../errors.js';
import { parseHostPattern } from './host.js';
import type { Rule } from './types.js';

/** The rule behind the CLI flag `--allow HOST`: any method, path and port to that host pattern. */
export function allowHostRule(host: string): Rule {
  const parsed = parseHostPattern(host);
  if ('error' in parsed) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--allow ${JSON.stringify(host)}: the host ${parsed.error}`);
  return Object.freeze({ id: `cli-allow-${parsed.text}`, host: parsed.text, action: 'allow', protocol: 'http' });
}
