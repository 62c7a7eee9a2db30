// srt-settings.ts: srt's README examples convert to policies that decide as srt documents.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { parsePolicy } from './loader.js';
import { compilePolicy } from './match.js';
import { importSrtSettings, importSrtSettingsText, renderSrtImport, type SrtImport } from './srt-settings.js';

const testdata = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata');

function importFixture(name: string): SrtImport {
  return importSrtSettingsText(readFileSync(join(testdata, name), 'utf8'), name);
}

/** Decides through the printed YAML, so the round trip import → YAML → loader is covered too. */
function decider(imported: SrtImport, file = 'srt.json') {
  const compiled = compilePolicy(parsePolicy(renderSrtImport(imported, file), 'imported.yaml'));
  return (host: string, port = 443) => compiled.decide({ host, port, method: 'GET', path: '/' });
}

describe('srt README examples', () => {
  test('the complete configuration example: allowed domains allow, denied domains deny, the rest is denied', () => {
    const decide = decider(importFixture('srt-complete.json'));
    expect(decide('github.com')).toMatchObject({ action: 'allow', ruleId: 'srt-allow-github.com' });
    expect(decide('api.github.com')).toMatchObject({ action: 'allow', ruleId: 'srt-allow-star.github.com' });
    expect(decide('objects.githubusercontent.com')).toMatchObject({ action: 'deny', ruleId: 'default-deny' });
    expect(decide('registry.npmjs.org', 80)).toMatchObject({ action: 'allow', ruleId: 'srt-allow-star.npmjs.org' });
    expect(decide('malicious.com')).toMatchObject({ action: 'deny', ruleId: 'srt-deny-malicious.com' });
    expect(decide('example.com')).toMatchObject({ action: 'deny', ruleId: 'default-deny' });
  });

  test('the complete configuration example: every jail-only or unsupported option is a warning', () => {
    expect(importFixture('srt-complete.json').warnings).toEqual([
      'srt also lets non-HTTP TCP (its SOCKS proxy) reach allowedDomains; these rules check HTTP(S) requests only — add "protocol: tcp" rules with a port for ssh, databases and the like',
      'network.allowUnixSockets ["/var/run/docker.sock"]: carried over as jail.allowUnixSockets; on Linux srt-gw run refuses every other unix socket the jail did not create itself (host sockets under /run and /tmp are mounted in only when listed)',
      'filesystem.allowWrite[0] "." skipped: srt-gw always lets the command write its working directory',
      `filesystem.allowWrite[3] "/tmp" skipped: the jail's /tmp is private, empty and always writable; the host's /tmp is never shared`,
      'filesystem paths ["src/","test/",".env","config/production.json"] are relative: srt resolves them against the working directory, srt-gw against the directory of the policy file — save the converted policy in the directory you run commands from, or make the paths absolute',
      'srt-gw also hides credential paths such as ~/.ssh, ~/.aws and ~/.npmrc by default and keeps shell startup files, .git/hooks and .git/config read-only; filesystem.allowRead reopens a hidden path',
      'ignoreViolations has no srt-gw equivalent; ignored',
      'enableWeakerNestedSandbox has no srt-gw equivalent; ignored',
      'enableWeakerNetworkIsolation has no srt-gw equivalent; ignored',
      'allowAppleEvents has no srt-gw equivalent; ignored',
    ]);
  });

  test('the GitHub recipe allows GitHub and nothing else', () => {
    const decide = decider(importFixture('srt-github.json'));
    for (const host of ['github.com', 'lfs.github.com', 'api.github.com', 'codeload.github.com']) expect(decide(host).action).toBe('allow');
    expect(decide('gitlab.com').action).toBe('deny');
  });

  test('the MCP filesystem example: an empty allowedDomains means no network access', () => {
    const imported = importFixture('srt-mcp-filesystem.json');
    expect(imported.policy.rules).toEqual([]);
    expect(decider(imported)('anthropic.com').action).toBe('deny');
    expect(imported.warnings).toContain('network.allowedDomains is empty: no network access, as in srt');
  });

  test('port suffixes, bracketed IPv6, "*:22" deny-all and tlsTerminate', () => {
    const imported = importFixture('srt-ports-and-tls.json');
    const decide = decider(imported);
    expect(decide('api.example.com', 443).action).toBe('allow');
    expect(decide('api.example.com', 8080).action).toBe('deny');
    expect(decide('a.example.com', 8443).action).toBe('allow');
    expect(decide('::1', 8080)).toMatchObject({ action: 'allow', ruleId: 'srt-allow---1-8080' });
    expect(decide('internal-mtls.example.net', 22)).toMatchObject({ action: 'deny', ruleId: 'srt-deny-any-22' });
    expect(decide('secret.example.com', 8443)).toMatchObject({ action: 'deny', ruleId: 'srt-deny-secret.example.com' });
    expect(imported.warnings.some((warning) => warning.startsWith('network.tlsTerminate is ignored'))).toBe(true);
  });
});

