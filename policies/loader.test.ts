// Table-driven tests for loader.ts; each case's name says what it proves.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { allowHostRule, loadPolicyFile, loadPolicyFileSync, parsePolicy } from './loader.js';
import { policyJsonSchema } from './schema.js';
import { errorOf } from '../test/support/srt-gw-error.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const testdata = join(here, 'testdata');
const EXPECT_PREFIX = '# expect: ';

/** The message a fixture must produce: its leading "# expect: " lines, one problem per line. */
function expectedMessage(text: string): string {
  const lines: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(EXPECT_PREFIX)) break;
    lines.push(line.slice(EXPECT_PREFIX.length));
  }
  return lines.join('\n');
}


const fixtures = readdirSync(testdata)
  .filter((name) => name.startsWith('invalid-') && name.endsWith('.yaml'))
  .sort();

describe('bad-config fixtures produce their exact error', () => {
  test('there are fixtures to check', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(8);
  });

  test.each(fixtures)('%s', (name) => {
    const text = readFileSync(join(testdata, name), 'utf8');
    const expected = expectedMessage(text);
    expect(expected, `${name} needs a first line "${EXPECT_PREFIX}<message>"`).not.toBe('');
    // Named as given, resolved in testdata/: the files extends-*.yaml are extended from there.
    const error = errorOf(() => parsePolicy(text, name, { baseDirectory: testdata }));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message).toBe(expected);
  });
});

