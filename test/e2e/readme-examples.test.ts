// The library examples of README.md and docs/library.md cannot rot: each ```js example block is
// written to a file that imports 'srt-gw' as an installed package would (node_modules/srt-gw →
// this repository, so its package.json `exports` map is what resolves), run with node, and its
// stdout compared with the ```text output block under it. Blocks marked `jail` need what srt-gw
// run needs.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { createJailWorkdir, jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, JAIL_PATH, REPO_ROOT } from '../support/srt-gw-run.js';

const execFileAsync = promisify(execFile);
const skipJail = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('curl'), missingCommand('cc'), missingCommand('git'));

interface Example {
  name: string;
  code: string;
  output: string;
  jail: boolean;
}

/** Every ```js example block of a markdown file with the ```text output block that must follow it. */
function markdownExamples(file: string, text: string): Example[] {
  const examples: Example[] = [];
  const block = /^```js example( jail)?\n([\s\S]*?)^```\n\s*(```text output\n([\s\S]*?)^```\n)?/gm;
  for (const match of text.matchAll(block)) {
    const line = text.slice(0, match.index).split('\n').length;
    if (match[3] === undefined) throw new Error(`${file}:${line}: a js example block must be followed by a text output block`);
    examples.push({ name: `${file}:${line}`, code: match[2]!, output: match[4]!, jail: match[1] !== undefined });
  }
  return examples;
}

const examples = ['README.md', 'docs/library.md'].flatMap((file) => markdownExamples(file, readFileSync(join(REPO_ROOT, file), 'utf8')));

describe('library examples in README.md and docs/library.md', () => {
  let dir: string;
  let work: string;

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-readme-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(REPO_ROOT, join(dir, 'node_modules', 'srt-gw'), 'dir');
    mkdirSync(join(dir, 'home'));
    work = createJailWorkdir(dir, 'work');
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('there are examples, with and without the jail', () => {
    expect(examples.filter((e) => !e.jail).length).toBeGreaterThanOrEqual(2);
    expect(examples.filter((e) => e.jail).length).toBeGreaterThanOrEqual(2);
  });

  it.for(examples)('$name runs and prints what the docs say', async (example, { skip }) => {
    if (example.jail && skipJail !== null) skip(skipJail);
    const file = join(dir, `example-${example.name.replace(/\W/g, '-')}.mjs`);
    writeFileSync(file, example.code);
    const { stdout, stderr } = await execFileAsync(process.execPath, [file], {
      cwd: work,
      env: jailTestEnv({ PATH: JAIL_PATH, HOME: join(dir, 'home'), SRT_GW_CA_DIR: join(dir, 'ca') }),
      timeout: 60_000,
    }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`${example.name} failed: ${error.message}\nstdout: ${error.stdout}\nstderr: ${error.stderr}`);
    });
    expect(stdout).toBe(example.output);
    expect(stderr).toBe('');
  });
});
