// The variables that steer every common client family in the macOS jail to the gateway's explicit
// proxy, and make them trust its CA. macOS has no network namespace to redirect traffic in: these
// variables are the route, and the Seatbelt profile makes them the only one (a program that
// ignores them is cut off, not let out). Layered on jailEnvironment(), which removed the caller's
// own proxy settings.
import { isIP } from 'node:net';
import type { ListenAddress } from '../../gateway/gateway.js';
import { CA_BUNDLE_VARIABLES } from '../jail-environment.js';

export interface ProxyEnvironmentOptions {
  /** The gateway's explicit proxy: a loopback address (the profile allows only localhost:PORT). */
  proxy: ListenAddress;
  /** Host path of the trust bundle (system CAs + the srt-gw CA); macOS has no mounts, so it is the path inside too. */
  caBundle: string;
  /**
   * The environment these variables are added to: JAVA_TOOL_OPTIONS and GIT_CONFIG_* are extended,
   * not replaced, so the command's own JVM flags and git settings survive.
   */
  base?: Readonly<Record<string, string>>;
}

/** The proxy URL every variable names: http://127.0.0.1:PORT (or http://[::1]:PORT). */
export function proxyUrl(proxy: ListenAddress): string {
  const host = isIP(proxy.host) === 6 ? `[${proxy.host}]` : proxy.host;
  return `http://${host}:${proxy.port}`;
}

/**
 * Variables to set on top of `base` (pure). NO_PROXY is empty on purpose: with it, localhost would
 * be reached directly, and the profile refuses every direct connection but the gateway's — so a
 * request to a local server goes through the gateway and its policy (docs/macos.md).
 */
export function proxyEnvironment(options: ProxyEnvironmentOptions): Record<string, string> {
  const url = proxyUrl(options.proxy);
  const base = options.base ?? {};
  const env: Record<string, string> = {};
  // curl, wget, git (libcurl), python (urllib, requests, pip), ruby, go, cargo, deno, bun, the aws
  // CLI, dotnet: each reads some of these spellings (curl ignores upper-case HTTP_PROXY; Node's
  // built-in support reads both and prefers lower case).
  for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY']) {
    env[name] = url;
    env[name.toLowerCase()] = url;
  }
  env.NO_PROXY = '';
  env.no_proxy = '';
  // Node: fetch() honours the variables from v24.0.0 (and v22.21.0), http/https.request from
  // v24.5.0; older versions ignore this and their requests are cut off (docs/macos.md).
  env.NODE_USE_ENV_PROXY = '1';
  // npm and pnpm read npm_config_* (above a project's .npmrc); yarn berry its own names.
  env.npm_config_proxy = url;
  env.npm_config_https_proxy = url;
  env.npm_config_noproxy = '';
  env.YARN_HTTP_PROXY = url;
  env.YARN_HTTPS_PROXY = url;
  // pip's --proxy, cargo's http.proxy: both override a proxy named in the user's configuration.
  env.PIP_PROXY = url;
  env.CARGO_HTTP_PROXY = url;
  // Node programs using the global-agent package (Electron tools, some CLIs).
  env.GLOBAL_AGENT_HTTP_PROXY = url;
  Object.assign(env, gitProxyConfig(base, url));
  env.JAVA_TOOL_OPTIONS = javaToolOptions(base.JAVA_TOOL_OPTIONS, options.proxy);
  for (const name of CA_BUNDLE_VARIABLES) env[name] = options.caBundle;
  return env;
}

/**
 * git reads the proxy variables only when no http.proxy is configured, and a user's ~/.gitconfig
 * may name one (cut off here). GIT_CONFIG_COUNT/KEY_n/VALUE_n (git 2.31+) outrank every config
 * file; entries the caller already passes this way are kept, ours appended after them.
 */
function gitProxyConfig(base: Readonly<Record<string, string>>, url: string): Record<string, string> {
  const inherited = /^(0|[1-9][0-9]{0,3})$/.test(base.GIT_CONFIG_COUNT ?? '') ? Number(base.GIT_CONFIG_COUNT) : 0;
  return {
    GIT_CONFIG_COUNT: String(inherited + 1),
    [`GIT_CONFIG_KEY_${inherited}`]: 'http.proxy',
    [`GIT_CONFIG_VALUE_${inherited}`]: url,
  };
}

/**
 * JVMs (java, gradle, maven's JVM, sbt) ignore the proxy variables; system properties in
 * JAVA_TOOL_OPTIONS reach every JVM started with this environment. Appended after the caller's
 * flags: for a repeated -D the last one wins. IPv4 only, because Seatbelt's "localhost" does not
 * match the ::ffff:127.0.0.1 a dual-stack Java socket connects from. The JVM's trust store is not
 * a PEM file: Java TLS through the gateway still fails (docs/macos.md).
 */
function javaToolOptions(inherited: string | undefined, proxy: ListenAddress): string {
  const host = proxy.host;
  const flags = [
    `-Dhttp.proxyHost=${host}`,
    `-Dhttp.proxyPort=${proxy.port}`,
    `-Dhttps.proxyHost=${host}`,
    `-Dhttps.proxyPort=${proxy.port}`,
    // The default exempts localhost and 127.*, which the profile refuses to reach directly.
    '-Dhttp.nonProxyHosts=',
    '-Djava.net.preferIPv4Stack=true',
  ];
  const before = inherited?.trim() ?? '';
  return [before, ...flags].filter((part) => part !== '').join(' ');
}
