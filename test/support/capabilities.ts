// Tests that need a capability (root, bubblewrap, a Debian tool) call these. Outside CI a missing
// capability skips the test and says why; with CI=true it fails, because it means .ci/run forgot
// to install something.
import { execFileSync } from 'node:child_process';

const inCi = process.env.CI === 'true';

/** Returns null when the command exists on PATH, else a reason. */
export function missingCommand(command: string): string | null {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return null;
  } catch {
    return `${command} is not installed`;
  }
}

export function missingRoot(): string | null {
  return process.getuid?.() === 0 ? null : 'needs root';
}

/**
 * Combine reasons; returns the skip reason (or null to run). Throws under CI, so a
 * capability missing there is a red build rather than a silent skip.
 */
export function capabilityGate(...reasons: (string | null)[]): string | null {
  const missing = reasons.filter((r): r is string => r !== null);
  if (missing.length === 0) return null;
  const reason = missing.join('; ');
  if (inCi) throw new Error(`CI=true but a test capability is missing: ${reason}. Fix .ci/run.`);
  process.stderr.write(`[skip] ${reason}\n`);
  return reason;
}