describe('parsePolicy', () => {
  test('converts the file shape into normalised runtime rules', () => {
    const policy = parsePolicy(
      [
        'version: 1',
        'rules:',
        '  - id: api',
        '    host: API.Example.TEST.',
        '    methods: [get, Post, GET]',
        '    paths: ["/v1//%7euser/**", "/v1/x"]',
        '  - id: pg',
        '    host: "::ffff:10.0.0.0/104"',
        '    port: 5432',
        '    protocol: tcp',
        '    action: deny',
      ].join('\n'),
      'inline.yaml',
    );
    expect(policy).toEqual({
      version: 1,
      rules: [
        {
          id: 'api',
          host: 'api.example.test',
          methods: ['GET', 'POST'],
          paths: ['/v1/~user/**', '/v1/x'],
          action: 'allow',
          protocol: 'http',
          source: { file: 'inline.yaml', line: 3, column: 5 },
        },
        {
          id: 'pg',
          host: '10.0.0.0/8',
          port: 5432,
          action: 'deny',
          protocol: 'tcp',
          source: { file: 'inline.yaml', line: 7, column: 5 },
        },
      ],
    });
  });

  test('the runtime policy cannot be changed after loading', () => {
    const policy = parsePolicy('version: 1\nrules:\n  - id: a\n    host: a.test\n');
    expect(Object.isFrozen(policy)).toBe(true);
    expect(Object.isFrozen(policy.rules)).toBe(true);
    expect(Object.isFrozen(policy.rules[0])).toBe(true);
  });

  test('an empty rule list is a valid policy that denies everything', () => {
    expect(parsePolicy('version: 1\nrules: []\n').rules).toEqual([]);
  });

  test('$schema is allowed for editors', () => {
    expect(parsePolicy('$schema: ./policy.schema.json\nversion: 1\nrules: []\n').version).toBe(1);
  });

  test.each([
    [
      'unknown top-level key is named with a suggestion',
      'version: 1\nrules: []\nrulez: []\n',
      "<inline>:3:1: unknown key 'rulez'; did you mean 'rules'?",
    ],
    [
      'unknown key without a close match lists the allowed keys',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    colour: red\n',
      "<inline>:5:5: rules[0]: unknown key 'colour'; the keys allowed here are 'id', 'host', 'port', 'methods', 'paths', 'action', 'protocol', 'credentials', 'budget'",
    ],
    [
      'key in the wrong case',
      'version: 1\nrules:\n  - id: a\n    Host: a.test\n',
      [
        '<inline>:3:5: rules[0].host is missing; add the host this rule is for, such as "api.example.test"',
        "<inline>:4:5: rules[0]: unknown key 'Host'; did you mean 'host'?",
      ].join('\n'),
    ],
    [
      'version as a string',
      'version: "1"\nrules: []\n',
      '<inline>:1:10: version must be 1, the only policy format version (got "1")',
    ],
    [
      'rules missing',
      'version: 1\n',
      '<inline>:1:1: rules is missing; add "rules:" followed by a list of rules',
    ],
    [
      'rules not a list',
      'version: 1\nrules: allow-all\n',
      '<inline>:2:8: rules must be a list of rules (got "allow-all")',
    ],
    [
      'a list instead of a mapping',
      '- version: 1\n',
      '<inline>:1:1: the policy file must be a YAML mapping with "version: 1" and "rules:" (got a list)',
    ],
    [
      'empty host value points at its key',
      'version: 1\nrules:\n  - id: a\n    host:\n',
      '<inline>:4:5: rules[0].host must be a host name, "*.domain", an IP address or a CIDR block (got an empty value)',
    ],
    [
      'port as a string',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    port: "443"\n',
      '<inline>:5:11: rules[0].port must be a whole number from 1 to 65535 (got "443")',
    ],
    [
      'fractional port',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    port: 44.3\n',
      '<inline>:5:11: rules[0].port must be a whole number from 1 to 65535 (got 44.3)',
    ],
    [
      'methods as a string',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    methods: GET\n',
      '<inline>:5:14: rules[0].methods must be a list of HTTP methods, such as [GET, HEAD] (got "GET")',
    ],
    [
      'empty methods',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    methods: []\n',
      '<inline>:5:14: rules[0].methods must not be empty; leave methods out to allow any method',
    ],
    [
      'path with a query string',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    paths: ["/search?q=*"]\n',
      '<inline>:5:13: rules[0].paths[0] must not contain "?"; rules match the path only and the query string is ignored (got "/search?q=*")',
    ],
    [
      'bad action',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    action: block\n',
      '<inline>:5:13: rules[0].action must be "allow" or "deny" (got "block")',
    ],
    [
      'bad protocol',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    protocol: udp\n',
      '<inline>:5:15: rules[0].protocol must be "http" or "tcp" (got "udp")',
    ],
    [
      'tcp with methods',
      'version: 1\nrules:\n  - id: a\n    host: a.test\n    port: 22\n    protocol: tcp\n    methods: [GET]\n',
      '<inline>:7:14: rules[0].methods is not allowed with protocol tcp, which carries no HTTP requests; remove it or use protocol http',
    ],
    [
      'id too long',
      `version: 1\nrules:\n  - id: ${'a'.repeat(65)}\n    host: a.test\n`,
      `<inline>:3:9: rules[0].id must be 1-64 characters from A-Z a-z 0-9 . _ - (got "${'a'.repeat(65)}")`,
    ],
    [
      'duplicate YAML key',
      'version: 1\nrules: []\nversion: 1\n',
      '<inline>:3:1: YAML syntax error: this key appears twice in the same mapping; keep one',
    ],
    [
      'two YAML documents',
      'version: 1\nrules: []\n---\nversion: 1\n',
      '<inline>:3:1: YAML syntax error: a policy file holds one YAML document; remove the second "---"',
    ],
    [
      'tab indentation',
      'version: 1\nrules:\n\t- id: a\n',
      '<inline>:3:1: YAML syntax error: tabs are not allowed as indentation; indent with spaces',
    ],
  ])('%s', (_name, text, expected) => {
    const error = errorOf(() => parsePolicy(text));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message).toBe(expected);
  });

  test('the filesystem section keeps paths as written, with the policy directory and positions', () => {
    const policy = parsePolicy(
      [
        'version: 1',
        'rules: []',
        'filesystem:',
        '  denyRead: ["~/secrets", /opt/corp/keys]',
        '  allowRead:',
        '    - ~/.aws/config',
        '  allowWrite: ["~", "./build/", "cache", "../shared"]',
        '  denyWrite: []',
      ].join('\n'),
      '/srv/project/policy.yaml',
    );
    const at = (path: string, line: number, column: number) => ({
      path,
      baseDirectory: '/srv/project',
      source: { file: '/srv/project/policy.yaml', line, column },
    });
    expect(policy.filesystem).toEqual({
      denyRead: [at('~/secrets', 4, 14), at('/opt/corp/keys', 4, 27)],
      allowRead: [at('~/.aws/config', 6, 7)],
      allowWrite: [at('~', 7, 16), at('./build/', 7, 21), at('cache', 7, 33), at('../shared', 7, 42)],
      denyWrite: [],
    });
    expect(Object.isFrozen(policy.filesystem)).toBe(true);
    expect(Object.isFrozen(policy.filesystem?.denyRead[0])).toBe(true);
  });

  test('keys left out of the filesystem section are empty lists; no section means no filesystem field', () => {
    expect(parsePolicy('version: 1\nrules: []\nfilesystem: {allowWrite: [/opt/cache]}\n').filesystem).toMatchObject({
      denyRead: [],
      allowRead: [],
      denyWrite: [],
    });
    expect('filesystem' in parsePolicy('version: 1\nrules: []\n')).toBe(false);
  });

  test('the jail section: allowLocalBinding with where it was written; left out, no jail field', () => {
    const policy = parsePolicy('version: 1\nrules: []\njail:\n  allowLocalBinding: true\n', 'p.yaml');
    expect(policy.jail).toEqual({ allowLocalBinding: true, sources: { allowLocalBinding: { file: 'p.yaml', line: 4, column: 22 } } });
    expect(Object.isFrozen(policy.jail)).toBe(true);
    expect(parsePolicy('version: 1\nrules: []\njail: { allowLocalBinding: false }\n').jail?.allowLocalBinding).toBe(false);
    expect('jail' in parsePolicy('version: 1\nrules: []\n')).toBe(false);
    expect('jail' in parsePolicy('version: 1\nrules: []\njail: {}\n')).toBe(false);
  });

  test('relative filesystem paths of a relative policy file name are anchored at its absolute directory', () => {
    const policy = parsePolicy('version: 1\nrules: []\nfilesystem: {denyWrite: [.env]}\n', 'conf/policy.yaml');
    expect(policy.filesystem?.denyWrite[0]?.baseDirectory).toBe(join(process.cwd(), 'conf'));
  });

  test.each([
    ['a path that merely contains "~" later', '/opt/a~b'],
    ['the home directory itself', '~'],
    ['odd but legal characters', '/opt/with space/$x\'quote'],
  ])('filesystem path accepted: %s', (_name, path) => {
    expect(parsePolicy(`version: 1\nrules: []\nfilesystem:\n  denyRead: [${JSON.stringify(path)}]\n`).filesystem?.denyRead[0]?.path).toBe(path);
  });

  test.each([
    ['a line break', '"/opt/a\\nb"', '<inline>:4:14: filesystem.denyRead[0] must not contain a line break (got "/opt/a\\nb")'],
    ['a "?" glob', '"~/file?.txt"', '<inline>:4:14: filesystem.denyRead[0] must not contain "*", "?" or "["; globs are not supported: name the directory, which covers everything below it (got "~/file?.txt")'],
    ['a "[" glob', '"~/file[0-9]"', '<inline>:4:14: filesystem.denyRead[0] must not contain "*", "?" or "["; globs are not supported: name the directory, which covers everything below it (got "~/file[0-9]")'],
    ['a number', '42', '<inline>:4:14: filesystem.denyRead[0] must be a path: absolute ("/opt/keys"), in your home directory ("~/.npm") or relative to this policy file ("./build") (got 42)'],
    ['"~user" without a slash', '"~alice"', `<inline>:4:14: filesystem.denyRead[0] names another user's home directory; only "~" and "~/..." (your own home) are expanded, so write the absolute path instead (got "~alice")`],
  ])('filesystem path refused: %s', (_name, yamlValue, expected) => {
    const error = errorOf(() => parsePolicy(`version: 1\nrules: []\nfilesystem:\n  denyRead: [${yamlValue}]\n`));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message).toBe(expected);
  });

  test('alias bombs are refused, not expanded', () => {
    const lines = ['version: 1', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    lines.push('rules: []');
    const error = errorOf(() => parsePolicy(lines.join('\n'), 'bomb.yaml'));
    expect(error.code).toBe(ErrorCodes.POLICY_INVALID);
    expect(error.message).toMatch(/^bomb\.yaml:1:1: YAML could not be read: /);
  });
});

