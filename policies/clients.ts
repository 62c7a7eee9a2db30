// The `clients:` section at run time: one file's clients with where each was written
// (toDocumentClients), and the clients of a policy after `extends:` (mergeClients): lists append,
// ids unique across the result, every `rules:` entry naming a rule of the merged policy.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { suggestKey } from './issue-messages.js';
import type { ClientFile } from './schema.js';
import { extendedChain, formatLocation } from './source-location.js';
import type { ClientCredential, PolicyClient, Rule, SourceLocation } from './types.js';

/** How many rule ids a "names no rule" message lists before it stops. */
const MAX_LISTED_RULE_IDS = 10;

/** One file's clients, and where their ids and rule references are written. */
export interface DocumentClients {
  readonly clients: readonly PolicyClient[];
  readonly idLocations: readonly SourceLocation[];
  /** For each client, where each entry of its `rules:` is written. */
  readonly ruleLocations: readonly (readonly SourceLocation[])[];
}

type Locate = (path: readonly PropertyKey[], at?: 'value' | 'key') => SourceLocation;

/** A validated `clients:` list as runtime clients; relative jwksFile paths start at `baseDirectory`. */
export function toDocumentClients(list: readonly ClientFile[], baseDirectory: string, locate: Locate): DocumentClients {
  const clients = list.map((client, index) =>
    Object.freeze({
      id: client.id,
      credential: Object.freeze(toCredential(client, baseDirectory)),
      ...(client.rules === undefined ? {} : { rules: Object.freeze([...new Set(client.rules)]) }),
      source: Object.freeze(locate(['clients', index])),
    }),
  );
  return {
    clients,
    idLocations: list.map((_client, index) => locate(['clients', index, 'id'])),
    ruleLocations: list.map((client, index) => (client.rules ?? []).map((_rule, ruleIndex) => locate(['clients', index, 'rules', ruleIndex]))),
  };
}

function toCredential(client: ClientFile, baseDirectory: string): ClientCredential {
  if (client.token !== undefined) return { kind: 'token', sha256: client.token.sha256.toLowerCase() };
  if (client.jwt !== undefined) {
    const { issuer, audience, jwksFile, jwksUrl, subject } = client.jwt;
    const jwks = jwksUrl !== undefined ? { kind: 'url' as const, url: jwksUrl } : { kind: 'file' as const, path: policyRelativePath(jwksFile ?? '', baseDirectory), written: jwksFile ?? '' };
    return {
      kind: 'jwt',
      issuer,
      audience,
      jwks: Object.freeze(jwks),
      ...(subject === undefined ? {} : { subjects: Object.freeze(typeof subject === 'string' ? [subject] : [...new Set(subject)]) }),
    };
  }
  if (client.mtls !== undefined) {
    return client.mtls.uri !== undefined ? { kind: 'mtls', field: 'uri', pattern: client.mtls.uri } : { kind: 'mtls', field: 'cn', pattern: (client.mtls.subject ?? '').slice('CN='.length) };
  }
  return { kind: 'issued' };
}

/** "~" and "~/..." are the gateway user's home; other relative paths are relative to the policy file. */
function policyRelativePath(written: string, baseDirectory: string): string {
  if (written === '~') return homedir();
  if (written.startsWith('~/')) return join(homedir(), written.slice(2));
  return resolve(baseDirectory, written);
}

/** One file's part in merge order, and the `extends:` entry that brought it in (undefined for the root). */
export interface ClientContribution {
  readonly clients: DocumentClients | undefined;
  readonly name: string;
  readonly extendedAt: SourceLocation | undefined;
}

/**
 * The policy's clients in merge order, or {} when no file has a `clients:` section. Throws
 * POLICY_INVALID listing every id used twice and every `rules:` entry that names no rule of the
 * merged policy.
 */
export function mergeClients(contributions: readonly ClientContribution[], rules: readonly Rule[]): { clients?: readonly PolicyClient[] } {
  if (contributions.every(({ clients }) => clients === undefined)) return {};
  const ruleIds = new Set(rules.map((rule) => rule.id));
  const merged: PolicyClient[] = [];
  const firstById = new Map<string, SourceLocation>();
  const problems: { at: SourceLocation; message: string }[] = [];
  for (const { clients, name, extendedAt } of contributions) {
    clients?.clients.forEach((client, index) => {
      const idAt = withExtendedAt(clients.idLocations[index]!, extendedAt);
      const first = firstById.get(client.id);
      if (first !== undefined) {
        const from = extendedAt === undefined ? '' : `; ${name} is extended at ${describeSource(extendedAt)}`;
        problems.push({
          at: idAt,
          message: `clients[${index}].id must be unique across the policy and what it extends, but the client at ${describeSource(first)} already uses it (got ${JSON.stringify(client.id)})${from}`,
        });
        return;
      }
      firstById.set(client.id, idAt);
      client.rules?.forEach((ruleId, ruleIndex) => {
        if (ruleIds.has(ruleId)) return;
        problems.push({
          at: withExtendedAt(clients.ruleLocations[index]![ruleIndex]!, extendedAt),
          message: `clients[${index}].rules[${ruleIndex}] names no rule of the policy (got ${JSON.stringify(ruleId)}); ${suggestRule(ruleId, [...ruleIds])}`,
        });
      });
      merged.push(extendedAt === undefined || client.source === undefined ? client : Object.freeze({ ...client, source: withExtendedAt(client.source, extendedAt) }));
    });
  }
  if (problems.length > 0) throw new SrtGwError(ErrorCodes.POLICY_INVALID, problems.map(({ at, message }) => `${formatLocation(at)}: ${message}`).join('\n'));
  return { clients: Object.freeze(merged) };
}

function suggestRule(ruleId: string, known: readonly string[]): string {
  if (known.length === 0) return 'the policy has no rules yet';
  const suggestion = suggestKey(ruleId, known);
  if (suggestion.startsWith('did you mean')) return suggestion;
  const listed = known.slice(0, MAX_LISTED_RULE_IDS).map((id) => `'${id}'`).join(', ');
  return `the rule ids are ${listed}${known.length > MAX_LISTED_RULE_IDS ? ', ...' : ''}`;
}

function withExtendedAt(source: SourceLocation, extendedAt: SourceLocation | undefined): SourceLocation {
  return Object.freeze(extendedAt === undefined ? source : { ...source, extendedAt });
}

/** "preset:npm-read:12:9 (extended at policy.yaml:2:5)". */
function describeSource(location: SourceLocation): string {
  const chain = extendedChain(location);
  return chain.length === 0 ? formatLocation(location) : `${formatLocation(location)} (extended at ${chain.join(', then at ')})`;
}