describe('filesystem settings', () => {
  test('the complete configuration example carries its lists over, minus "." and /tmp, and the YAML loads', () => {
    const imported = importFixture('srt-complete.json');
    expect(imported.policy.filesystem).toEqual({
      denyRead: ['~/.ssh'],
      allowWrite: ['src/', 'test/'],
      denyWrite: ['.env', 'config/production.json'],
    });
    const loaded = parsePolicy(renderSrtImport(imported, 'srt-complete.json'), '/project/imported.yaml');
    expect(loaded.filesystem?.denyRead.map((entry) => entry.path)).toEqual(['~/.ssh']);
    expect(loaded.filesystem?.allowWrite.map((entry) => entry.path)).toEqual(['src/', 'test/']);
    expect(loaded.filesystem?.denyWrite.map((entry) => entry.path)).toEqual(['.env', 'config/production.json']);
    expect(loaded.filesystem?.allowRead).toEqual([]);
  });

  test('the MCP filesystem example: denyWrite in the home directory carries over with no relative-path warning', () => {
    const imported = importFixture('srt-mcp-filesystem.json');
    expect(imported.policy.filesystem).toEqual({ denyWrite: ['~/sensitive-folder'] });
    expect(imported.warnings.some((warning) => warning.includes('are relative'))).toBe(false);
  });

  test('allowRead keeps its meaning: re-allowing within a denied region', () => {
    const imported = importSrtSettings({ filesystem: { denyRead: ['/opt/corp'], allowRead: ['/opt/corp/public'] } }, 'inline');
    expect(imported.policy.filesystem).toEqual({ denyRead: ['/opt/corp'], allowRead: ['/opt/corp/public'] });
  });

  test('no "." in allowWrite: srt kept the working directory read-only, srt-gw does not — a warning says so', () => {
    const imported = importSrtSettings({ filesystem: { allowWrite: ['/opt/cache'] } }, 'inline');
    expect(imported.warnings).toContain(
      'srt let the command write its working directory only with "." in filesystem.allowWrite; srt-gw always lets it, so run it from a directory it may change',
    );
    expect(importFixture('srt-ports-and-tls.json').policy.filesystem).toBeUndefined();
  });

  test.each([
    ['a "*" glob', { denyRead: ['~/.config/*/token'] }, 'filesystem.denyRead[0] "~/.config/*/token" skipped: srt-gw does not support globs; the jail works on concrete paths, so name the directory, which covers everything below it'],
    ['a "**" glob', { allowWrite: ['src/**/*.ts'] }, 'filesystem.allowWrite[0] "src/**/*.ts" skipped: srt-gw does not support globs; the jail works on concrete paths, so name the directory, which covers everything below it'],
    ['a "?" glob', { denyWrite: ['file?.txt'] }, 'filesystem.denyWrite[0] "file?.txt" skipped: srt-gw does not support globs; the jail works on concrete paths, so name the directory, which covers everything below it'],
    ['a "[" glob', { allowRead: ['~/.aws/[ab]'] }, 'filesystem.allowRead[0] "~/.aws/[ab]" skipped: srt-gw does not support globs; the jail works on concrete paths, so name the directory, which covers everything below it'],
    ['another user\'s home', { denyRead: ['~root/.ssh'] }, `filesystem.denyRead[0] "~root/.ssh" skipped: the path names another user's home directory; only "~" and "~/..." (your own home) are expanded, so write the absolute path instead`],
    ['an empty path', { denyWrite: [''] }, 'filesystem.denyWrite[0] "" skipped: the path must not be empty; write a path such as "~/.npm", "/opt/cache" or "./build"'],
    ['macOS /private/tmp', { allowWrite: ['/private/tmp'] }, `filesystem.allowWrite[0] "/private/tmp" skipped: the jail's /tmp is private, empty and always writable; the host's /tmp is never shared`],
  ])('%s is skipped with a warning and the rest still imports', (_name, lists: Record<string, string[] | undefined>, warning) => {
    const imported = importSrtSettings({ filesystem: { ...lists, denyRead: [...(lists.denyRead ?? []), '/opt/keys'] } }, 'inline');
    expect(imported.warnings).toContain(warning);
    expect(imported.policy.filesystem).toEqual({ denyRead: ['/opt/keys'] });
    expect(() => parsePolicy(renderSrtImport(imported, 'inline'))).not.toThrow();
  });

  test('a filesystem list that is not a list of strings is refused', () => {
    expect(() => importSrtSettings({ filesystem: { denyRead: '~/.ssh' } }, 'bad.json')).toThrow('bad.json: "denyRead" must be a list of strings');
  });
});