describe('credentials and budgets', () => {
  test('one mapping or a list become credential rules with normalised names, sources and hashes', () => {
    const policy = parsePolicy(
      [
        'version: 1',
        'rules:',
        '  - id: one',
        '    host: a.test',
        '    credentials: { header: X-Api-Key, inject: { env: EXAMPLE_API_KEY } }',
        '  - id: many',
        '    host: b.test',
        '    credentials:',
        '      - { header: Authorization, scheme: basic, username: bot, inject: { file: keys/b.key } }',
        '      - { query: token, require: ["sha256:2C26B46B68FFC68FF99B453C1D30413413422D706483BFA0F98A5E886266E7AE"] }',
        '      - { header: authorization-extra, strip: true }',
        '      - { header: x-other, inject: { command: [pass, show, b] } }',
      ].join('\n'),
      '/etc/srt-gw/policy.yaml',
    );
    expect(policy.rules[0]?.credentials).toEqual([
      {
        location: { kind: 'header', name: 'x-api-key', scheme: 'raw' },
        action: { kind: 'inject', source: { kind: 'env', name: 'EXAMPLE_API_KEY' } },
        source: { file: '/etc/srt-gw/policy.yaml', line: 5, column: 18 },
      },
    ]);
    expect(policy.rules[1]?.credentials?.map((credential) => [credential.location, credential.action, credential.source?.line])).toEqual([
      [{ kind: 'header', name: 'authorization', scheme: 'basic', username: 'bot' }, { kind: 'inject', source: { kind: 'file', path: '/etc/srt-gw/keys/b.key', written: 'keys/b.key' } }, 9],
      [{ kind: 'query', name: 'token' }, { kind: 'require', sha256: ['2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae'] }, 10],
      [{ kind: 'header', name: 'authorization-extra', scheme: 'raw' }, { kind: 'strip' }, 11],
      [{ kind: 'header', name: 'x-other', scheme: 'raw' }, { kind: 'inject', source: { kind: 'command', argv: ['pass', 'show', 'b'], cwd: '/etc/srt-gw' } }, 12],
    ]);
    expect(Object.isFrozen(policy.rules[1]?.credentials?.[0]?.action)).toBe(true);
  });

  test('authorization defaults to Bearer', () => {
    const policy = parsePolicy('version: 1\nrules:\n  - id: a\n    host: a.test\n    credentials: { header: authorization, inject: { env: K } }\n');
    expect(policy.rules[0]?.credentials?.[0]?.location).toEqual({ kind: 'header', name: 'authorization', scheme: 'bearer' });
  });

  test.each([
    [1048576, 1048576],
    ['1000', 1000],
    ['10MiB', 10 * 1024 * 1024],
    ['1.5 KiB', 1536],
    ['2 MB', 2_000_000],
    ['1GiB', 1024 ** 3],
    [0, 0],
  ])('budget size %j is %d bytes', (written, bytes) => {
    const policy = parsePolicy(`version: 1\nrules:\n  - id: a\n    host: a.test\n    budget: { requestBytesPerRun: ${JSON.stringify(written)} }\n`);
    expect(policy.rules[0]?.budget).toEqual({ requestBytesPerRun: bytes });
  });

  test('"~/" secret files are in the home directory of the gateway user', () => {
    const policy = parsePolicy('version: 1\nrules:\n  - id: a\n    host: a.test\n    credentials: { header: x-k, inject: { file: ~/.config/k } }\n');
    const action = policy.rules[0]?.credentials?.[0]?.action;
    expect(action?.kind === 'inject' && action.source.kind === 'file' && action.source.path).toBe(join(homedir(), '.config/k'));
  });
});

