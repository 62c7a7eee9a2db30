import { describe, expect, it } from 'vitest';
import { CA_BUNDLE_VARIABLES, jailEnvironment, JAIL_MARKER_VARIABLE } from './jail-environment.js';

describe('jailEnvironment', () => {
  const host = {
    PATH: '/usr/bin:/bin',
    HOME: '/home/u',
    LANG: 'C.UTF-8',
    HTTPS_PROXY: 'http://corp-proxy:3128',
    http_proxy: 'http://corp-proxy:3128',
    No_Proxy: 'localhost',
    SSH_AUTH_SOCK: '/run/user/1000/ssh-agent.sock',
    SRT_GW_CA_DIR: '/home/u/.config/srt-gw/ca',
    SRT_GW_GATEWAY_TOKEN: 'remote-gateway-token',
    SRT_GW_UPSTREAM_PROXY_AUTH: 'user:password',
    SSL_CERT_FILE: '/etc/custom.pem',
    UNSET: undefined,
  };
  const env = jailEnvironment(host, '/etc/ssl/certs/ca-certificates.crt');

  it('keeps the ordinary environment', () => {
    expect(env).toMatchObject({ PATH: '/usr/bin:/bin', HOME: '/home/u', LANG: 'C.UTF-8' });
    expect('UNSET' in env).toBe(false);
  });

  it.each(['HTTPS_PROXY', 'http_proxy', 'No_Proxy'])('drops the proxy variable %s in any case (traffic is redirected anyway)', (name) => {
    expect(env[name]).toBeUndefined();
  });

  it('drops host agent sockets and where the CA key lives', () => {
    expect(env.SSH_AUTH_SOCK).toBeUndefined();
    expect(env.SRT_GW_CA_DIR).toBeUndefined();
  });

  it("drops srt-gw's own secrets: the remote gateway's token and the upstream proxy's credentials", () => {
    expect(env.SRT_GW_GATEWAY_TOKEN).toBeUndefined();
    expect(env.SRT_GW_UPSTREAM_PROXY_AUTH).toBeUndefined();
  });

  it('points every CA variable at the jail bundle, overriding the caller\'s', () => {
    for (const name of CA_BUNDLE_VARIABLES) expect(env[name]).toBe('/etc/ssl/certs/ca-certificates.crt');
    expect(CA_BUNDLE_VARIABLES).toEqual(expect.arrayContaining(['SSL_CERT_FILE', 'NODE_EXTRA_CA_CERTS', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'PIP_CERT']));
  });

  it('replaces each injected secret\'s variable with its placeholder, and sets it when the host has none', () => {
    const withSecrets = jailEnvironment({ ...host, EXAMPLE_API_KEY: 'sk-real-secret-value' }, '/b.pem', new Map([['EXAMPLE_API_KEY', 'srtgw-placeholder-x'], ['OTHER_KEY', 'srtgw-placeholder-y']]));
    expect(withSecrets.EXAMPLE_API_KEY).toBe('srtgw-placeholder-x');
    expect(withSecrets.OTHER_KEY).toBe('srtgw-placeholder-y');
    expect(Object.values(withSecrets)).not.toContain('sk-real-secret-value');
  });

  it('marks the environment as jailed', () => {
    expect(env[JAIL_MARKER_VARIABLE]).toBe('1');
  });
});
