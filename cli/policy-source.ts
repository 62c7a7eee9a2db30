// Builds the policy a command runs with: --policy / --srt-settings, --allow and
// --allow-local-binding flags, or, for `srt-gw run`, the first policy found in the usual places.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { policyCandidates, srtSettingsCandidate } from '../jail/run-in-jail.js';
import { allowHostRule } from '../policies/allow-host-rule.js';
import { policyFiles } from '../policies/policy-files.js';
import type { Policy } from '../policies/types.js';
import { PolicyTrustStore } from './policy-trust.js';

// The YAML parser and the schema load only when a policy file is read: `srt-gw run --allow H`
// and a run with no policy start without them.
async function loadPolicyFile(path: string): Promise<Policy> {
  return (await import('../policies/loader.js')).loadPolicyFile(path);
}

/**
 * The policy file and the files it extends: all read-only in the jail, like the policy itself.
 * SECURITY: a command that could edit a file the policy extends would widen its own policy at
 * the next run — test/e2e/presets.test.ts "stays read-only in the jail".
 */
function filesOf(policy: Policy, file: string): string[] {
  return policy.origin === undefined ? [file] : policyFiles(policy, file);
}

export async function policyFromFlags(policyFile: string | undefined, allowHosts: readonly string[]): Promise<Policy> {
  const base: Policy = policyFile ? await loadPolicyFile(policyFile) : { version: 1, rules: [] };
  return withAllowedHosts(base, allowHosts);
}

function withAllowedHosts(base: Policy, allowHosts: readonly string[]): Policy {
  if (allowHosts.length === 0) return base;
  const extra = allowHosts.map((host) => allowHostRule(host));
  const ids = new Set(base.rules.map((rule) => rule.id));
  for (const rule of extra) {
    if (ids.has(rule.id)) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--allow ${rule.host}: the policy already has a rule with id ${rule.id}`);
    ids.add(rule.id);
  }
  return { ...base, rules: [...base.rules, ...extra] };
}

/** `--allow-local-binding` turns the setting on whatever the policy files say; without it they decide. */
function withLocalBinding(base: Policy, allowLocalBinding: boolean | undefined): Policy {
  if (allowLocalBinding !== true) return base;
  // The flag decides now, not the file that may have written false.
  return { ...base, jail: { ...base.jail, allowLocalBinding: true, sources: { ...base.jail?.sources, allowLocalBinding: undefined } } };
}

export interface RunPolicy {
  policy: Policy;
  /** The files it came from, extended files included (read-only inside the jail). */
  files: string[];
  /** Said on stderr before the run: where the policy came from, srt import warnings, or that there is none. */
  notices: string[];
}

/**
 * `srt-gw run`'s policy: --policy FILE, else --srt-settings FILE, else ./.srt-gw.yaml, else
 * ~/.config/srt-gw/policy.yaml, else the project's .srt.json; none of these → no network at all.
 * --allow HOST and --allow-local-binding add to whichever is used.
 */
export async function runPolicyFromFlags(
  /** `gateway`: a remote gateway decides the network (run --gateway), so no policy is no news. */
  flags: { policy?: string; srtSettings?: string; allow: readonly string[]; allowLocalBinding?: boolean; gateway?: string },
  cwd: string,
  home: string = homedir(),
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunPolicy> {
  const found = await runPolicyFromFiles(flags, cwd, home, env);
  return { ...found, policy: withLocalBinding(found.policy, flags.allowLocalBinding) };
}

/**
 * SECURITY: a policy srt-gw finds on its own may have been written by an earlier jail (the
 * working tree is writable there); it and every file it extends must be trusted in their exact
 * content, except files in srt-gw's own config directory, which no jail can write —
 * test/e2e/policy-trust.test.ts.
 */
function discoveredFileCheck(home: string, env: NodeJS.ProcessEnv): (path: string, text: string) => void {
  const trust = PolicyTrustStore.open(env, home);
  const configDirectory = join(home, '.config', 'srt-gw');
  return (path, text) => trust.check(path, text, configDirectory);
}

async function loadDiscoveredPolicy(path: string, check: (path: string, text: string) => void): Promise<Policy> {
  const { parsePolicy, readPolicyFileText } = await import('../policies/loader.js');
  const text = readPolicyFileText(path);
  check(path, text);
  return parsePolicy(text, path, { onExtendedFile: check });
}

async function runPolicyFromFiles(
  flags: { policy?: string; srtSettings?: string; allow: readonly string[]; gateway?: string },
  cwd: string,
  home: string,
  env: NodeJS.ProcessEnv,
): Promise<RunPolicy> {
  if (flags.policy && flags.srtSettings) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'give either --policy or --srt-settings, not both');
  }
  if (flags.policy) {
    const policy = await loadPolicyFile(flags.policy);
    return { policy: withAllowedHosts(policy, flags.allow), files: filesOf(policy, flags.policy), notices: [] };
  }
  if (flags.srtSettings) return fromSrtSettings(flags.srtSettings, flags.allow, null);
  const found = policyCandidates(cwd, home).find((candidate) => existsSync(candidate));
  if (found) {
    const policy = await loadDiscoveredPolicy(found, discoveredFileCheck(home, env));
    return { policy: withAllowedHosts(policy, flags.allow), files: filesOf(policy, found), notices: [`srt-gw: policy ${found}`] };
  }
  const srtFile = srtSettingsCandidate(cwd);
  if (existsSync(srtFile)) return fromSrtSettings(srtFile, flags.allow, discoveredFileCheck(home, env));
  const notices =
    flags.allow.length > 0 || flags.gateway !== undefined
      ? []
      : [
          `srt-gw: no policy (--policy FILE, ./.srt-gw.yaml or ~/.config/srt-gw/policy.yaml): the command runs with no network. Allow a host with --allow HOST.`,
        ];
  return { policy: withAllowedHosts({ version: 1, rules: [] }, flags.allow), files: [], notices };
}

/** `check` is set for a settings file srt-gw found on its own (see discoveredFileCheck). */
async function fromSrtSettings(file: string, allow: readonly string[], check: ((path: string, text: string) => void) | null): Promise<RunPolicy> {
  const discovered = check !== null;
  let text: string;
  try {
    // Synchronously: importing node:fs/promises for this would load it (and readline) at every start of run.
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new SrtGwError(ErrorCodes.POLICY_UNREADABLE, `cannot read srt settings ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  check?.(file, text);
  const { importSrtSettingsText, renderSrtImport } = await import('../policies/srt-settings.js');
  const { parsePolicy } = await import('../policies/loader.js');
  const imported = importSrtSettingsText(text, file);
  // Through the YAML loader, so the imported policy is validated exactly like a written one.
  const policy = parsePolicy(renderSrtImport(imported, file), file);
  const notices = [`srt-gw: ${discovered ? 'no srt-gw policy; using' : 'using'} srt settings ${file}`];
  for (const warning of imported.warnings) notices.push(`srt-gw: ${file}: ${warning}`);
  return { policy: withAllowedHosts(policy, allow), files: [file], notices };
}
