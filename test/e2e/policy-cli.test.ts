// `srt-gw policy ...` as a reviewer and a CI job run it: the built CLI, real files, exit codes.
// Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/bin/srt-gw.js');
const TESTDATA = 'policies/testdata';
const scratch = mkdtempSync(join(tmpdir(), 'srt-gw-policy-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function policy(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, 'policy', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('srt-gw policy check', () => {
  it('a clean policy exits 0 with a summary', () => {
    const { status, stdout } = policy('check', `${TESTDATA}/lint-clean.yaml`);
    expect(stdout).toBe(`${TESTDATA}/lint-clean.yaml: 3 rules, 0 errors, 0 warnings\n`);
    expect(status).toBe(0);
  });

  it('warnings alone exit 0 and are printed as file:line:column lines', () => {
    const { status, stdout } = policy('check', `${TESTDATA}/lint-shadowed.yaml`);
    expect(stdout).toContain(
      `${TESTDATA}/lint-shadowed.yaml:16:5: warning: rule api-read is shadowed by rule api-all (line 12): it matches every request api-read matches, so api-read never decides [shadowed-rule]\n`,
    );
    expect(stdout).toMatch(/: 6 rules, 0 errors, 4 warnings\n$/);
    expect(status).toBe(0);
  });

  it('a plain-text secret is an error: exit 1', () => {
    const { status, stdout } = policy('check', `${TESTDATA}/lint-secrets.yaml`);
    expect(stdout).toMatch(/lint-secrets\.yaml:\d+:5: error: rule openai paths\[0\] holds what looks like an Anthropic\/OpenAI-style API key; .*\[plaintext-secret\]/);
    expect(status).toBe(1);
  });

  it('a policy that does not validate prints the loader errors and exits 1', () => {
    const { status, stdout, stderr } = policy('check', `${TESTDATA}/invalid-port.yaml`);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^policies\/testdata\/invalid-port\.yaml:\d+:\d+: rules\[0\]\.port must be a whole number from 1 to 65535/);
    expect(status).toBe(1);
  });
});

describe('srt-gw policy explain', () => {
  it('shows normalisation, each rule naming the host, the decision and the 403 body', () => {
    const { status, stdout } = policy('explain', 'policies/examples/basic.yaml', 'GET', 'https://api.example.test/v1/%2e%2e/admin', '-H', 'Accept: */*');
    expect(stdout).toContain('path:    /v1/%2e%2e/admin → /admin\n');
    expect(stdout).toContain('  no match allow api-read (line 23), host api.example.test: path /admin matches none of /v1/**\n');
    expect(stdout).toContain('decision: DENY by default-deny: ');
    expect(stdout).toContain('response: 403 {"error":"denied","code":"path-not-allowed","rule":"default-deny",');
    expect(stdout).toContain('note: headers given (Accept) do not affect the decision');
    expect(status).toBe(0);
  });

  it('--json prints the structure', () => {
    const { status, stdout } = policy('explain', 'policies/examples/basic.yaml', 'get', 'https://api.example.test/v1/files/a', '--json');
    const explanation = JSON.parse(stdout) as { decision: { action: string; ruleId: string }; denyBody: unknown };
    expect(explanation.decision).toEqual({ action: 'allow', ruleId: 'api-read', reason: 'allowed by rule api-read', code: 'allowed-by-rule' });
    expect(explanation.denyBody).toBeNull();
    expect(status).toBe(0);
  });

  it('a URL that is not http(s) is a usage error', () => {
    const { status, stderr } = policy('explain', 'policies/examples/basic.yaml', 'GET', 'api.example.test/v1');
    expect(stderr).toBe('srt-gw: URL "api.example.test/v1" must start with http:// or https://\n');
    expect(status).toBe(2);
  });
});

describe('srt-gw policy test', () => {
  it('a table that holds exits 0', () => {
    const { status, stdout } = policy('test', `${TESTDATA}/table-policy.yaml`, `${TESTDATA}/table-pass.yaml`);
    expect(stdout).toMatch(/^ok {3}reads are allowed\n/);
    expect(stdout).toMatch(/\n5 passed, 0 failed\n$/);
    expect(status).toBe(0);
  });

  it('a table that does not hold exits 1 with expected-vs-got', () => {
    const { status, stdout } = policy('test', `${TESTDATA}/table-policy.yaml`, `${TESTDATA}/table-fail.yaml`);
    expect(stdout).toContain(
      [
        `FAIL uploads are allowed (${TESTDATA}/table-fail.yaml:7)`,
        '       request:  POST https://api.example.test/v1/upload',
        '     - expected: allow by rule api-read',
        '     + got:      deny by rule default-deny (rule api-read allows api.example.test but not POST /v1/upload)',
      ].join('\n'),
    );
    expect(stdout).toMatch(/\n1 passed, 2 failed\n$/);
    expect(status).toBe(1);
  });

  it('the table defaults to FILE.test.yaml next to the policy', () => {
    writeFileSync(join(scratch, 'p.yaml'), readFileSync(join(ROOT, TESTDATA, 'table-policy.yaml')));
    writeFileSync(join(scratch, 'p.test.yaml'), 'cases:\n  - request: GET https://x.cdn.example.test/a\n    expect: allow\n    rule: cdn\n');
    const { status, stdout } = policy('test', join(scratch, 'p.yaml'));
    expect(stdout).toBe('ok   GET https://x.cdn.example.test/a\n1 passed, 0 failed\n');
    expect(status).toBe(0);
  });

  it('an invalid table names file:line:column', () => {
    const { status, stderr } = policy('test', `${TESTDATA}/table-policy.yaml`, `${TESTDATA}/table-invalid.yaml`);
    expect(stderr).toContain(`srt-gw: ${TESTDATA}/table-invalid.yaml:7:14: cases[0].request must be "METHOD URL"`);
    expect(status).toBe(1);
  });
});

