// Runs the fuzz targets with Jazzer.js (libFuzzer) and prints, per target, executions, coverage
// (libFuzzer's "cov", instrumented edges reached) and crashes.
//   node fuzz/run-targets.mjs [--target NAME] [--seconds N]      (default: every target, $SRT_GW_FUZZ_SECONDS or 60 s)
// New corpus entries go to fuzz/.work/<target>/ (the seed corpus in fuzz/corpus/ is only read);
// a crash is saved as fuzz/findings/<target>/crash-*; turn it into a regression input under
// fuzz/regressions/<target>/ and a unit test beside the parser once fixed.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureJazzerAddonLoads } from './jazzer-glibc-compat.mjs';
import { FUZZ_TARGETS } from './targets.mjs';

const fuzzDir = dirname(fileURLToPath(import.meta.url));
const root = dirname(fuzzDir);

const { values } = parseArgs({
  options: { target: { type: 'string', multiple: true }, seconds: { type: 'string' } },
});
const seconds = Number(values.seconds ?? process.env.SRT_GW_FUZZ_SECONDS ?? 60);
if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--seconds / SRT_GW_FUZZ_SECONDS must be a positive number (got ${values.seconds ?? process.env.SRT_GW_FUZZ_SECONDS})`);
const names = values.target ?? FUZZ_TARGETS.map((t) => t.name);
const unknown = names.filter((name) => !FUZZ_TARGETS.some((t) => t.name === name));
if (unknown.length > 0) {
  console.error(`unknown target ${unknown.join(', ')}; targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
if (!existsSync(join(root, 'dist', 'errors.js'))) {
  console.error('dist/ is missing: run "npm run build" first (npm run fuzz does)');
  process.exit(2);
}
ensureJazzerAddonLoads();

/** Runs one target; resolves to its summary line's numbers. */
export function runTarget(target, seconds) {
  const work = join(fuzzDir, '.work', target.name);
  const findings = join(fuzzDir, 'findings', target.name);
  mkdirSync(work, { recursive: true });
  mkdirSync(findings, { recursive: true });
  const corpusDirs = [work, join(fuzzDir, 'corpus', target.name), join(fuzzDir, 'regressions', target.name)].filter(existsSync);
  const dictionary = join(fuzzDir, 'dictionaries', `${target.name}.dict`);
  const args = [
    join(root, 'node_modules', '@jazzer.js', 'core', 'dist', 'cli.js'),
    join(fuzzDir, 'targets', `${target.name}.fuzz.mjs`),
    ...corpusDirs,
    '--includes', join(root, 'dist') + '/',
    // The PROXY header parsing is proxy-protocol-js's: count its edges too.
    '--includes', 'proxy-protocol-js',
    ...(target.sync ? ['--sync'] : []),
    ...(target.disableBugDetectors ?? []).flatMap((pattern) => ['--disable_bug_detectors', pattern]),
    '--',
    `-max_total_time=${seconds}`,
    // Any single input slower than this is reported as a hang (the targets' own deadlines are shorter).
    '-timeout=20',
    '-print_final_stats=1',
    `-artifact_prefix=${findings}/`,
    ...(existsSync(dictionary) ? [`-dict=${dictionary}`] : []),
  ];
  const before = new Set(readdirSync(findings));
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk) => {
      output += chunk;
      if (output.length > 1_000_000) output = output.slice(-500_000);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('close', (code) => {
      const lastCoverage = [...output.matchAll(/^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/gm)].at(-1);
      const executions = Number(/stat::number_of_executed_units:\s+(\d+)/.exec(output)?.[1] ?? lastCoverage?.[1] ?? 0);
      const crashes = readdirSync(findings).filter((file) => !before.has(file));
      const modules = /Loaded (\d+) PC tables \((\d+) PCs\)/.exec(output);
      resolve({
        name: target.name,
        exitCode: code,
        executions,
        coverage: Number(lastCoverage?.[2] ?? 0),
        features: Number(lastCoverage?.[3] ?? 0),
        corpus: Number(lastCoverage?.[4] ?? 0),
        instrumentedEdges: Number(modules?.[2] ?? 0),
        crashes: crashes.map((file) => join(findings, file)),
        tail: output.split('\n').filter((line) => !line.startsWith('#')).slice(-25).join('\n'),
      });
    });
  });
}

let failed = false;
const results = [];
for (const name of names) {
  const target = FUZZ_TARGETS.find((t) => t.name === name);
  process.stdout.write(`fuzz ${name}: ${seconds} s ... `);
  const result = await runTarget(target, seconds);
  results.push(result);
  const ok = result.exitCode === 0 && result.crashes.length === 0;
  failed ||= !ok;
  console.log(`${result.executions} executions, cov ${result.coverage} of ${result.instrumentedEdges} instrumented edges (ft ${result.features}, corpus ${result.corpus}), ${result.crashes.length} crashes${ok ? '' : ` (exit ${result.exitCode})`}`);
  for (const crash of result.crashes) console.log(`  crash input: ${crash}`);
  if (!ok) console.log(result.tail.replace(/^/gm, '  | '));
}
console.log('\ntarget                 executions   cov/edges   crashes');
for (const r of results) {
  console.log(`${r.name.padEnd(22)} ${String(r.executions).padStart(10)}   ${`${r.coverage}/${r.instrumentedEdges}`.padStart(9)}   ${r.crashes.length}`);
}
process.exit(failed ? 1 : 0);
