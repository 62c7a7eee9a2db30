// Reads the secrets a policy's `inject` rules name (env var, file, command output) into the
// gateway — at start and again at every reload — and pairs each with its placeholder. A secret
// that cannot be read fails the start (or the reload, keeping the old policy) with a message
// that names the rule and the source, never the value.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { ErrorCodes, SrtGwError } from '../../errors.js';
import type { ResolvedCredential } from '../../policies/credential-rewrite.js';
import { describeLocation, describeSecretSource, placeholderFor } from '../../policies/credentials.js';
import { extendedChain, formatLocation } from '../../policies/source-location.js';
import type { CredentialRule, Policy, SecretSource } from '../../policies/types.js';


/** Rule id → its credential rules, for every rule that has some. */
export type RuleCredentials = ReadonlyMap<string, readonly ResolvedCredential[]>;

export const EMPTY_RULE_CREDENTIALS: RuleCredentials = new Map();

/** Shorter secrets cannot be masked in responses without mangling ordinary text. */
export const MIN_SECRET_LENGTH = 8;
/** Bounds what a secret file or command may produce: a secret is a line, not a document. */
const MAX_SECRET_BYTES = 16 * 1024;
const COMMAND_TIMEOUT_MS = 10_000;

export interface SecretReadOptions {
  /** Where `env` sources are read. Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

/** Reads every secret the policy injects; each distinct source is read once. */
export async function loadRuleCredentials(policy: Policy, options: SecretReadOptions = {}): Promise<RuleCredentials> {
  const env = options.env ?? process.env;
  const reads = new Map<string, Promise<string>>();
  const resolved = new Map<string, readonly ResolvedCredential[]>();
  for (const rule of policy.rules) {
    if (rule.credentials === undefined || rule.action !== 'allow' || rule.protocol !== 'http') continue;
    const entries: ResolvedCredential[] = [];
    for (const credential of rule.credentials) {
      const action = credential.action;
      if (action.kind === 'require') {
        entries.push({ rule: credential, kind: 'require', sha256: new Set(action.sha256) });
      } else if (action.kind === 'strip') {
        entries.push({ rule: credential, kind: 'strip' });
      } else {
        const key = JSON.stringify(action.source);
        let read = reads.get(key);
        if (read === undefined) {
          read = readSecret(action.source, env);
          // Rejections are handled where each read is awaited below.
          read.catch(() => undefined);
          reads.set(key, read);
        }
        let secret: string;
        try {
          secret = await read;
        } catch (error) {
          const why = error instanceof SrtGwError ? error.message : 'it could not be read';
          throw new SrtGwError(ErrorCodes.CREDENTIAL_UNAVAILABLE, `${where(credential)}rule ${rule.id}: the secret for ${describeLocation(credential.location)} ${why}`, {
            cause: error instanceof SrtGwError ? error.cause : error,
          });
        }
        const placeholder = placeholderFor(action.source, rule.id);
        if (secret === placeholder) {
          throw new SrtGwError(
            ErrorCodes.CREDENTIAL_UNAVAILABLE,
            `${where(credential)}rule ${rule.id}: the secret for ${describeLocation(credential.location)} from ${describeSecretSource(action.source)} holds the placeholder, not the real secret (is srt-gw running inside its own jail?)`,
          );
        }
        entries.push({ rule: credential, kind: 'inject', secret, placeholder });
      }
    }
    resolved.set(rule.id, Object.freeze(entries));
  }
  return resolved;
}

/** The trimmed secret; throws an SrtGwError whose message completes "the secret for X ...". */
async function readSecret(source: SecretSource, env: NodeJS.ProcessEnv): Promise<string> {
  let raw: string;
  switch (source.kind) {
    case 'env': {
      const value = env[source.name];
      if (value === undefined) throw unavailable(`cannot be read: environment variable ${source.name} is not set; set it where srt-gw starts, or change the rule's inject source`);
      raw = value;
      break;
    }
    case 'file':
      raw = await readSecretFile(source.path);
      break;
    case 'command':
      raw = await runSecretCommand(source.argv, source.cwd);
      break;
  }
  const secret = raw.trim();
  const from = describeSecretSource(source);
  if (secret === '') throw unavailable(`is empty: ${from} holds nothing (besides white space)`);
  // SECURITY: the secret goes into a header or a URL; a line break would let it add headers
  // of its own — gateway/credentials/credential-secrets.test.ts "a line break inside the value".
  if (!/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/.test(secret)) {
    throw unavailable(`from ${from} contains characters that cannot be sent in a header (only printable ASCII; no line breaks or control characters)`);
  }
  if (secret.length < MIN_SECRET_LENGTH) {
    throw unavailable(`from ${from} is shorter than ${MIN_SECRET_LENGTH} characters, too short to be masked reliably in responses`);
  }
  return secret;
}

async function readSecretFile(path: string): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'it does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied; make it readable by the user srt-gw runs as'
          : code === 'EISDIR'
            ? 'it is a directory; name the file inside it'
            : (code ?? 'read failed');
    throw unavailable(`cannot be read from file ${path}: ${why}`, error);
  }
  if (data.length > MAX_SECRET_BYTES) throw unavailable(`cannot be read from file ${path}: it is larger than ${MAX_SECRET_BYTES} bytes, which is not a secret`);
  return data.toString('utf8');
}

function runSecretCommand(argv: readonly string[], cwd: string): Promise<string> {
  const [program, ...args] = argv;
  const shown = argv.join(' ');
  return new Promise((resolve, reject) => {
    execFile(
      program ?? '',
      args,
      { cwd, timeout: COMMAND_TIMEOUT_MS, maxBuffer: MAX_SECRET_BYTES, encoding: 'utf8', windowsHide: true },
      (error, stdout) => {
        if (error === null) {
          resolve(stdout);
          return;
        }
        // Neither stdout nor stderr goes into the message: either may hold the secret.
        const failure = error as { code?: string | number | null; killed?: boolean; signal?: string | null };
        let why: string;
        if (failure.code === 'ENOENT') why = `${program ?? ''} was not found`;
        else if (failure.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') why = `it printed more than ${MAX_SECRET_BYTES} bytes`;
        else if (failure.killed === true || failure.signal) why = `it did not finish within ${COMMAND_TIMEOUT_MS / 1000} s (or was killed by ${failure.signal ?? 'a signal'})`;
        else if (typeof failure.code === 'number') why = `it exited with status ${failure.code}`;
        else why = typeof failure.code === 'string' ? failure.code : 'it failed';
        reject(unavailable(`cannot be read from command ${shown}: ${why}`, error));
      },
    );
  });
}

function unavailable(message: string, cause?: unknown): SrtGwError {
  return new SrtGwError(ErrorCodes.CREDENTIAL_UNAVAILABLE, message, cause === undefined ? undefined : { cause });
}

/** "policy.yaml:12:5: ", or for a preset's rule "preset:anthropic:26:9 (extended at policy.yaml:3:5): ". */
function where(credential: CredentialRule): string {
  const source = credential.source;
  if (source === undefined) return '';
  const chain = extendedChain(source);
  return `${formatLocation(source)}${chain.length === 0 ? '' : ` (extended at ${chain.join(', then at ')})`}: `;
}
