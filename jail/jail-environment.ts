// The environment the jailed command starts with: the caller's, minus what would steer traffic
// around the jail or point at host sockets, plus the variables that make every common client
// trust the srt-gw CA (the bundle also replaces the distribution's bundle files, for clients
// that read no variable).

/** Variables naming a CA bundle file, by the clients that read them. */
export const CA_BUNDLE_VARIABLES = [
  'SSL_CERT_FILE', // OpenSSL-based clients: python ssl/urllib, ruby, wget, git (openssl builds)
  'NODE_EXTRA_CA_CERTS', // node, npm, yarn, pnpm (added to node's built-in roots)
  'REQUESTS_CA_BUNDLE', // python requests, pip's vendored requests
  'CURL_CA_BUNDLE', // curl
  'GIT_SSL_CAINFO', // git over https
  'PIP_CERT', // pip
  'NPM_CONFIG_CAFILE', // npm (replaces its CA list; the bundle includes the system CAs)
  'AWS_CA_BUNDLE', // AWS SDKs and CLI
  'CARGO_HTTP_CAINFO', // cargo
  'DENO_CERT', // deno
  'BUNDLE_SSL_CA_CERT', // bundler
  'HEX_CACERTS_PATH', // mix/hex
] as const;

/**
 * Removed: proxy settings (traffic is redirected anyway; a proxy named here would only send
 * clients to a host the jail cannot reach), and sockets of host agents the jail hides.
 */
const REMOVED = new Set(
  [
    'HTTP_PROXY',
    'HTTPS_PROXY',
    'ALL_PROXY',
    'NO_PROXY',
    'FTP_PROXY',
    'RSYNC_PROXY',
    'NPM_CONFIG_PROXY',
    'NPM_CONFIG_HTTPS_PROXY',
    'YARN_HTTP_PROXY',
    'YARN_HTTPS_PROXY',
    'PIP_PROXY',
    'SSH_AUTH_SOCK',
    'GPG_AGENT_INFO',
    'DBUS_SESSION_BUS_ADDRESS',
    'DOCKER_HOST',
    'SRT_GW_CA_DIR',
    // Secrets of srt-gw itself: the remote gateway's token and the upstream proxy's credentials.
    'SRT_GW_GATEWAY_TOKEN',
    'SRT_GW_UPSTREAM_PROXY_AUTH',
  ].map((name) => name.toUpperCase()),
);

/** Set in the jail so programs and shell prompts can tell they run under srt-gw. */
export const JAIL_MARKER_VARIABLE = 'SRT_GW_JAIL';

/**
 * `placeholders`: for each variable an injected secret is read from, the placeholder the jail
 * sees instead (policies/credentials.ts); the gateway swaps it for the secret on the way out.
 */
export function jailEnvironment(hostEnv: NodeJS.ProcessEnv, caBundlePath: string, placeholders: ReadonlyMap<string, string> = new Map()): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(hostEnv)) {
    if (value === undefined || REMOVED.has(name.toUpperCase())) continue;
    env[name] = value;
  }
  // SECURITY: the real secret never enters the jail, only its placeholder —
  // test/e2e/jail-credentials.test.ts.
  for (const [name, placeholder] of placeholders) env[name] = placeholder;
  for (const name of CA_BUNDLE_VARIABLES) env[name] = caBundlePath;
  env[JAIL_MARKER_VARIABLE] = '1';
  return env;
}
