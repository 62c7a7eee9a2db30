// Parsers for command-line values. Each throws a CONFIG_INVALID error that names the flag and
// shows the expected form, so a typo stops the command before anything starts.
import { isIP } from 'node:net';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { splitAuthority } from '../gateway/http/exchange.js';
import { normalizeHost } from '../policies/host.js';
import type { ListenAddress } from '../gateway/gateway.js';
import { parseUpstreamProxy, UPSTREAM_PROXY_AUTH_ENV, type UpstreamProxyOptions } from '../gateway/upstream/upstream-proxy.js';

function invalid(message: string): never {
  throw new SrtGwError(ErrorCodes.CONFIG_INVALID, message);
}

/** "127.0.0.1:8080", "[::1]:8080", ":8080" or "8080" (the last two on 127.0.0.1). */
export function parseListenAddress(flag: string, value: string): ListenAddress {
  const text = value.trim();
  const portOnly = /^:?([0-9]{1,5})$/.exec(text);
  const parts = portOnly ? { host: '127.0.0.1', port: Number(portOnly[1]) } : splitAuthority(text);
  // Port 0 is allowed here (pick a free port), which splitAuthority refuses for authorities.
  const zeroPort = !portOnly && /^(.*):0$/.exec(text);
  const host = zeroPort ? zeroPort[1]!.replace(/^\[|\]$/g, '') : parts?.host;
  const port = zeroPort ? 0 : parts?.port;
  if (host === undefined || port === null || port === undefined || port > 65535 || (isIP(host) === 0 && host !== 'localhost')) {
    invalid(`${flag} ${value}: expected IP:PORT, e.g. 127.0.0.1:8080`);
  }
  return { host, port };
}

/**
 * "HOST=IP[,IP...]", or curl's "HOST:PORT:IP[,IP...]" → [host, ips]. The override pins the name,
 * so curl's port is checked but applies the address to every port of HOST.
 */
export function parseResolveOverride(value: string): [string, string[]] {
  const curlForm = value.includes('=') ? null : /^([^:[\]]+):([0-9]{1,5}):(.+)$/.exec(value);
  const [name, addresses] = curlForm ? [curlForm[1], curlForm[3]] : value.split('=', 2);
  const host = name ? normalizeHost(name) : null;
  const ips = (addresses ?? '').split(',').map((ip) => ip.trim().replace(/^\[|\]$/g, '')).filter(Boolean);
  const badPort = curlForm !== null && (Number(curlForm[2]) < 1 || Number(curlForm[2]) > 65535);
  if (!host || badPort || ips.length === 0 || ips.some((ip) => isIP(ip) === 0)) {
    invalid(`--resolve ${value}: expected HOST=IP or HOST:PORT:IP (e.g. api.example.test=127.0.0.1)`);
  }
  return [host, ips];
}

/** "IP" or "IP:PORT" / "[IPv6]:PORT". */
export function parseDnsServer(value: string): string {
  const bracketed = /^\[([0-9a-fA-F:.]+)\](?::([0-9]{1,5}))?$/.exec(value);
  const plain = /^([0-9.]+)(?::([0-9]{1,5}))?$/.exec(value);
  const ip = bracketed?.[1] ?? plain?.[1] ?? (isIP(value) === 6 ? value : undefined);
  const port = bracketed?.[2] ?? plain?.[2];
  if (!ip || isIP(ip) === 0 || (port !== undefined && (Number(port) < 1 || Number(port) > 65535))) {
    invalid(`--dns-upstream ${value}: expected IP or IP:PORT (e.g. 127.0.0.1:5353)`);
  }
  return value;
}

/** A positive number of seconds, fractions allowed ("0.5", "30"). */
export function parseSeconds(flag: string, value: string): number {
  const seconds = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value.trim()) || !(seconds > 0) || seconds > 86_400) {
    invalid(`${flag} ${value}: expected a number of seconds between 0 and 86400 (e.g. 30)`);
  }
  return seconds;
}

/** `--log FILE`, `--log -` (stdout, as JSON lines), or the default when absent. */
export function auditLogDestination(flag: string | undefined, otherwise: number | false): string | number | false {
  if (flag === undefined) return otherwise;
  return flag === '-' ? 1 : flag;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * --upstream-proxy URL and --no-upstream-proxy-for LIST → the gateway's upstreamProxy option, the
 * credentials from SRT_GW_UPSTREAM_PROXY_AUTH (or the URL). Checked now, so a typo stops the command.
 */
export function upstreamProxyFromFlags(url: string | undefined, bypass: readonly string[], env: NodeJS.ProcessEnv, warn: (message: string) => void): UpstreamProxyOptions | undefined {
  if (url === undefined) {
    if (bypass.length > 0) invalid('--no-upstream-proxy-for needs --upstream-proxy');
    return undefined;
  }
  const auth = env[UPSTREAM_PROXY_AUTH_ENV];
  const options: UpstreamProxyOptions = { url, bypass, ...(auth !== undefined && auth !== '' ? { auth } : {}) };
  const parsed = parseUpstreamProxy(options);
  if (parsed.credentialsInUrl && options.auth === undefined) {
    warn(`srt-gw: warning: the --upstream-proxy URL carries credentials, which other local users can read in ps; set ${UPSTREAM_PROXY_AUTH_ENV}=user:password instead`);
  }
  return options;
}
