// What the policy's credential rules mean outside the request path: the placeholder a jailed
// program sees instead of each injected secret, the secret files the jail must hide, and one
// sentence per credential rule for `policy explain`. Pure: nothing here reads a secret.
import { createHash } from 'node:crypto';
import { formatByteSize } from './byte-size.js';
import type { CredentialLocation, CredentialRule, EgressBudget, Policy, SecretSource } from './types.js';

const PLACEHOLDER_PREFIX = 'srtgw-placeholder-';

/**
 * The value a program in the jail sends instead of the secret injected from `source`. It is
 * derived from the source's name (env var name, file path, command), never from the secret, and
 * is the same across reloads and restarts, so the jail's environment stays valid for the whole
 * run. It is not a secret: a request that carries it, or carries nothing, gets the real secret
 * added by the gateway; any other value is refused.
 */
export function placeholderFor(source: SecretSource, ruleId: string): string {
  const key = sourceKey(source);
  const digest = createHash('sha256').update(`srt-gw credential placeholder v1\0${key}`).digest('hex').slice(0, 24);
  const label = source.kind === 'env' ? source.name : ruleId;
  return `${PLACEHOLDER_PREFIX}${label.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${digest}`;
}

/**
 * For every `inject: { env: NAME }` in the policy: NAME → the placeholder `srt-gw run` puts in the
 * jail's environment in place of the real value (which must never enter the jail). Several rules
 * injecting the same variable share one placeholder.
 */
export function credentialPlaceholders(policy: Policy): Map<string, string> {
  const placeholders = new Map<string, string>();
  for (const rule of policy.rules) {
    for (const credential of rule.credentials ?? []) {
      const action = credential.action;
      if (action.kind === 'inject' && action.source.kind === 'env' && !placeholders.has(action.source.name)) {
        placeholders.set(action.source.name, placeholderFor(action.source, rule.id));
      }
    }
  }
  return placeholders;
}

/**
 * Absolute paths of every `inject: { file: PATH }` secret, deduplicated in policy order: the jail
 * hides them (like its built-in credential paths). Secrets a `command` reads are not known here.
 */
export function credentialSecretFiles(policy: Policy): string[] {
  const files = new Set<string>();
  for (const rule of policy.rules) {
    for (const credential of rule.credentials ?? []) {
      if (credential.action.kind === 'inject' && credential.action.source.kind === 'file') files.add(credential.action.source.path);
    }
  }
  return [...files];
}

/** "env EXAMPLE_API_KEY", "file /home/me/.config/keys/example", "command pass show example". */
export function describeSecretSource(source: SecretSource): string {
  switch (source.kind) {
    case 'env':
      return `env ${source.name}`;
    case 'file':
      return `file ${source.path}`;
    case 'command':
      return `command ${source.argv.join(' ')}`;
  }
}

/** "x-api-key", "the authorization header (Bearer)", "query parameter key". */
export function describeLocation(location: CredentialLocation): string {
  if (location.kind === 'query') return `query parameter ${location.name}`;
  if (location.scheme === 'bearer') return `${location.name} (Bearer token)`;
  if (location.scheme === 'basic') return `${location.name} (Basic password)`;
  return location.name;
}

/** One sentence a reviewer reads in `policy explain`: what happens to this credential. */
export function describeCredentialRule(credential: CredentialRule, ruleId: string): string {
  const where = describeLocation(credential.location);
  const action = credential.action;
  switch (action.kind) {
    case 'inject': {
      const placeholder = placeholderFor(action.source, ruleId);
      const jail = action.source.kind === 'env' ? `, which srt-gw run puts in ${action.source.name} inside the jail` : '';
      return `${where} is replaced with the secret from ${describeSecretSource(action.source)}; a request may send the placeholder ${placeholder}${jail}, or no ${where}; any other value sent is refused (403)`;
    }
    case 'require':
      return `${where} must be sent and hash to one of ${action.sha256.length} allowed SHA-256 value${action.sha256.length === 1 ? '' : 's'}; any other value, or none, is refused (403)`;
    case 'strip':
      return `${where} is removed before the request is forwarded`;
  }
}

/** "1 MiB per minute and 100 MiB per run". */
export function describeBudget(budget: EgressBudget): string {
  const parts: string[] = [];
  if (budget.requestBytesPerMinute !== undefined) parts.push(`${formatByteSize(budget.requestBytesPerMinute)} per minute`);
  if (budget.requestBytesPerRun !== undefined) parts.push(`${formatByteSize(budget.requestBytesPerRun)} per run`);
  return parts.join(' and ');
}

function sourceKey(source: SecretSource): string {
  switch (source.kind) {
    case 'env':
      return `env\0${source.name}`;
    case 'file':
      return `file\0${source.path}`;
    case 'command':
      return `command\0${JSON.stringify([source.cwd, ...source.argv])}`;
  }
}
