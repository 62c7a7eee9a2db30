// `srt-gw policy trust [FILE]`, `policy untrust [FILE]` and `policy trust --list`: record, forget
// and list the policy files `srt-gw run` may obey when it finds them on its own.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { srtSettingsCandidate } from '../jail/run-in-jail.js';
import { PolicyTrustStore, sha256Hex, trustKey } from './policy-trust.js';

/** The file a bare `policy trust` means: the project's .srt-gw.yaml, else its .srt.json. */
function defaultFile(cwd: string): string {
  const candidates = [resolve(cwd, '.srt-gw.yaml'), srtSettingsCandidate(cwd)];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (found === undefined) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `no ./.srt-gw.yaml or ./.srt.json here; name the file: srt-gw policy trust FILE`);
  return found;
}

function refuseInsideJail(): void {
  // Inside a jail the state directory is hidden; say so rather than fail on a read-only mount.
  if (process.env.SRT_GW_JAIL === '1') {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'policy trust cannot run inside an srt-gw jail: trusting is for you to do, outside any jail');
  }
}

/**
 * Validates FILE (a policy, or srt settings for .json) and trusts it and every file it extends,
 * in the exact content read now: the same bytes that are checked are the ones recorded.
 */
export async function trustPolicy(file: string | undefined): Promise<number> {
  refuseInsideJail();
  const path = resolve(file ?? defaultFile(process.cwd()));
  const { parsePolicy, readPolicyFileText } = await import('../policies/loader.js');
  const text = readPolicyFileText(path);
  const extended: [string, string][] = [];
  if (path.endsWith('.json')) {
    const { importSrtSettingsText } = await import('../policies/srt-settings.js');
    importSrtSettingsText(text, path);
  } else {
    parsePolicy(text, path, { onExtendedFile: (extendedPath, extendedText) => extended.push([extendedPath, extendedText]) });
  }
  const store = PolicyTrustStore.open();
  for (const [trustedPath, trustedText] of [[path, text] as [string, string], ...extended]) {
    store.trust(trustedPath, trustedText);
    process.stdout.write(`trusted ${trustKey(trustedPath)} (sha256 ${sha256Hex(trustedText).slice(0, 16)}…)\n`);
  }
  store.save();
  return 0;
}

export function untrustPolicy(file: string | undefined): number {
  refuseInsideJail();
  const path = resolve(file ?? defaultFile(process.cwd()));
  const store = PolicyTrustStore.open();
  if (!store.forget(path)) {
    process.stderr.write(`${trustKey(path)} was not trusted\n`);
    return 1;
  }
  store.save();
  process.stdout.write(`no longer trusted: ${trustKey(path)}\n`);
  return 0;
}

export function listTrustedPolicies(): number {
  const entries = PolicyTrustStore.open().entries();
  if (entries.length === 0) process.stdout.write('no policy files are trusted (srt-gw policy trust FILE)\n');
  for (const [path, hash] of entries) process.stdout.write(`${hash.slice(0, 16)}…  ${path}${stateNow(path, hash)}\n`);
  return 0;
}

function stateNow(path: string, hash: string): string {
  try {
    return sha256Hex(readFileSync(path, 'utf8')) === hash ? '' : '  (changed since: not obeyed until trusted again)';
  } catch {
    return '  (cannot be read now)';
  }
}