describe('jail settings', () => {
  test('network.allowUnixSockets becomes jail.allowUnixSockets; a relative path is skipped with a warning', () => {
    const imported = importSrtSettings({ network: { allowedDomains: [], allowUnixSockets: ['/var/run/docker.sock', '~/.colima/docker.sock', 'agent.sock'] } }, 'inline');
    expect(imported.policy.jail).toEqual({ allowUnixSockets: ['/var/run/docker.sock', '~/.colima/docker.sock'] });
    expect(imported.warnings).toContain('network.allowUnixSockets[2] "agent.sock" skipped: srt-gw needs an absolute or "~/..." socket path');
    expect(parsePolicy(renderSrtImport(imported, 'inline'), 'imported.yaml').jail?.allowUnixSockets).toEqual(['/var/run/docker.sock', '~/.colima/docker.sock']);
  });

  test('network.allowLocalBinding true becomes jail.allowLocalBinding, with a warning on what differs', () => {
    const imported = importSrtSettings({ network: { allowedDomains: [], allowLocalBinding: true } }, 'inline');
    expect(imported.policy.jail).toEqual({ allowLocalBinding: true });
    expect(imported.warnings).toContain(
      'network.allowLocalBinding true: carried over as jail.allowLocalBinding; on macOS the command may listen on loopback, but connecting to its own listener still goes through the gateway (add a rule for localhost); on Linux the command may always listen on its own loopback (its network namespace is private, so nothing outside can connect)',
    );
    // Through the YAML loader, as `srt-gw run --srt-settings` does.
    expect(parsePolicy(renderSrtImport(imported, 'inline'), 'imported.yaml').jail?.allowLocalBinding).toBe(true);
  });

  test('false or left out: no jail section, no warning', () => {
    for (const network of [{ allowLocalBinding: false }, {}]) {
      const imported = importSrtSettings({ network: { allowedDomains: [], ...network } }, 'inline');
      expect(imported.policy.jail).toBeUndefined();
      expect(imported.warnings.some((warning) => warning.includes('allowLocalBinding'))).toBe(false);
    }
    expect(importFixture('srt-complete.json').policy.jail).toEqual({ allowUnixSockets: ['/var/run/docker.sock'] });
  });

  test('a value that is not true or false is refused', () => {
    expect(() => importSrtSettings({ network: { allowLocalBinding: 'yes' } }, 'bad.json')).toThrow('bad.json: "allowLocalBinding" must be true or false');
  });
});

describe('wildcard and precedence semantics', () => {
  const decide = decider(importSrtSettings({ network: { allowedDomains: ['*.example.com'], deniedDomains: ['secret.example.com'] } }, 'inline'));

  test('"*.example.com" matches subdomains at any depth', () => {
    expect(decide('api.example.com').action).toBe('allow');
    expect(decide('a.b.example.com').action).toBe('allow');
  });

  test('"*.example.com" does not match the apex example.com', () => {
    expect(decide('example.com').action).toBe('deny');
  });

  test('denied beats allowed', () => {
    expect(decide('secret.example.com')).toMatchObject({ action: 'deny', ruleId: 'srt-deny-secret.example.com' });
  });

  test('denied beats allowed even when the allow is an exact name', () => {
    const exact = decider(importSrtSettings({ network: { allowedDomains: ['x.example.com'], deniedDomains: ['*.example.com'] } }, 'inline'));
    expect(exact('x.example.com').action).toBe('deny');
  });
});

