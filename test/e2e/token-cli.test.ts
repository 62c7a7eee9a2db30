// `srt-gw token issue | revoke | list` as a user runs them, from the built command line: what they
// print, their exit statuses, the files they leave, and that the gateway's verifier agrees.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClientAuthenticator } from '../../identity/authenticate-client.js';
import { parsePolicy } from '../../policies/loader.js';
import { CLI_PATH, ensureBuilt } from '../support/srt-gw-run.js';

const POLICY = parsePolicy('version: 1\nrules:\n  - { id: api, host: api.example.test }\nclients:\n  - { id: laptops, issued: {} }\n');

describe('srt-gw token', () => {
  let root = '';
  let stateDir = '';
  beforeAll(() => {
    ensureBuilt();
    root = mkdtempSync(join(tmpdir(), 'srt-gw-token-cli-'));
    stateDir = join(root, 'state');
  });
  afterAll(() => {
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  const cli = (args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}) =>
    spawnSync(process.execPath, [CLI_PATH, 'token', ...args], { encoding: 'utf8', timeout: 30_000, input: options.input ?? '', env: { ...process.env, SRT_GW_JAIL: '', ...options.env } });
  const gateway = () => createClientAuthenticator(POLICY.clients!, { stateDirectory: stateDir, fileCheckIntervalMs: 0 });

  it('issue prints only the token on stdout, which the gateway accepts as the client', async () => {
    const issued = cli(['issue', '--client', 'laptops', '--ttl', '8h', '--state-dir', stateDir]);
    expect(issued.status, issued.stderr).toBe(0);
    expect(issued.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    expect(issued.stderr).toMatch(/^srt-gw: token for client laptops, jti [0-9a-f-]{36}, expires \d{4}-\d\d-\d\dT[\d:.]+Z\.$/m);
    expect(issued.stderr).toContain('http://laptops:TOKEN@HOST:PORT');
    const token = issued.stdout.trim();
    expect(await gateway().authenticate({ proxyAuthorization: `Bearer ${token}` })).toMatchObject({ ok: true, clientId: 'laptops', method: 'issued' });
    expect(statSync(join(stateDir, 'client-tokens', 'signing-key.jwk')).mode & 0o777).toBe(0o600);
    expect(statSync(join(stateDir, 'client-tokens')).mode & 0o777).toBe(0o700);
  });

  it('revoke - reads the token from stdin; list shows it revoked, and the gateway refuses it', async () => {
    const token = cli(['issue', '--client', 'laptops', '--state-dir', stateDir]).stdout.trim();
    const auth = gateway();
    expect((await auth.authenticate({ proxyAuthorization: `Bearer ${token}` })).ok).toBe(true);
    const revoked = cli(['revoke', '-', '--state-dir', stateDir], { input: `${token}\n` });
    expect(revoked.status, revoked.stderr).toBe(0);
    const jti = /^revoked jti ([0-9a-f-]{36}) \(client laptops\); gateways reading .* refuse it within seconds\n$/.exec(revoked.stdout)?.[1];
    expect(jti).toBeDefined();
    expect(await auth.authenticate({ proxyAuthorization: `Bearer ${token}` })).toMatchObject({ ok: false, code: 'client-token-revoked' });
    const list = cli(['list', '--state-dir', stateDir]);
    expect(list.status).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${jti!} +laptops +\\S+Z +revoked$`, 'm'));
    expect(list.stdout).not.toContain(token);
    const again = cli(['revoke', token, '--state-dir', stateDir]);
    expect([again.status, again.stdout]).toEqual([0, `jti ${jti!} (client laptops) was already revoked\n`]);
  });

  it('revoke --jti revokes by the id list shows; list --json gives every minted token', async () => {
    const issued = JSON.parse(cli(['issue', '--client', 'laptops', '--json', '--state-dir', stateDir]).stdout) as { token: string; jti: string; client: string; expiresAt: string };
    expect(issued).toMatchObject({ client: 'laptops', jti: expect.stringMatching(/^[0-9a-f-]{36}$/), expiresAt: expect.stringMatching(/Z$/) });
    const rows = JSON.parse(cli(['list', '--json', '--state-dir', stateDir]).stdout) as { jti: string; state: string }[];
    expect(rows.find((row) => row.jti === issued.jti)?.state).toBe('active');
    const revoked = cli(['revoke', '--jti', issued.jti, '--state-dir', stateDir]);
    expect(revoked.status, revoked.stderr).toBe(0);
    expect(await gateway().authenticate({ proxyAuthorization: `Bearer ${issued.token}` })).toMatchObject({ ok: false, code: 'client-token-revoked' });
  });

  it.each([
    ['issue without --client', ['issue'], /required option '--client <id>' not specified/],
    ['issue with a bad --ttl', ['issue', '--client', 'laptops', '--ttl', '1y'], /--ttl must be a duration such as 30m, 1h or 7d, at most 90d \(got "1y"\)/],
    ['issue with a client id that cannot be one', ['issue', '--client', 'a:b'], /--client must be the id of an "issued: \{\}" client/],
    ['revoke with neither token nor --jti', ['revoke'], /name the token to revoke/],
    ['revoke with both', ['revoke', 'x.y.z', '--jti', 'j'], /name the token to revoke/],
    ['revoke of an unknown jti', ['revoke', '--jti', 'nope'], /no token with jti nope was minted from .*; srt-gw token list shows them/],
    ['revoke of a token from another key', ['revoke', 'eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln'], /cannot revoke this token: /],
    ['an unknown subcommand', ['mint'], /unknown command 'mint'/],
  ])('%s exits 2 and says what to do', (_name, args, message) => {
    const result = cli([...args, '--state-dir', stateDir]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('without --state-dir uses $XDG_STATE_HOME/srt-gw', () => {
    const xdg = join(root, 'xdg');
    const issued = cli(['issue', '--client', 'laptops'], { env: { XDG_STATE_HOME: xdg } });
    expect(issued.status, issued.stderr).toBe(0);
    expect(existsSync(join(xdg, 'srt-gw', 'client-tokens', 'signing-key.jwk'))).toBe(true);
    expect(cli(['list'], { env: { XDG_STATE_HOME: xdg } }).stdout).toMatch(/ laptops +\S+ +active\n$/);
  });

  it('refuses to mint or revoke inside a jail, and creates nothing', () => {
    const inside = join(root, 'inside');
    const result = cli(['issue', '--client', 'laptops', '--state-dir', inside], { env: { SRT_GW_JAIL: '1' } });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('token issue cannot run inside an srt-gw jail');
    expect(existsSync(inside)).toBe(false);
  });

  it('help shows examples', () => {
    const help = cli(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('srt-gw token issue --client laptops --ttl 8h');
    expect(help.stdout).toContain('srt-gw token revoke --jti');
  });
});