describe('srt-gw policy show', () => {
  it('prints the policy after extends, each rule with where it was written, as YAML that loads', () => {
    const { status, stdout } = policy('show', `${TESTDATA}/presets/github.yaml`);
    expect(stdout).toContain(`#   preset:github with {"pushRepos":["me/project","my-org/*"]} (at ${TESTDATA}/presets/github.yaml:4:5)\n`);
    expect(stdout).toMatch(/\n {2}# preset:github:\d+:5, extended at policies\/testdata\/presets\/github\.yaml:4:5\n {2}- id: github\.git-push\n/);
    expect(stdout).toContain('    paths: ["/me/project/git-receive-pack", "/my-org/*/git-receive-pack", "/me/project.git/git-receive-pack", "/my-org/*.git/git-receive-pack"]\n');
    expect(status).toBe(0);
    const shown = join(scratch, 'shown.yaml');
    writeFileSync(shown, stdout);
    expect(policy('check', shown).status).toBe(0);
  });

  it('--json prints each rule with its source and the extends chain', () => {
    const { status, stdout } = policy('show', '--json', `${TESTDATA}/presets/npm-read.yaml`);
    const shown = JSON.parse(stdout) as { rules: { id: string; source: string; extendedAt: string[] }[] };
    expect(shown.rules[0]).toMatchObject({ id: 'npm-read.packuments', extendedAt: [`${TESTDATA}/presets/npm-read.yaml:3:11`] });
    expect(shown.rules[0]?.source).toMatch(/^preset:npm-read:\d+:5$/);
    expect(status).toBe(0);
  });

  it('prints the filesystem writeMode and deletes, merged through extends, and the dns section', () => {
    writeFileSync(join(scratch, 'modes-base.yaml'), 'version: 1\nrules: []\nfilesystem:\n  writeMode: overlay\n  deletes: apply\n');
    const file = join(scratch, 'modes.yaml');
    writeFileSync(file, 'version: 1\nextends: [./modes-base.yaml]\nrules: []\nfilesystem:\n  deletes: hold\n  denyRead: [/srv/secrets]\ndns:\n  maxNamesPerWildcard: 42\n');
    const { status, stdout } = policy('show', file);
    expect(stdout).toContain('filesystem:\n  denyRead:\n    - /srv/secrets # ');
    expect(stdout).toMatch(/\n {2}writeMode: overlay\n {2}deletes: hold\n/);
    expect(stdout).toContain('dns:\n  maxNamesPerWildcard: 42\n');
    expect(status).toBe(0);
    const shown = join(scratch, 'modes-shown.yaml');
    writeFileSync(shown, stdout);
    expect(policy('check', shown).status).toBe(0);
    expect(policy('show', shown).stdout).toMatch(/\n {2}writeMode: overlay\n {2}deletes: hold\n/);
  });

  it('--json has the filesystem writeMode and deletes and the dns section; null when not written', () => {
    writeFileSync(join(scratch, 'modes-json.yaml'), 'version: 1\nrules: []\nfilesystem:\n  writeMode: overlay\n  deletes: hold\ndns:\n  maxNamesPerWildcard: 42\n');
    const { status, stdout } = policy('show', '--json', join(scratch, 'modes-json.yaml'));
    const shown = JSON.parse(stdout) as { filesystem: { writeMode?: string; deletes?: string; denyRead: unknown[] }; dns: unknown };
    expect(shown.filesystem).toMatchObject({ writeMode: 'overlay', deletes: 'hold', denyRead: [] });
    expect(shown.dns).toEqual({ maxNamesPerWildcard: 42 });
    expect(status).toBe(0);
    const plain = JSON.parse(policy('show', '--json', `${TESTDATA}/lint-clean.yaml`).stdout) as { dns: unknown };
    expect(plain.dns).toBeNull();
  });

  it('a policy whose extends does not resolve prints the error and exits 1', () => {
    const { status, stdout, stderr } = policy('show', `${TESTDATA}/invalid-extends-unknown-preset.yaml`);
    expect(stdout).toBe('');
    expect(stderr).toBe(`${TESTDATA}/invalid-extends-unknown-preset.yaml:3:11: extends[0] names no preset "npm"; the presets are anthropic, crates-read, github, go-proxy, npm-read, openai, pypi-read\n`);
    expect(status).toBe(1);
  });
});

describe('srt-gw policy import-srt', () => {
  it('prints YAML that loads and a warning header', () => {
    const { status, stdout } = policy('import-srt', `${TESTDATA}/srt-complete.json`);
    expect(stdout).toMatch(/^# srt-gw policy converted from srt settings policies\/testdata\/srt-complete\.json/);
    expect(stdout).toContain('#   - filesystem.allowWrite[0] "." skipped: srt-gw always lets the command write its working directory\n');
    expect(stdout).toContain('filesystem:\n  denyRead:\n    - ~/.ssh\n');
    expect(stdout).toContain('  - id: srt-allow-star.github.com\n    host: "*.github.com"\n');
    expect(status).toBe(0);
    const file = join(scratch, 'imported.yaml');
    writeFileSync(file, stdout);
    const check = policy('check', file);
    expect(check.stdout).toContain(': 7 rules, 0 errors,');
    expect(check.status).toBe(0);
  });
});

describe('srt-gw policy schema', () => {
  it('prints the published JSON Schema', () => {
    const { status, stdout } = policy('schema');
    expect(stdout).toBe(readFileSync(join(ROOT, 'policies/policy.schema.json'), 'utf8'));
    expect(status).toBe(0);
  });
});