describe('problems', () => {
  test('a bad entry is skipped with a warning, the rest still imports', () => {
    const imported = importSrtSettings({ network: { allowedDomains: ['2001:db8::1:443', 'a..b', 'ok.example.com'] } }, 'inline');
    expect(imported.policy.rules.map((rule) => rule.host)).toEqual(['ok.example.com']);
    expect(imported.warnings.slice(0, 2)).toEqual([
      'network.allowedDomains[0] "2001:db8::1:443" skipped: an IPv6 address must be bracketed, such as "[2001:db8::1]"',
      expect.stringMatching(/^network\.allowedDomains\[1\] "a\.\.b" skipped: the host /),
    ]);
  });

  test('unknown keys are named', () => {
    const imported = importSrtSettings({ network: { allowedDomains: [], allowDomains: ['x'] }, colour: 'blue' }, 'inline');
    expect(imported.warnings).toContain('network.allowDomains is not an srt setting srt-gw knows; ignored');
    expect(imported.warnings).toContain('colour is not an srt setting srt-gw knows; ignored');
  });

  test.each([
    ['[]', 'bad.json: the settings must be a JSON object, such as {"network": {"allowedDomains": ["example.com"]}}'],
    ['{"network": {"allowedDomains": "github.com"}}', 'bad.json: "allowedDomains" must be a list of strings'],
    ['{"network": 1}', 'bad.json: "network" must be an object'],
  ])('%s is refused', (text, message) => {
    let error: unknown;
    try {
      importSrtSettingsText(text, 'bad.json');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SrtGwError);
    expect((error as SrtGwError).code).toBe(ErrorCodes.SRT_SETTINGS_INVALID);
    expect((error as SrtGwError).message).toBe(message);
  });

  test('invalid JSON names the file', () => {
    expect(() => importSrtSettingsText('{', 'bad.json')).toThrow(/^bad\.json: not valid JSON: /);
  });
});

describe('network.parentProxy', () => {
  test('becomes --upstream-proxy and --no-upstream-proxy-for, with what does not carry over named', () => {
    const imported = importSrtSettings(
      {
        network: {
          allowedDomains: ['example.com'],
          parentProxy: { http: 'http://plain-proxy.corp:3128', https: 'http://user:pw@proxy.corp:8080', noProxy: 'internal.corp, .svc.local,10.0.0.0/8,git.corp:22' },
        },
      },
      'srt.json',
    );
    expect(imported.upstreamProxy).toEqual({ url: 'http://user:pw@proxy.corp:8080', bypass: ['internal.corp', '.svc.local', 'git.corp'] });
    expect(imported.warnings).toContainEqual(expect.stringContaining('network.parentProxy.noProxy entry "10.0.0.0/8" skipped'));
    expect(imported.warnings).toContainEqual(expect.stringContaining('network.parentProxy.http (http://plain-proxy.corp:3128) is not carried over'));
    expect(imported.warnings).toContainEqual(expect.stringContaining('SRT_GW_UPSTREAM_PROXY_AUTH'));
    const advice = imported.warnings.find((warning) => warning.startsWith('network.parentProxy: run srt-gw with'));
    expect(advice).toContain('--upstream-proxy http://***@proxy.corp:8080 --no-upstream-proxy-for internal.corp,.svc.local,git.corp');
    // The rendered file never shows the credentials.
    expect(renderSrtImport(imported, 'srt.json')).not.toContain('user:pw');
  });

  test('falls back to parentProxy.http, as srt does', () => {
    expect(importSrtSettings({ network: { allowedDomains: [], parentProxy: { http: 'http://proxy:3128' } } }, 'srt.json').upstreamProxy).toEqual({ url: 'http://proxy:3128', bypass: [] });
  });

  test('is absent without a parentProxy', () => {
    expect(importSrtSettings({ network: { allowedDomains: ['example.com'] } }, 'srt.json').upstreamProxy).toBeUndefined();
  });
});
