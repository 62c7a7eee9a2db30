// Every fuzz target (fuzz/targets.mjs) replays its seed corpus and its regression inputs (crashes
// the fuzzer once found) in-process, so each parser's contract is checked on every test run; and
// Jazzer.js itself runs a bounded number of inputs, so a fuzzer that cannot load here fails CI
// instead of rotting until someone runs `npm run fuzz`. The targets drive dist/ (npm test builds it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const fuzzDir = join(root, 'fuzz');

interface FuzzTargetEntry {
  name: string;
  sync: boolean;
}
interface FuzzTargetModule {
  fuzz(data: Buffer): void | Promise<void>;
}

const targetsUrl = pathToFileURL(join(fuzzDir, 'targets.mjs')).href;
const { FUZZ_TARGETS } = (await import(targetsUrl)) as { FUZZ_TARGETS: FuzzTargetEntry[] };

function inputsOf(kind: 'corpus' | 'regressions', name: string): { file: string; bytes: Buffer }[] {
  const dir = join(fuzzDir, kind, name);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((file) => ({ file: `${kind}/${name}/${file}`, bytes: readFileSync(join(dir, file)) }));
}

describe('fuzz targets replay their corpus', () => {
  test('dist/ is built (the targets drive the compiled modules)', () => {
    expect(existsSync(join(root, 'dist', 'errors.js')), 'run "npm run build" first').toBe(true);
  });

  for (const { name } of FUZZ_TARGETS) {
    test(`${name}: every seed and regression input keeps the target's contract`, { timeout: 120_000 }, async () => {
      const seeds = inputsOf('corpus', name);
      expect(seeds.length, `fuzz/corpus/${name}/ holds a handful of realistic inputs`).toBeGreaterThanOrEqual(4);
      const target = (await import(pathToFileURL(join(fuzzDir, 'targets', `${name}.fuzz.mjs`)).href)) as FuzzTargetModule;
      for (const { file, bytes } of [...seeds, ...inputsOf('regressions', name)]) {
        await expect(Promise.resolve().then(() => target.fuzz(bytes)), file).resolves.toBeUndefined();
      }
    });
  }
});

describe('Jazzer.js', () => {
  test('the fuzzer loads here and runs a target for a bounded number of inputs', { timeout: 180_000 }, () => {
    const work = mkdtempSync(join(tmpdir(), 'srt-gw-fuzz-smoke-'));
    try {
      const compat = spawnSync(process.execPath, [join(fuzzDir, 'jazzer-glibc-compat.mjs')], { cwd: root, encoding: 'utf8' });
      expect(compat.status, `the Jazzer.js addon must load (npm ci installs it): ${compat.stderr}`).toBe(0);
      const run = spawnSync(
        process.execPath,
        [
          join(root, 'node_modules', '@jazzer.js', 'core', 'dist', 'cli.js'),
          join(fuzzDir, 'targets', 'path-normalization.fuzz.mjs'),
          work,
          join(fuzzDir, 'corpus', 'path-normalization'),
          '--sync',
          '--includes',
          `${join(root, 'dist')}/`,
          '--',
          '-runs=3000',
          `-artifact_prefix=${work}/`,
        ],
        { cwd: root, encoding: 'utf8', timeout: 170_000 },
      );
      const output = `${run.stdout}${run.stderr}`;
      expect(run.status, output.slice(-3000)).toBe(0);
      expect(output).toMatch(/Done 3000 runs/);
      // Coverage feedback works: instrumented edges of dist/ were reached.
      const coverage = Number(/DONE\s+cov: (\d+)/.exec(output)?.[1] ?? 0);
      expect(coverage).toBeGreaterThan(50);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
