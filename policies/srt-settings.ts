// Converts Anthropic Sandbox Runtime (srt) settings (~/.srt-settings.json, .srt.json) into an
// srt-gw policy, with a warning for every option that maps differently or is not supported yet.
//
// Semantics relied on, from srt's README (github.com/anthropic-experimental/sandbox-runtime,
// "Configuration Options" → "Network Configuration", read 2026-11):
// - network access is allow-only: an empty allowedDomains list means no network access;
// - allowedDomains "supports wildcards like *.example.com"; srt matches "*.example.com" against
//   subdomains only, never the apex — the same as an srt-gw "*.example.com" host;
// - deniedDomains "checked first, takes precedence over allowedDomains" — an srt-gw deny rule,
//   which wins wherever it is written; a bare "*" (or "*:22") denies everything;
// - an optional ":port" suffix restricts an entry to one port; IPv6 literals are bracketed;
// - HTTP(S) goes through srt's HTTP proxy and other TCP through its SOCKS5 proxy, both filtered
//   by the same lists;
// - allowUnixSockets / allowAllUnixSockets / allowLocalBinding are OS-jail settings, not network
//   policy; allowLocalBinding lets the sandboxed command bind and accept on localhost — srt-gw's
//   `jail.allowLocalBinding`, carried over (on Linux srt-gw's jail has a loopback of its own, so
//   there it changes nothing).
// And from "Filesystem Configuration" (same README):
// - reading is deny-only: filesystem.denyRead hides, allowRead re-allows within a denied region;
//   writing is allow-only: allowWrite, and denyWrite "takes precedence over allowWrite" — the
//   same meanings as srt-gw's `filesystem:` section, so the four lists carry over as they are;
// - an empty allowWrite means no write access at all, the working directory included ("." must be
//   listed); srt-gw always lets the command write its working directory;
// - relative paths are relative to the working directory; srt-gw's to the policy file's directory;
// - git-style globs (*, **, ?, [abc]) work on macOS only; srt-gw's jail works on concrete paths.
// And from srt's settings schema (src/sandbox/sandbox-config.ts, ParentProxyConfigSchema, and
// src/sandbox/parent-proxy.ts, read 2026-12):
// - network.parentProxy {http, https, noProxy}: srt's own proxies tunnel through this parent with
//   CONNECT; https falls back to http; noProxy is a NO_PROXY list of host suffixes and CIDRs, and
//   loopback always bypasses it; unset, srt reads HTTP_PROXY/HTTPS_PROXY/NO_PROXY from its env.
//   srt-gw's --upstream-proxy / --no-upstream-proxy-for, which are flags, not policy: the import
//   returns them beside the policy (SrtImport.upstreamProxy) and names them in the YAML header.
// - httpProxyPort / socksProxyPort are not a parent proxy: they replace srt's own proxies with an
//   external filtering one, which srt-gw (itself the filter) does not do.
import { stringify } from 'yaml';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { parseHostPattern } from './host.js';
import { filesystemPathProblem, RULE_ID_PATTERN } from './schema.js';

export interface ImportedRule {
  id: string;
  host: string;
  port?: number;
  action?: 'deny';
}

export type ImportedFilesystem = Partial<Record<(typeof FILESYSTEM_KEYS)[number], string[]>>;

export interface ImportedPolicy {
  version: 1;
  rules: ImportedRule[];
  filesystem?: ImportedFilesystem;
  jail?: { allowLocalBinding?: true; allowUnixSockets?: string[] };
}

/** srt's network.parentProxy as srt-gw's --upstream-proxy and --no-upstream-proxy-for. */
export interface ImportedUpstreamProxy {
  readonly url: string;
  readonly bypass: readonly string[];
}

export interface SrtImport {
  /** The policy FILE shape (what `srt-gw policy import-srt` prints as YAML). */
  readonly policy: ImportedPolicy;
  /** From network.parentProxy: flags of `srt-gw serve` / `run`, not part of the policy. */
  readonly upstreamProxy?: ImportedUpstreamProxy;
  /** One sentence per option that maps differently or is not carried over. */
  readonly warnings: readonly string[];
}

