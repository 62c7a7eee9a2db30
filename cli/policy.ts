// `srt-gw policy ...`: check, explain, test, show, import-srt and schema. Thin: the logic lives in
// policies/; this file reads files, prints and returns exit codes (0 ok, 1 findings or failures).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { ErrorCodes, isSrtGwError, SrtGwError } from '../errors.js';
import { parseDecisionTable, renderResults, runDecisionTable } from '../policies/decision-table.js';
import { explainRequest, parseRequestUrl, renderExplanation } from '../policies/explain.js';
import { formatFinding, lintPolicy } from '../policies/lint.js';
import { loadPolicyFile } from '../policies/loader.js';
import { policyJsonSchema } from '../policies/schema.js';
import { renderShownPolicy, showPolicy } from '../policies/show.js';
import { importSrtSettingsText, renderSrtImport } from '../policies/srt-settings.js';
import type { Policy } from '../policies/types.js';

/** `policy check FILE`: loader errors or lint errors → 1; warnings alone → 0. */
export async function checkPolicy(file: string): Promise<number> {
  const policy = await loadOrReport(file);
  if (policy === null) return 1;
  // The machine's view: an inject whose env var is unset or whose file is missing here is
  // reported now rather than when the gateway refuses to start.
  const findings = lintPolicy(policy, { env: process.env, fileExists: (path) => existsSync(path) });
  for (const finding of findings) process.stdout.write(`${formatFinding(finding)}\n`);
  const errors = findings.filter((finding) => finding.severity === 'error').length;
  const warnings = findings.length - errors;
  process.stdout.write(`${file}: ${count(policy.rules.length, 'rule')}, ${count(errors, 'error')}, ${count(warnings, 'warning')}\n`);
  return errors > 0 ? 1 : 0;
}

export async function explainPolicyDecision(file: string, method: string, url: string, headerFlags: readonly string[], json: boolean): Promise<number> {
  const parsed = parseRequestUrl(method, url);
  if ('error' in parsed) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, parsed.error);
  const headers = headerFlags.map((flag): [string, string] => {
    const colon = flag.indexOf(':');
    if (colon <= 0) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `-H ${JSON.stringify(flag)} must be "Name: value"`);
    return [flag.slice(0, colon).trim(), flag.slice(colon + 1).trim()];
  });
  const policy = await loadOrReport(file);
  if (policy === null) return 1;
  const explanation = explainRequest(policy, parsed.request, headers);
  process.stdout.write(json ? `${JSON.stringify(explanation, null, 2)}\n` : renderExplanation(explanation));
  return 0;
}

/** `policy test FILE [TABLE]`: the table defaults to FILE with ".test.yaml" in place of its extension. */
export async function testPolicy(file: string, tableFile: string | undefined): Promise<number> {
  const tablePath = tableFile ?? file.replace(/\.ya?ml$/i, '') + '.test.yaml';
  const table = parseDecisionTable(await readText(tablePath, 'decision table'), tablePath);
  if (tableFile !== undefined && table.policy !== undefined && resolve(dirname(tablePath), table.policy) !== resolve(file)) {
    process.stderr.write(`note: ${tablePath} names policy ${table.policy}; testing ${file} as given on the command line\n`);
  }
  const policy = await loadOrReport(file);
  if (policy === null) return 1;
  const results = runDecisionTable(policy, table);
  process.stdout.write(renderResults(table, results));
  return results.every((result) => result.passed) ? 0 : 1;
}

/** `policy show FILE [--json]`: the policy after `extends:`, each part with where it was written. */
export async function showResolvedPolicy(file: string, json: boolean): Promise<number> {
  const policy = await loadOrReport(file);
  if (policy === null) return 1;
  process.stdout.write(json ? `${JSON.stringify(showPolicy(policy, file), null, 2)}\n` : renderShownPolicy(policy, file));
  return 0;
}

export async function importSrt(file: string): Promise<number> {
  const imported = importSrtSettingsText(await readText(file, 'srt settings file'), file);
  process.stdout.write(renderSrtImport(imported, file));
  return 0;
}

export function printPolicySchema(): number {
  process.stdout.write(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
  return 0;
}

/** Loads a policy; an invalid one is printed (file:line:column lines) and gives null. */
async function loadOrReport(file: string): Promise<Policy | null> {
  try {
    return await loadPolicyFile(file);
  } catch (error) {
    if (!isSrtGwError(error, ErrorCodes.POLICY_INVALID)) throw error;
    process.stderr.write(`${error.message}\n`);
    return null;
  }
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist; check the path' : (error as Error).message;
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `cannot read ${what} ${path}: ${reason}`, { cause: error });
  }
}
