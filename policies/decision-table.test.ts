// decision-table.ts: parsing with file:line:column errors, pass and fail tables, the report text.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { parseDecisionTable, renderResults, runDecisionTable } from './decision-table.js';
import { parsePolicy } from './loader.js';
import { errorOf } from '../test/support/srt-gw-error.js';

const testdata = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata');
const read = (name: string) => readFileSync(join(testdata, name), 'utf8');
const policy = parsePolicy(read('table-policy.yaml'), 'table-policy.yaml');


describe('parseDecisionTable', () => {
  test('reads cases, the policy path and each case line', () => {
    const table = parseDecisionTable(read('table-pass.yaml'), 'table-pass.yaml');
    expect(table.policy).toBe('./table-policy.yaml');
    expect(table.cases).toHaveLength(5);
    expect(table.cases[0]).toMatchObject({ name: 'reads are allowed', expect: 'allow', rule: 'api-read', line: 4 });
    expect(table.cases[3]).toMatchObject({ name: 'GET https://img.cdn.example.test/logo.png', line: 16 });
  });

  test('table-invalid.yaml produces its exact "# expect:" errors', () => {
    const text = read('table-invalid.yaml');
    const expected = text
      .split('\n')
      .filter((line) => line.startsWith('# expect: '))
      .map((line) => line.slice('# expect: '.length))
      .join('\n');
    const error = errorOf(() => parseDecisionTable(text, 'table-invalid.yaml'));
    expect(error.code).toBe(ErrorCodes.TABLE_INVALID);
    expect(error.message).toBe(expected);
  });

  test.each([
    ['cases: []', 't.yaml:1:8: cases must hold at least one case'],
    ['cases: [', 't.yaml:1:9: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['- a', 't.yaml:1:1: the table must be a YAML mapping with "cases:"'],
  ])('%j is refused', (text, message) => {
    expect(errorOf(() => parseDecisionTable(text, 't.yaml')).message).toBe(message);
  });
});

describe('runDecisionTable', () => {
  test('a table that holds: every case ok', () => {
    const table = parseDecisionTable(read('table-pass.yaml'), 'table-pass.yaml');
    const results = runDecisionTable(policy, table);
    expect(results.every((result) => result.passed)).toBe(true);
    expect(renderResults(table, results)).toBe(
      [
        'ok   reads are allowed',
        'ok   admin is denied even for reads',
        'ok   dot-dot cannot climb out of /v1',
        'ok   GET https://img.cdn.example.test/logo.png',
        'ok   wildcard does not match the apex',
        '5 passed, 0 failed',
        '',
      ].join('\n'),
    );
  });

  test('a table that does not hold: expected-vs-got for each failure', () => {
    const table = parseDecisionTable(read('table-fail.yaml'), 'table-fail.yaml');
    const results = runDecisionTable(policy, table);
    expect(results.map((result) => result.passed)).toEqual([true, false, false]);
    expect(renderResults(table, results)).toBe(
      [
        'ok   reads are allowed',
        'FAIL uploads are allowed (table-fail.yaml:7)',
        '       request:  POST https://api.example.test/v1/upload',
        '     - expected: allow by rule api-read',
        '     + got:      deny by rule default-deny (rule api-read allows api.example.test but not POST /v1/upload)',
        'FAIL admin is denied by the admin rule (table-fail.yaml:11)',
        '       request:  DELETE https://api.example.test/v1/admin/users/1',
        '     - expected: deny by rule default-deny',
        '     + got:      deny by rule block-admin (denied by rule block-admin)',
        '1 passed, 2 failed',
        '',
      ].join('\n'),
    );
  });
});
