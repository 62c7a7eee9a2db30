// `srt-gw token issue`, `token revoke` and `token list`: mint, revoke and list the tokens of the
// policy's `issued: {}` clients, signed with the key in the client-tokens directory that
// `srt-gw serve` reads (identity/issued-tokens.ts).
import { readFileSync } from 'node:fs';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { IssuedTokenLedger } from '../identity/issued-token-ledger.js';
import { issueClientToken, MAX_ISSUED_TOKEN_TTL_SECONDS, readIssuedTokenForRevocation } from '../identity/issued-tokens.js';
import { FileRevocationStore, type RevokedToken } from '../identity/revocation-store.js';
import { ensureTokenStateDirectory, tokenStatePaths } from '../identity/token-state-directory.js';
import { CLIENT_ID_PATTERN } from '../policies/schema/clients.js';

const TTL_UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/** "90s", "15m", "1h", "7d", or whole seconds. */
export function parseTtl(text: string): number {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  const seconds = match === null ? Number.NaN : Number(match[1]) * TTL_UNITS[match[2] === '' ? 's' : match[2]!]!;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_ISSUED_TOKEN_TTL_SECONDS) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--ttl must be a duration such as 30m, 1h or 7d, at most ${MAX_ISSUED_TOKEN_TTL_SECONDS / 86400}d (got ${JSON.stringify(text)})`);
  }
  return seconds;
}

function refuseInsideJail(what: string): void {
  // A jailed command minting or revoking tokens for the gateway that guards it would defeat it.
  if (process.env.SRT_GW_JAIL === '1') throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `token ${what} cannot run inside an srt-gw jail`);
}

export interface TokenIssueFlags {
  readonly client: string;
  readonly ttl: string;
  readonly stateDir?: string;
  readonly json: boolean;
}

export async function tokenIssue(flags: TokenIssueFlags): Promise<number> {
  refuseInsideJail('issue');
  if (!CLIENT_ID_PATTERN.test(flags.client)) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--client must be the id of an "issued: {}" client of the policy, such as laptops (got ${JSON.stringify(flags.client)})`);
  }
  const ttlSeconds = parseTtl(flags.ttl);
  const paths = ensureTokenStateDirectory(flags.stateDir);
  const { token, record } = await issueClientToken(paths, flags.client, ttlSeconds);
  const expires = new Date(record.expiresAt).toISOString();
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ token, jti: record.jti, client: record.clientId, expiresAt: expires })}\n`);
  } else {
    process.stdout.write(`${token}\n`);
    process.stderr.write(
      `srt-gw: token for client ${record.clientId}, jti ${record.jti}, expires ${expires}.\n` +
        `  The gateway accepts it if its policy has "- id: ${record.clientId}" with "issued: {}" and reads ${paths.directory}.\n` +
        `  Send it as Proxy-Authorization: Bearer TOKEN, or in a proxy URL: http://${record.clientId}:TOKEN@HOST:PORT\n`,
    );
  }
  return 0;
}

export interface TokenRevokeFlags {
  readonly jti?: string;
  readonly stateDir?: string;
  /** The shared state of `serve --state`: the revocation is written there too, for every replica. */
  readonly state?: string;
}

export async function tokenRevoke(token: string | undefined, flags: TokenRevokeFlags): Promise<number> {
  refuseInsideJail('revoke');
  if ((token === undefined) === (flags.jti === undefined)) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'name the token to revoke: srt-gw token revoke TOKEN (- reads it from standard input), or srt-gw token revoke --jti ID');
  }
  const paths = ensureTokenStateDirectory(flags.stateDir);
  const ledger = new IssuedTokenLedger(paths.issued);
  let target: { jti: string; clientId?: string; expiresAt?: number };
  if (token !== undefined) {
    const text = token === '-' ? readFileSync(0, 'utf8').trim() : token.trim();
    target = await readIssuedTokenForRevocation(paths, text);
  } else {
    const record = ledger.find(flags.jti!);
    if (record === undefined) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `no token with jti ${flags.jti!} was minted from ${paths.directory}; srt-gw token list shows them`);
    target = record;
  }
  const store = new FileRevocationStore(paths.revoked, { checkIntervalMs: 0 });
  const client = target.clientId === undefined ? '' : ` (client ${target.clientId})`;
  if (flags.state !== undefined) await revokeInSharedState(flags.state, { ...target, revokedAt: Date.now() });
  if (await store.isRevoked(target.jti)) {
    process.stdout.write(`jti ${target.jti}${client} was already revoked\n`);
    return 0;
  }
  await store.revoke({ ...target, revokedAt: Date.now() });
  process.stdout.write(`revoked jti ${target.jti}${client}; gateways reading ${paths.directory} refuse it within seconds\n`);
  return 0;
}

export interface TokenListFlags {
  readonly stateDir?: string;
  readonly json: boolean;
}

export async function tokenList(flags: TokenListFlags): Promise<number> {
  const paths = tokenStatePaths(flags.stateDir);
  const records = new IssuedTokenLedger(paths.issued).list();
  const revoked = new Set((await new FileRevocationStore(paths.revoked, { checkIntervalMs: 0 }).list()).map((entry) => entry.jti));
  const now = Date.now();
  const rows = records.map((record) => ({
    jti: record.jti,
    client: record.clientId,
    issuedAt: new Date(record.issuedAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
    state: revoked.has(record.jti) ? 'revoked' : record.expiresAt <= now ? 'expired' : 'active',
  }));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return 0;
  }
  if (rows.length === 0) {
    process.stdout.write(`no tokens minted from ${paths.directory} (srt-gw token issue --client ID)\n`);
    return 0;
  }
  const clientWidth = Math.max(6, ...rows.map((row) => row.client.length));
  process.stdout.write(`${'JTI'.padEnd(36)}  ${'CLIENT'.padEnd(clientWidth)}  ${'EXPIRES'.padEnd(24)}  STATE\n`);
  for (const row of rows) process.stdout.write(`${row.jti.padEnd(36)}  ${row.client.padEnd(clientWidth)}  ${row.expiresAt.padEnd(24)}  ${row.state}\n`);
  return 0;
}

/** Writes the revocation to the Redis of `serve --state`, which every replica reads for each request. */
async function revokeInSharedState(url: string, entry: RevokedToken): Promise<void> {
  const { parseStateLocation } = await import('../gateway/state/state-url.js');
  const { connectRedisState, waitUntilUp } = await import('../gateway/state/redis-state.js');
  const { RedisRevocationStore } = await import('../gateway/state/redis-revocation-store.js');
  const location = parseStateLocation(url);
  const state = await connectRedisState(location, { commandTimeoutMs: 5000 });
  try {
    await waitUntilUp(state, 10_000);
    await new RedisRevocationStore(state).revoke(entry);
    process.stdout.write(`revoked jti ${entry.jti} in ${location.display}: every serve --state replica refuses it now\n`);
  } catch (error) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `could not write the revocation to ${location.display}: ${(error as Error).message}; nothing was revoked there (run it again)`, { cause: error });
  } finally {
    await state.close();
  }
}
