#!/usr/bin/env node
// Runs vitest and closes with one plain line, "N passed, N failed, N skipped", summing every test
// that ran, so anyone reading a CI log sees the totals without knowing vitest. Under CI=true a
// skipped test is a failure: it means .ci/run did not install a capability a test needs.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

const report = '.vitest-report.json';
rmSync(report, { force: true });
const args = ['vitest', 'run', '--reporter=default', `--reporter=json`, `--outputFile.json=${report}`, ...process.argv.slice(2)];
const run = spawnSync('npx', args, { stdio: 'inherit' });

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const result = JSON.parse(readFileSync(report, 'utf8'));
  passed = result.numPassedTests;
  failed = result.numFailedTests;
  skipped = result.numPendingTests + (result.numTodoTests ?? 0);
  if (result.numFailedTestSuites > 0 && failed === 0) failed = result.numFailedTestSuites;
} catch (error) {
  console.error(`could not read the vitest report: ${error.message}`);
  failed = Math.max(failed, 1);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (process.env.CI === 'true' && skipped > 0) {
  console.error('CI=true: skipped tests are failures here (a capability .ci/run should install is missing).');
  process.exit(1);
}
process.exit(run.status === 0 && failed === 0 ? 0 : 1);
