#!/usr/bin/env node
// `npm run bench` (heap part): what cli/heap-tuning.ts does to V8's collector, measured in fresh
// node processes, since the flags it sets are process-wide. These are experiments on the
// collector, whose results follow the machine's speed and load, so they live here and not in the
// test suite: each prints PASS or MISS with the figures.
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const MODULE = join(REPO_ROOT, 'dist', 'cli', 'heap-tuning.js');
const MB = 1024 * 1024;

const { OLD_GENERATION_GROWTH_PERCENT, YOUNG_GENERATION_CAP_BYTES } = await import(MODULE);

/** Runs an ES module `script` in a new node process with `nodeFlags`; returns what it printed. */
const runInNode = (script, nodeFlags = []) => execFileSync(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { encoding: 'utf8' });

/** Largest young generation (MB) while objects that survive a scavenge or two keep being made. */
function youngGenerationPeak(tune) {
  const script = `
    import v8 from 'node:v8';
    import { tuneHeapForProxying } from ${JSON.stringify(MODULE)};
    if (${tune}) tuneHeapForProxying();
    let peak = 0;
    const sample = () => { peak = Math.max(peak, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size); };
    let kept = [];
    // Small steps with turns of the event loop between them, as a proxy's requests are: the
    // observer runs between turns (node hands it the collections' entries with setImmediate).
    for (let round = 0; round < 800; round++) {
      for (let i = 0; i < 5000; i++) { kept.push({ i, text: 'x' + i }); if (kept.length > 200000) kept = []; }
      sample();
      await new Promise((resolve) => setImmediate(resolve));
    }
    process.stdout.write(String(peak));`;
  return Number(runInNode(script)) / MB;
}

/** Largest old-generation use (MB) under a churn that keeps promoting objects that then die. */
function oldGenerationPeak(nodeFlags) {
  const script = `
    import v8 from 'node:v8';
    import { tuneHeapForProxying } from ${JSON.stringify(MODULE)};
    tuneHeapForProxying();
    const used = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
    // A live set of ~20 MB replaced piece by piece, as connections come and go: each object
    // outlives a few scavenges, is promoted, and dies in the old generation. The first third
    // of the rounds fills the set and is not measured.
    const ring = new Array(80000);
    let at = 0, peak = 0;
    for (let round = 0; round < 900; round++) {
      for (let i = 0; i < 2000; i++) { ring[at] = { at, text: 'x'.repeat(100) + at, list: [at, at + 1] }; at = (at + 1) % ring.length; }
      if (round >= 300) peak = Math.max(peak, used());
      await new Promise((resolve) => setImmediate(resolve));
    }
    process.stdout.write(String(peak));`;
  return Number(runInNode(script, nodeFlags)) / MB;
}

function bulkSwitch() {
  const script = `
    import { tuneHeapForProxying } from ${JSON.stringify(MODULE)};
    const growth = tuneHeapForProxying();
    const before = growth.percent;
    // 16 KiB buffers, as TLS records are, up to 16 MB at a time, for 0.6 s (six samples).
    let buffers = [];
    const end = performance.now() + 600;
    while (performance.now() < end) {
      for (let i = 0; i < 64; i++) buffers.push(Buffer.allocUnsafeSlow(16384));
      if (buffers.length > 1024) buffers = [];
      await new Promise((resolve) => setImmediate(resolve));
    }
    process.stdout.write(JSON.stringify({ before, after: growth.percent }));`;
  return JSON.parse(runInNode(script));
}

const verdict = (pass) => (pass ? 'PASS' : 'MISS');
const fixed = oldGenerationPeak([`--heap-growing-percent=${OLD_GENERATION_GROWTH_PERCENT.bulk}`]);
const steered = oldGenerationPeak([]);
console.log(`heap: old generation peak under churn: steered ${steered.toFixed(1)} MB, fixed 3x ${fixed.toFixed(1)} MB (target < 85 %): ${verdict(steered < fixed * 0.85)}`);
const seen = bulkSwitch();
console.log(`heap: growth while buffers pile up: ${seen.before} % → ${seen.after} % (target ${OLD_GENERATION_GROWTH_PERCENT.steady} → ${OLD_GENERATION_GROWTH_PERCENT.bulk}): ${verdict(seen.before === OLD_GENERATION_GROWTH_PERCENT.steady && seen.after === OLD_GENERATION_GROWTH_PERCENT.bulk)}`);
const untuned = youngGenerationPeak(false);
const capped = youngGenerationPeak(true);
console.log(`heap: young generation peak: V8 alone ${untuned.toFixed(1)} MB, tuned ${capped.toFixed(1)} MB (cap ${YOUNG_GENERATION_CAP_BYTES / MB} MB): ${verdict(capped <= YOUNG_GENERATION_CAP_BYTES / MB)}`);
