// Decision tables: a YAML list of requests and the decision each must get, run against a policy
// (`srt-gw policy test`), so a policy change that flips a decision fails CI. Pure: text in, results out.
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { parseRequestText, type RequestLine } from './explain.js';
import { formatFieldPath } from './issue-messages.js';
import { compilePolicy } from './match.js';
import type { Decision, Policy, RuleAction } from './types.js';
import { YamlPositions } from './yaml-positions.js';

export interface DecisionCase {
  readonly name: string;
  /** As written: "GET https://api.example.test/v1/x". */
  readonly requestText: string;
  readonly request: RequestLine;
  readonly expect: RuleAction;
  /** The rule id that must decide, when given. */
  readonly rule?: string;
  readonly line: number;
}

export interface DecisionTable {
  readonly file: string;
  /** The policy file named in the table, as written (relative to the table). */
  readonly policy?: string;
  readonly cases: readonly DecisionCase[];
}

export interface CaseResult {
  readonly case: DecisionCase;
  readonly decision: Decision;
  readonly passed: boolean;
}

const requestError = 'must be "METHOD URL", such as "GET https://api.example.test/v1/x"';

const caseSchema = z.strictObject(
  {
    name: z.string({ error: 'must be a string' }).optional(),
    request: z.string({ error: requestError }).superRefine((value, ctx) => {
      const parsed = parseRequestText(value);
      if ('error' in parsed) ctx.addIssue({ code: 'custom', message: parsed.error });
    }),
    expect: z.enum(['allow', 'deny'], { error: 'must be "allow" or "deny"' }),
    rule: z.string({ error: 'must be a rule id' }).optional(),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? 'must be a mapping with "request" and "expect"' : undefined) },
);

const tableSchema = z.strictObject(
  {
    policy: z.string({ error: 'must be the path of a policy file, relative to this table' }).optional(),
    cases: z.array(caseSchema, { error: 'must be a list of cases, each with "request" and "expect"' }).min(1, { error: 'must hold at least one case' }),
  },
  { error: (issue) => (issue.code === 'invalid_type' ? 'must be a YAML mapping with "cases:"' : undefined) },
);

/** Parses and validates a table; errors are "file:line:column: what to fix", one per line. */
export function parseDecisionTable(text: string, file = '<inline>'): DecisionTable {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false });
  const positions = new YamlPositions(document, lineCounter);
  if (document.errors.length > 0) {
    const lines = document.errors.map((error) => {
      const at = positions.ofOffset(error.pos[0]);
      return `${file}:${at.line}:${at.column}: YAML syntax error: ${error.message.split('\n')[0] ?? ''}`;
    });
    throw new SrtGwError(ErrorCodes.TABLE_INVALID, lines.join('\n'));
  }
  const data: unknown = document.toJS({ maxAliasCount: 100 });
  const result = tableSchema.safeParse(data);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        return issue.keys.map((key) => ({ at: positions.of([...issue.path, key], 'key'), text: `${prefix(issue.path)}unknown key '${key}'` }));
      }
      const field = issue.path.length === 0 ? 'the table' : formatFieldPath(issue.path);
      return [{ at: positions.of(issue.path), text: `${field} ${issue.message}` }];
    });
    problems.sort((a, b) => a.at.line - b.at.line || a.at.column - b.at.column);
    throw new SrtGwError(ErrorCodes.TABLE_INVALID, problems.map(({ at, text }) => `${file}:${at.line}:${at.column}: ${text}`).join('\n'));
  }
  const cases = result.data.cases.map((entry, index): DecisionCase => {
    const parsed = parseRequestText(entry.request);
    if ('error' in parsed) throw new Error(`table schema let an invalid request through: ${entry.request}`);
    return {
      name: entry.name ?? entry.request,
      requestText: entry.request,
      request: parsed.request,
      expect: entry.expect,
      ...(entry.rule === undefined ? {} : { rule: entry.rule }),
      line: positions.of(['cases', index]).line,
    };
  });
  return { file, ...(result.data.policy === undefined ? {} : { policy: result.data.policy }), cases };
}

function prefix(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '' : `${formatFieldPath(path)}: `;
}

export function runDecisionTable(policy: Policy, table: DecisionTable): CaseResult[] {
  const compiled = compilePolicy(policy);
  return table.cases.map((entry) => {
    const { host, port, method, path } = entry.request;
    const decision = compiled.decide({ host, port, method, path });
    const passed = decision.action === entry.expect && (entry.rule === undefined || decision.ruleId === entry.rule);
    return { case: entry, decision, passed };
  });
}

/** One line per case, a diff under each failure, then "N passed, N failed". */
export function renderResults(table: DecisionTable, results: readonly CaseResult[]): string {
  const lines: string[] = [];
  for (const result of results) {
    const entry = result.case;
    if (result.passed) {
      lines.push(`ok   ${entry.name}`);
      continue;
    }
    lines.push(`FAIL ${entry.name} (${table.file}:${entry.line})`);
    lines.push(`       request:  ${entry.requestText}`);
    lines.push(`     - expected: ${entry.expect}${entry.rule === undefined ? '' : ` by rule ${entry.rule}`}`);
    lines.push(`     + got:      ${result.decision.action} by rule ${result.decision.ruleId} (${result.decision.reason})`);
  }
  const failed = results.filter((result) => !result.passed).length;
  lines.push(`${results.length - failed} passed, ${failed} failed`);
  return `${lines.join('\n')}\n`;
}
