// `serve --state URL`: where replicas keep what they share (egress budgets, onUnknownHost
// approvals, revoked client tokens). Only Redis (or a server that speaks its protocol) for now.
import { ErrorCodes, SrtGwError } from '../../errors.js';

/** The environment variable a password may come from, so it never shows in `ps`. */
export const STATE_PASSWORD_ENV = 'SRT_GW_STATE_PASSWORD';

export interface StateLocation {
  /** The URL the client connects to, password included when one was given. */
  readonly url: string;
  /** The URL as it may be logged: no password. */
  readonly display: string;
  readonly tls: boolean;
  /** Prefixed to every key, so several fleets can share one server (`?prefix=NAME`). */
  readonly keyPrefix: string;
}

const DEFAULT_KEY_PREFIX = 'srtgw';

/**
 * Parses `redis://[user:password@]host:port[/db][?prefix=name]` or `rediss://…` (TLS). A password
 * in `env[SRT_GW_STATE_PASSWORD]` is used when the URL has none.
 */
export function parseStateLocation(text: string, env: NodeJS.ProcessEnv = process.env): StateLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(text, 'is not a URL');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw invalid(text, `has scheme "${url.protocol.replace(/:$/, '')}"; use redis:// or rediss://`);
  if (url.hostname === '') throw invalid(text, 'names no host');
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw invalid(text, `has database "${db}"; use a number such as /0`);
  const prefix = url.searchParams.get('prefix') ?? DEFAULT_KEY_PREFIX;
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) throw invalid(text, 'has a prefix that is not 1-64 letters, digits, ".", "_" or "-"');
  for (const key of url.searchParams.keys()) if (key !== 'prefix') throw invalid(text, `has an unknown parameter "${key}" (only "prefix")`);
  const password = env[STATE_PASSWORD_ENV];
  const connect = new URL(url.href);
  connect.search = '';
  if (connect.password === '' && password !== undefined && password !== '') connect.password = encodeURIComponent(password);
  const display = new URL(connect.href);
  if (display.password !== '') display.password = '***';
  return { url: connect.href, display: display.href, tls: url.protocol === 'rediss:', keyPrefix: prefix };
}

function invalid(text: string, why: string): SrtGwError {
  const shown = text.replace(/\/\/([^@/]*):[^@/]*@/, '//$1:***@');
  return new SrtGwError(ErrorCodes.CONFIG_INVALID, `--state ${shown} ${why} (expected redis://HOST:PORT[/DB] or rediss://…)`);
}
