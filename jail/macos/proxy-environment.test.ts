// Every client family's proxy setting points at the gateway, nothing exempts a destination, the
// caller's own JVM flags and git settings survive, and the CA variables name the bundle.
import { describe, expect, it } from 'vitest';
import { CA_BUNDLE_VARIABLES, jailEnvironment } from '../jail-environment.js';
import { proxyEnvironment, proxyUrl } from './proxy-environment.js';

const proxy = { host: '127.0.0.1', port: 41234 };
const URL = 'http://127.0.0.1:41234';
const BUNDLE = '/private/var/folders/zz/T/srt-gw-run-1-x/jail/ca-bundle.pem';

describe('proxyEnvironment', () => {
  const env = proxyEnvironment({ proxy, caBundle: BUNDLE });

  it.each([
    ['HTTP_PROXY'],
    ['http_proxy'],
    ['HTTPS_PROXY'],
    ['https_proxy'],
    ['ALL_PROXY'],
    ['all_proxy'],
    ['npm_config_proxy'],
    ['npm_config_https_proxy'],
    ['YARN_HTTP_PROXY'],
    ['YARN_HTTPS_PROXY'],
    ['PIP_PROXY'],
    ['CARGO_HTTP_PROXY'],
    ['GLOBAL_AGENT_HTTP_PROXY'],
  ])('%s names the gateway', (name) => {
    expect(env[name]).toBe(URL);
  });

  it('exempts nothing: NO_PROXY, no_proxy and npm\'s noproxy are set and empty', () => {
    expect(env.NO_PROXY).toBe('');
    expect(env.no_proxy).toBe('');
    expect(env.npm_config_noproxy).toBe('');
  });

  it('turns on Node\'s built-in proxy support', () => {
    expect(env.NODE_USE_ENV_PROXY).toBe('1');
  });

  it('sets http.proxy for git through GIT_CONFIG_*, which outranks ~/.gitconfig', () => {
    expect(env.GIT_CONFIG_COUNT).toBe('1');
    expect(env.GIT_CONFIG_KEY_0).toBe('http.proxy');
    expect(env.GIT_CONFIG_VALUE_0).toBe(URL);
  });

  it('appends to the git settings the caller already passes that way', () => {
    const base = { GIT_CONFIG_COUNT: '2', GIT_CONFIG_KEY_0: 'user.name', GIT_CONFIG_VALUE_0: 'x', GIT_CONFIG_KEY_1: 'core.pager', GIT_CONFIG_VALUE_1: 'cat' };
    const composed: Record<string, string> = { ...base, ...proxyEnvironment({ proxy, caBundle: BUNDLE, base }) };
    expect(composed.GIT_CONFIG_COUNT).toBe('3');
    expect(composed.GIT_CONFIG_KEY_0).toBe('user.name');
    expect(composed.GIT_CONFIG_KEY_2).toBe('http.proxy');
    expect(composed.GIT_CONFIG_VALUE_2).toBe(URL);
  });

  it.each([['-1'], ['abc'], ['1e3'], ['99999']])('starts over from 0 when the inherited GIT_CONFIG_COUNT is %j (git would refuse it)', (count) => {
    const env = proxyEnvironment({ proxy, caBundle: BUNDLE, base: { GIT_CONFIG_COUNT: count } });
    expect(env.GIT_CONFIG_COUNT).toBe('1');
    expect(env.GIT_CONFIG_KEY_0).toBe('http.proxy');
  });

  it('gives every JVM the proxy as system properties, over loopback IPv4, with no exempt hosts', () => {
    expect(env.JAVA_TOOL_OPTIONS!.split(' ')).toEqual([
      '-Dhttp.proxyHost=127.0.0.1',
      '-Dhttp.proxyPort=41234',
      '-Dhttps.proxyHost=127.0.0.1',
      '-Dhttps.proxyPort=41234',
      '-Dhttp.nonProxyHosts=',
      '-Djava.net.preferIPv4Stack=true',
    ]);
  });

  it('keeps the caller\'s JVM flags, before its own (the last -D of a name wins)', () => {
    const env = proxyEnvironment({ proxy, caBundle: BUNDLE, base: { JAVA_TOOL_OPTIONS: ' -Xmx2g -Dhttps.proxyHost=corp.proxy ' } });
    const flags = env.JAVA_TOOL_OPTIONS!.split(' ');
    expect(flags.slice(0, 2)).toEqual(['-Xmx2g', '-Dhttps.proxyHost=corp.proxy']);
    expect(flags.lastIndexOf('-Dhttps.proxyHost=127.0.0.1')).toBeGreaterThan(flags.indexOf('-Dhttps.proxyHost=corp.proxy'));
  });

  it('names the trust bundle at its host path in every CA variable of the Linux jail', () => {
    for (const name of CA_BUNDLE_VARIABLES) expect(env[name], name).toBe(BUNDLE);
  });

  it('on top of jailEnvironment: the caller\'s proxy settings are gone, the gateway\'s are in', () => {
    const host = { PATH: '/usr/bin', HTTPS_PROXY: 'http://corp:3128', https_proxy: 'http://corp:3128', NO_PROXY: 'internal.corp', PIP_PROXY: 'http://corp:3128' };
    const base = jailEnvironment(host, BUNDLE);
    const final = { ...base, ...proxyEnvironment({ proxy, caBundle: BUNDLE, base }) };
    expect(final.PATH).toBe('/usr/bin');
    for (const [name, value] of Object.entries(final)) {
      if (/proxy/i.test(name) && !/^(no_proxy|npm_config_noproxy)$/i.test(name) && name !== 'NODE_USE_ENV_PROXY' && name !== 'GIT_CONFIG_KEY_0') expect(value, name).toBe(URL);
    }
    expect(final.NO_PROXY).toBe('');
  });
});

describe('proxyUrl', () => {
  it.each([
    [{ host: '127.0.0.1', port: 8080 }, 'http://127.0.0.1:8080'],
    [{ host: '::1', port: 8080 }, 'http://[::1]:8080'],
    [{ host: 'localhost', port: 1 }, 'http://localhost:1'],
  ])('%j → %s', (address, url) => {
    expect(proxyUrl(address)).toBe(url);
  });
});