const FILESYSTEM_KEYS = ['denyRead', 'allowRead', 'allowWrite', 'denyWrite'] as const;
const JAIL_NETWORK_KEYS = ['allowUnixSockets', 'allowAllUnixSockets', 'allowLocalBinding'] as const;
/** What srt-gw run does instead of each of srt's jail-level network settings. */
const JAIL_NETWORK_MEANING: Record<(typeof JAIL_NETWORK_KEYS)[number], string> = {
  allowUnixSockets:
    'carried over as jail.allowUnixSockets; on Linux srt-gw run refuses every other unix socket the jail did not create itself (host sockets under /run and /tmp are mounted in only when listed)',
  allowAllUnixSockets:
    'srt-gw run refuses host unix sockets the jail did not create unless jail.allowUnixSockets lists them; unix sockets the command creates itself always work, so it is ignored',
  allowLocalBinding:
    'carried over as jail.allowLocalBinding; on macOS the command may listen on loopback, but connecting to its own listener still goes through the gateway (add a rule for localhost); on Linux the command may always listen on its own loopback (its network namespace is private, so nothing outside can connect)',
};
const NETWORK_KEYS_WITH_NO_EQUIVALENT: Record<string, string> = {
  deniedDomainReasons: 'srt-gw 403 bodies give the deny rule id and reason; custom reasons are not supported yet',
  httpProxyPort: 'it replaces srt\'s own HTTP proxy with an external filtering one; srt-gw is itself the filter (a corporate proxy to leave through is network.parentProxy, or --upstream-proxy)',
  socksProxyPort: 'it replaces srt\'s own SOCKS proxy with an external filtering one; srt-gw is itself the filter, and does not chain to SOCKS proxies',
  tlsTerminate: 'srt-gw always terminates TLS with its own CA (srt-gw ca init); excludeDomains pass-through is not supported, and extraCaCertPaths map to `srt-gw serve --upstream-ca`',
  filterRequest: 'express request filters as rules with methods and paths',
};
const TOP_LEVEL_KEYS_WITH_NO_EQUIVALENT = new Set([
  'ignoreViolations',
  'enableWeakerNestedSandbox',
  'enableWeakerNetworkIsolation',
  'allowAppleEvents',
  'javaAgentJarPath',
  'windows',
  'ripgrep',
  'mandatoryDenySearchDepth',
]);

/** Converts parsed srt settings JSON. `file` names the source in errors and warnings. */
export function importSrtSettings(json: unknown, file: string): SrtImport {
  if (!isRecord(json)) throw invalid(file, 'the settings must be a JSON object, such as {"network": {"allowedDomains": ["example.com"]}}');
  const warnings: string[] = [];
  const network = optionalRecord(json, 'network', file);
  const filesystem = optionalRecord(json, 'filesystem', file);

  const allowed = stringList(network, 'allowedDomains', file);
  const denied = stringList(network, 'deniedDomains', file);
  const ids = new Set<string>();
  const rules: ImportedRule[] = [];
  for (const [list, action] of [[denied, 'deny'], [allowed, 'allow']] as const) {
    list.forEach((entry, index) => {
      const parsed = parseDomainEntry(entry);
      if ('error' in parsed) {
        warnings.push(`network.${action === 'deny' ? 'deniedDomains' : 'allowedDomains'}[${index}] ${JSON.stringify(entry)} skipped: ${parsed.error}`);
        return;
      }
      const id = uniqueId(`srt-${action}-${parsed.host.replace(/^\*$/, 'any').replace(/\*/g, 'star')}${parsed.port === undefined ? '' : `-${parsed.port}`}`, ids);
      rules.push({ id, host: parsed.host, ...(parsed.port === undefined ? {} : { port: parsed.port }), ...(action === 'deny' ? { action } : {}) });
    });
  }

  if (allowed.length === 0) warnings.push('network.allowedDomains is empty: no network access, as in srt');
  else {
    warnings.push(
      'srt also lets non-HTTP TCP (its SOCKS proxy) reach allowedDomains; these rules check HTTP(S) requests only — add "protocol: tcp" rules with a port for ssh, databases and the like',
    );
  }
  const allowLocalBinding = network?.allowLocalBinding;
  if (allowLocalBinding !== undefined && typeof allowLocalBinding !== 'boolean') throw invalid(file, '"allowLocalBinding" must be true or false');
  const allowUnixSockets = stringList(network, 'allowUnixSockets', file).filter((path, index) => {
    if (path.startsWith('/') || path === '~' || path.startsWith('~/')) return true;
    warnings.push(`network.allowUnixSockets[${index}] ${JSON.stringify(path)} skipped: srt-gw needs an absolute or "~/..." socket path`);
    return false;
  });
  for (const key of JAIL_NETWORK_KEYS) {
    const value = network?.[key];
    if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) continue;
    warnings.push(`network.${key} ${JSON.stringify(value)}: ${JAIL_NETWORK_MEANING[key]}`);
  }
  for (const [key, why] of Object.entries(NETWORK_KEYS_WITH_NO_EQUIVALENT)) {
    if (network?.[key] !== undefined) warnings.push(`network.${key} is ignored: ${why}`);
  }
  for (const key of Object.keys(network ?? {})) {
    if (!['allowedDomains', 'deniedDomains', 'parentProxy', ...JAIL_NETWORK_KEYS, ...Object.keys(NETWORK_KEYS_WITH_NO_EQUIVALENT)].includes(key)) {
      warnings.push(`network.${key} is not an srt setting srt-gw knows; ignored`);
    }
  }
  const importedFilesystem = importFilesystem(filesystem, file, warnings);
  for (const key of Object.keys(filesystem ?? {})) {
    if (!(FILESYSTEM_KEYS as readonly string[]).includes(key)) warnings.push(`filesystem.${key} is not an srt setting srt-gw knows; ignored`);
  }
  for (const key of Object.keys(json)) {
    if (key === 'network' || key === 'filesystem') continue;
    if (TOP_LEVEL_KEYS_WITH_NO_EQUIVALENT.has(key)) warnings.push(`${key} has no srt-gw equivalent; ignored`);
    else warnings.push(`${key} is not an srt setting srt-gw knows; ignored`);
  }
  const policy: ImportedPolicy = {
    version: 1,
    rules,
    ...(importedFilesystem === undefined ? {} : { filesystem: importedFilesystem }),
    ...(allowLocalBinding === true || allowUnixSockets.length > 0
      ? { jail: { ...(allowLocalBinding === true ? { allowLocalBinding } : {}), ...(allowUnixSockets.length > 0 ? { allowUnixSockets } : {}) } }
      : {}),
  };
  const upstreamProxy = importParentProxy(network, file, warnings);
  return { policy, warnings, ...(upstreamProxy === undefined ? {} : { upstreamProxy }) };
}

