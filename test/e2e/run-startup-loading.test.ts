// What `srt-gw run --allow HOST -- true` loads: with no policy file there is nothing to parse, so
// the vendored policy parser (zod, yaml) must stay unloaded, a third of the start-up otherwise.
// Observed through the vendored packages' code caches (cli/code-cache.ts requireWithCodeCache):
// a package that loads writes `.NAME.v8cache` beside it as the process exits. Runs a copy of
// dist/bin with no caches, so the repository's own are left alone. Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';

const ROOT = resolve(import.meta.dirname, '../..');
const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'));

describe.skipIf(skip !== null)('srt-gw run --allow HOST -- true', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'srt-gw-run-startup-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('loads neither zod nor yaml: no policy file, nothing to parse', () => {
    // The bundle finds its package (native helpers) through the nearest srt-gw package.json.
    const packageRoot = join(scratch, 'package');
    mkdirSync(join(packageRoot, 'native'), { recursive: true });
    writeFileSync(join(packageRoot, 'package.json'), JSON.stringify({ name: 'srt-gw', version: '0.0.0-test' }));
    symlinkSync(join(ROOT, 'native', 'build'), join(packageRoot, 'native', 'build'));
    cpSync(join(ROOT, 'dist', 'bin'), join(packageRoot, 'dist', 'bin'), { recursive: true, filter: (source) => !source.includes('.v8cache') });
    const project = join(scratch, 'project');
    mkdirSync(project);

    const result = spawnSync(
      process.execPath,
      [join(packageRoot, 'dist', 'bin', 'srt-gw.js'), 'run', '-q', '--ca-dir', join(scratch, 'ca'), '--allow', 'api.example.test', '--', 'true'],
      { cwd: project, encoding: 'utf8', timeout: 60_000 },
    );
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    const loaded = readdirSync(join(packageRoot, 'dist', 'bin', 'vendor')).filter((name) => name.endsWith('.v8cache'));
    expect(loaded).not.toContain('.zod.v8cache');
    expect(loaded).not.toContain('.yaml.v8cache');
  });
});
