// Reading injected secrets: env, file and command sources, and the errors that fail a start —
// each naming the rule and the source, never the value.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCodes } from '../../errors.js';
import { placeholderFor } from '../../policies/credentials.js';
import { parsePolicy } from '../../policies/loader.js';
import { loadRuleCredentials } from './credential-secrets.js';
import { rejectionOf } from '../../test/support/srt-gw-error.js';

const dir = mkdtempSync(join(tmpdir(), 'srt-gw-secrets-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'secret-value-0123456789';

function policyWith(inject: string): string {
  return `version: 1\nrules:\n  - id: example-api\n    host: api.example.test\n    credentials: { header: x-api-key, inject: ${inject} }\n`;
}


describe('loadRuleCredentials', () => {
  test('reads env, file (trimmed, relative to the policy file) and command sources', async () => {
    writeFileSync(join(dir, 'key.txt'), `  ${SECRET}-file\n`);
    const policy = parsePolicy(
      [
        'version: 1',
        'rules:',
        '  - id: from-env',
        '    host: a.test',
        '    credentials: { header: x-api-key, inject: { env: UNIT_KEY } }',
        '  - id: from-file',
        '    host: b.test',
        '    credentials: { header: authorization, inject: { file: ./key.txt } }',
        '  - id: from-command',
        '    host: c.test',
        `    credentials: { query: key, inject: { command: [printf, "%s\\n", "${SECRET}-command"] } }`,
        '  - id: checks',
        '    host: d.test',
        '    credentials: [{ header: x-a, strip: true }, { header: x-b, require: ["sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"] }]',
      ].join('\n'),
      join(dir, 'policy.yaml'),
    );
    const credentials = await loadRuleCredentials(policy, { env: { UNIT_KEY: `${SECRET}-env` } });
    const secretOf = (id: string) => {
      const entry = credentials.get(id)?.[0];
      return entry?.kind === 'inject' ? entry.secret : undefined;
    };
    expect(secretOf('from-env')).toBe(`${SECRET}-env`);
    expect(secretOf('from-file')).toBe(`${SECRET}-file`);
    expect(secretOf('from-command')).toBe(`${SECRET}-command`);
    const envEntry = credentials.get('from-env')?.[0];
    expect(envEntry?.kind === 'inject' && envEntry.placeholder).toBe(placeholderFor({ kind: 'env', name: 'UNIT_KEY' }, 'from-env'));
    expect(credentials.get('checks')?.map((entry) => entry.kind)).toEqual(['strip', 'require']);
  });

  test.each([
    ['an unset variable', '{ env: UNIT_UNSET }', {}, 'environment variable UNIT_UNSET is not set'],
    ['an empty variable', '{ env: UNIT_EMPTY }', { UNIT_EMPTY: '  \n' }, 'is empty: env UNIT_EMPTY holds nothing'],
    ['a missing file', '{ file: ./missing.key }', {}, `cannot be read from file ${join(dir, 'missing.key')}: it does not exist`],
    ['a directory', `{ file: "${dir}" }`, {}, 'it is a directory'],
    ['a failing command', '{ command: [sh, -c, "echo secret-but-failing-123; exit 3"] }', {}, 'cannot be read from command sh -c echo secret-but-failing-123; exit 3: it exited with status 3'],
    ['a command that does not exist', '{ command: [srt-gw-no-such-program] }', {}, 'srt-gw-no-such-program was not found'],
    ['a line break inside the value', '{ env: UNIT_MULTI }', { UNIT_MULTI: 'first-line-12345\nsecond-line-12345' }, 'cannot be sent in a header'],
    ['a value too short to mask', '{ env: UNIT_SHORT }', { UNIT_SHORT: 'abc' }, 'shorter than 8 characters'],
    ['the placeholder itself', '{ env: UNIT_LOOP }', { UNIT_LOOP: placeholderFor({ kind: 'env', name: 'UNIT_LOOP' }, 'example-api') }, 'holds the placeholder, not the real secret'],
  ])('%s fails with SRTGW_CREDENTIAL_UNAVAILABLE, naming rule and source', async (_name, inject, env, phrase) => {
    const error = await rejectionOf(loadRuleCredentials(parsePolicy(policyWith(inject), join(dir, 'policy.yaml')), { env }));
    expect(error.code).toBe(ErrorCodes.CREDENTIAL_UNAVAILABLE);
    expect(error.message).toContain('rule example-api: the secret for x-api-key');
    expect(error.message).toContain(phrase);
    expect(error.message).toMatch(/^.*policy\.yaml:5:18: /);
    for (const value of Object.values(env)) if (!phrase.includes(value.trim())) expect(error.message).not.toContain(value.trim());
  });

  test("a preset's rule is named where it was written and where the preset was extended", async () => {
    const error = await rejectionOf(loadRuleCredentials(parsePolicy('version: 1\nextends: [preset:anthropic]\n', 'policy.yaml'), { env: {} }));
    expect(error.code).toBe(ErrorCodes.CREDENTIAL_UNAVAILABLE);
    expect(error.message).toMatch(
      /^preset:anthropic:\d+:9 \(extended at policy\.yaml:2:11\): rule anthropic\.messages: the secret for x-api-key cannot be read: environment variable ANTHROPIC_API_KEY is not set/,
    );
  });

  test('a failing command: neither its output nor its errors are in the message', async () => {
    const file = join(dir, 'printed.txt');
    writeFileSync(file, 'leaked-output-xyz-0123456789');
    const error = await rejectionOf(loadRuleCredentials(parsePolicy(policyWith(`{ command: [sh, -c, 'cat "$0"; cat "$0" >&2; exit 1', "${file}"] }`))));
    expect(error.message).toContain('it exited with status 1');
    expect(error.message).not.toContain('leaked-output-xyz');
  });

  test('rules without credentials, deny rules and tcp rules get no entry', async () => {
    const credentials = await loadRuleCredentials(parsePolicy('version: 1\nrules:\n  - id: a\n    host: a.test\n'));
    expect(credentials.size).toBe(0);
  });
});