/** network.parentProxy → --upstream-proxy and --no-upstream-proxy-for, with what does not carry over. */
function importParentProxy(network: Record<string, unknown> | undefined, file: string, warnings: string[]): ImportedUpstreamProxy | undefined {
  const parent = network === undefined ? undefined : optionalRecord(network, 'parentProxy', file);
  // Without it srt falls back to HTTP_PROXY/HTTPS_PROXY from its own environment, which the
  // import cannot see: docs/serve.md ("Upstream proxy") says srt-gw reads no proxy variables.
  if (parent === undefined) return undefined;
  const field = (key: string): string | undefined => {
    const value = parent[key];
    if (value === undefined) return undefined;
    if (typeof value !== 'string') throw invalid(file, `"parentProxy.${key}" must be a string`);
    return value;
  };
  const http = field('http');
  const https = field('https');
  const noProxy = field('noProxy');
  for (const key of Object.keys(parent)) {
    if (!['http', 'https', 'noProxy'].includes(key)) warnings.push(`network.parentProxy.${key} is not an srt setting srt-gw knows; ignored`);
  }
  const url = https ?? http;
  if (url === undefined) {
    if (noProxy !== undefined) warnings.push('network.parentProxy.noProxy is ignored: no parentProxy.http or .https to bypass');
    return undefined;
  }
  const shown = url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
  if (http !== undefined && https !== undefined && http !== https) {
    warnings.push(`network.parentProxy.http (${http.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@')}) is not carried over: srt-gw sends all traffic, plain HTTP included, through one proxy with CONNECT, and uses parentProxy.https`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\/[^@/]*@/i.test(url)) {
    warnings.push(`network.parentProxy credentials: give them as SRT_GW_UPSTREAM_PROXY_AUTH=user:password rather than in the --upstream-proxy URL, which other local users can read in ps`);
  }
  const bypass: string[] = [];
  for (const raw of (noProxy ?? '').split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    if (entry.includes('/')) {
      warnings.push(`network.parentProxy.noProxy entry ${JSON.stringify(entry)} skipped: --no-upstream-proxy-for takes host names and suffixes, not address ranges`);
      continue;
    }
    // srt drops a ":port" from an entry: the bypass is for the host on every port.
    bypass.push(/^[^:[\]]+:\d+$/.test(entry) ? entry.slice(0, entry.lastIndexOf(':')) : entry);
  }
  warnings.push(
    `network.parentProxy: run srt-gw with --upstream-proxy ${shown}${bypass.length > 0 ? ` --no-upstream-proxy-for ${bypass.join(',')}` : ''}; srt-gw still checks, resolves and refuses private destinations itself before it asks the proxy, and loopback goes through the proxy unless listed`,
  );
  return { url, bypass };
}

const WORKING_DIRECTORY_ENTRIES = new Set(['.', './']);
/** srt's macOS spelling /private/tmp included. */
const HOST_TMP_ENTRIES = new Set(['/tmp', '/tmp/', '/private/tmp', '/private/tmp/']);
const GLOB_CHARACTERS = /[*?[]/;

/** The four lists carry over as they are, minus what srt-gw cannot or need not express. */
function importFilesystem(filesystem: Record<string, unknown> | undefined, file: string, warnings: string[]): ImportedFilesystem | undefined {
  const imported: ImportedFilesystem = {};
  const relative: string[] = [];
  let workingDirectoryWritable = false;
  for (const key of FILESYSTEM_KEYS) {
    const kept: string[] = [];
    stringList(filesystem, key, file).forEach((entry, index) => {
      const where = `filesystem.${key}[${index}] ${JSON.stringify(entry)}`;
      if (key === 'allowWrite' && WORKING_DIRECTORY_ENTRIES.has(entry)) {
        workingDirectoryWritable = true;
        warnings.push(`${where} skipped: srt-gw always lets the command write its working directory`);
        return;
      }
      if (key === 'allowWrite' && HOST_TMP_ENTRIES.has(entry)) {
        warnings.push(`${where} skipped: the jail's /tmp is private, empty and always writable; the host's /tmp is never shared`);
        return;
      }
      if (GLOB_CHARACTERS.test(entry)) {
        warnings.push(`${where} skipped: srt-gw does not support globs; the jail works on concrete paths, so name the directory, which covers everything below it`);
        return;
      }
      const problem = filesystemPathProblem(entry);
      if (problem !== undefined) {
        warnings.push(`${where} skipped: the path ${problem}`);
        return;
      }
      if (!entry.startsWith('/') && entry !== '~' && !entry.startsWith('~/')) relative.push(entry);
      kept.push(entry);
    });
    if (kept.length > 0) imported[key] = kept;
  }
  if (!workingDirectoryWritable) {
    warnings.push(
      'srt let the command write its working directory only with "." in filesystem.allowWrite; srt-gw always lets it, so run it from a directory it may change',
    );
  }
  if (relative.length > 0) {
    warnings.push(
      `filesystem paths ${JSON.stringify(relative)} are relative: srt resolves them against the working directory, srt-gw against the directory of the policy file — save the converted policy in the directory you run commands from, or make the paths absolute`,
    );
  }
  warnings.push(
    'srt-gw also hides credential paths such as ~/.ssh, ~/.aws and ~/.npmrc by default and keeps shell startup files, .git/hooks and .git/config read-only; filesystem.allowRead reopens a hidden path',
  );
  return Object.keys(imported).length === 0 ? undefined : imported;
}

/** Parses srt settings text (JSON) and converts it. */
export function importSrtSettingsText(text: string, file: string): SrtImport {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SrtGwError(ErrorCodes.SRT_SETTINGS_INVALID, `${file}: not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  return importSrtSettings(json, file);
}

/** The imported policy as YAML, warnings listed in a comment header. */
export function renderSrtImport(imported: SrtImport, file: string): string {
  const header = [`# srt-gw policy converted from srt settings ${file} (srt-gw policy import-srt).`];
  if (imported.warnings.length > 0) {
    header.push('# Warnings:');
    for (const warning of imported.warnings) header.push(`#   - ${warning}`);
  }
  return `${header.join('\n')}\n${stringify(imported.policy)}`;
}

type DomainEntry = { host: string; port?: number } | { error: string };

function parseDomainEntry(entry: string): DomainEntry {
  let host = entry.trim();
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(host);
  const suffixed = /^([^:]+):(\d+)$/.exec(host);
  if (bracketed) {
    host = bracketed[1]!;
    if (bracketed[2] !== undefined) port = Number(bracketed[2]);
  } else if (suffixed) {
    host = suffixed[1]!;
    port = Number(suffixed[2]);
  } else if ((host.match(/:/g) ?? []).length > 1) {
    return { error: 'an IPv6 address must be bracketed, such as "[2001:db8::1]"' };
  }
  if (port !== undefined && (port < 1 || port > 65535)) return { error: `port ${port} must be from 1 to 65535` };
  const parsed = parseHostPattern(host);
  if ('error' in parsed) return { error: `the host ${parsed.error}` };
  return { host: parsed.text, ...(port === undefined ? {} : { port }) };
}

function uniqueId(wanted: string, taken: Set<string>): string {
  const base = wanted.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 60);
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
  if (!RULE_ID_PATTERN.test(id)) throw new Error(`generated an invalid rule id: ${id}`);
  taken.add(id);
  return id;
}

function optionalRecord(parent: Record<string, unknown>, key: string, file: string): Record<string, unknown> | undefined {
  const value = parent[key];
  if (value === undefined) return undefined;
  if (!isRecord(value)) throw invalid(file, `"${key}" must be an object`);
  return value;
}

function stringList(parent: Record<string, unknown> | undefined, key: string, file: string): string[] {
  const value = parent?.[key];
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) throw invalid(file, `"${key}" must be a list of strings`);
  return value;
}

function invalid(file: string, message: string): SrtGwError {
  return new SrtGwError(ErrorCodes.SRT_SETTINGS_INVALID, `${file}: ${message}`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
