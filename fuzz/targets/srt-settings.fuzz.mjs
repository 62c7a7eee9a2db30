// srt settings JSON through importSrtSettingsText and renderSrtImport, then the rendered policy
// back through parsePolicy.
// Contract: importing throws only SrtGwError SRT_SETTINGS_INVALID; an import that succeeds
// renders to policy YAML that itself loads or is refused with POLICY_INVALID, never another error.
import { importSrtSettingsText, renderSrtImport } from '../../dist/policies/srt-settings.js';
import { parsePolicy } from '../../dist/policies/loader.js';
import { ErrorCodes } from '../../dist/errors.js';
import { expectOnlySrtGwError } from '../target-contract.mjs';

export function fuzz(data) {
  const text = data.toString('utf8');
  const imported = expectOnlySrtGwError(() => importSrtSettingsText(text, 'settings.json'), [ErrorCodes.SRT_SETTINGS_INVALID]);
  if ('error' in imported) return;
  const yaml = renderSrtImport(imported.value, 'settings.json');
  expectOnlySrtGwError(() => parsePolicy(yaml, '<inline>'), [ErrorCodes.POLICY_INVALID, ErrorCodes.POLICY_UNREADABLE]);
}