describe('loadPolicyFile', () => {
  const directory = mkdtempSync(join(tmpdir(), 'srt-gw-policy-'));
  const valid = join(directory, 'policy.yaml');
  writeFileSync(valid, 'version: 1\nrules:\n  - id: a\n    host: a.test\n');
  const invalid = join(directory, 'invalid.yaml');
  writeFileSync(invalid, 'version: 1\nrules:\n  - id: a\n    host: a.*.test\n');
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  test('loads a file and records where each rule came from', async () => {
    const policy = await loadPolicyFile(valid);
    expect(policy.rules[0]?.source).toEqual({ file: valid, line: 3, column: 5 });
  });

  test('the sync variant gives the same policy', async () => {
    expect(loadPolicyFileSync(valid)).toEqual(await loadPolicyFile(valid));
  });

  test('errors name the file as given', async () => {
    const asyncError: unknown = await loadPolicyFile(invalid).catch((error: unknown) => error);
    expect(asyncError).toBeInstanceOf(SrtGwError);
    expect((asyncError as SrtGwError).message.startsWith(`${invalid}:4:11: rules[0].host `)).toBe(true);
    expect(errorOf(() => loadPolicyFileSync(invalid)).message).toBe((asyncError as SrtGwError).message);
  });

  test('a missing file is POLICY_UNREADABLE and says what to check', async () => {
    const missing = join(directory, 'missing.yaml');
    await expect(loadPolicyFile(missing)).rejects.toMatchObject({
      code: ErrorCodes.POLICY_UNREADABLE,
      message: `cannot read policy file ${missing}: it does not exist; check the path`,
    });
    expect(errorOf(() => loadPolicyFileSync(missing)).code).toBe(ErrorCodes.POLICY_UNREADABLE);
  });

  test('a directory is POLICY_UNREADABLE', async () => {
    await expect(loadPolicyFile(directory)).rejects.toMatchObject({ code: ErrorCodes.POLICY_UNREADABLE });
  });

  test('the documented example loads', async () => {
    const policy = await loadPolicyFile(join(here, 'examples', 'basic.yaml'));
    expect(policy.rules.map((rule) => rule.id)).toEqual(['api-upload', 'api-read', 'block-admin', 'cdn', 'lab-network', 'postgres']);
    expect(policy.rules[0]?.methods).toEqual(['POST', 'PUT']);
  });
});

