// Policy YAML text through parsePolicy: YAML parse, schema validation, conversion, extends.
// Contract: returns a policy or throws SrtGwError (POLICY_INVALID / POLICY_UNREADABLE), never
// another error; a loaded policy's hosts are normalised. `extends:` paths resolve inside an
// empty temporary directory, so the fuzzer cannot pull in files of this machine.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy } from '../../dist/policies/loader.js';
import { ErrorCodes } from '../../dist/errors.js';
import { expectOnlySrtGwError } from '../target-contract.mjs';

const baseDirectory = mkdtempSync(join(tmpdir(), 'srt-gw-fuzz-policy-'));

export function fuzz(data) {
  const text = data.toString('utf8');
  expectOnlySrtGwError(() => parsePolicy(text, 'policy.yaml', { baseDirectory }), [ErrorCodes.POLICY_INVALID, ErrorCodes.POLICY_UNREADABLE]);
}