describe('allowHostRule', () => {
  test.each([
    ['api.example.test', { id: 'cli-allow-api.example.test', host: 'api.example.test', action: 'allow', protocol: 'http' }],
    ['Registry.NPMJS.org.', { id: 'cli-allow-registry.npmjs.org', host: 'registry.npmjs.org', action: 'allow', protocol: 'http' }],
    ['*.github.com', { id: 'cli-allow-*.github.com', host: '*.github.com', action: 'allow', protocol: 'http' }],
    ['10.0.0.0/8', { id: 'cli-allow-10.0.0.0/8', host: '10.0.0.0/8', action: 'allow', protocol: 'http' }],
  ])('--allow %s', (host, expected) => {
    expect(allowHostRule(host)).toEqual(expected);
  });

  test('a bad host is CONFIG_INVALID and says why', () => {
    const error = errorOf(() => allowHostRule('api.*.test'));
    expect(error.code).toBe(ErrorCodes.CONFIG_INVALID);
    expect(error.message).toMatch(/^--allow "api\.\*\.test": the host has a "\*" that is not the whole first label/);
  });
});

test('the published JSON Schema describes the file shape', () => {
  const schema = policyJsonSchema();
  expect(schema).toMatchObject({
    type: 'object',
    required: ['version'],
    anyOf: [{ required: ['rules'] }, { required: ['extends'] }],
    additionalProperties: false,
    properties: {
      version: { const: 1 },
      rules: {
        type: 'array',
        items: {
          required: ['id', 'host'],
          additionalProperties: false,
          properties: {
            port: { type: 'integer', minimum: 1, maximum: 65535 },
            action: { enum: ['allow', 'deny'], default: 'allow' },
            protocol: { enum: ['http', 'tcp'], default: 'http' },
          },
        },
      },
      filesystem: {
        type: 'object',
        additionalProperties: false,
        properties: {
          denyRead: { type: 'array', items: { type: 'string' } },
          allowRead: { type: 'array', items: { type: 'string' } },
          allowWrite: { type: 'array', items: { type: 'string' } },
          denyWrite: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  });
  expect((schema.required as string[]).includes('filesystem')).toBe(false);
});
