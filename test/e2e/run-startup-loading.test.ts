// What `srt-gw run` loads, and when: with no policy file there is nothing to parse, so the vendored
// policy parser (zod, yaml) must stay unloaded, a third of the start-up otherwise; so must the
// code of reviewed writes (whose records zod checks) in a run without them; and the upstream client
// (undici) loads once the jail uses the network, never for a command that does not.
// Observed through the vendored packages' code caches (cli/code-cache.ts requireWithCodeCache):
// a package that loads writes `.NAME.v8cache` beside it as the process exits. Each run uses a copy
// of dist/bin with no caches, so the repository's own are left alone. Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';

const ROOT = resolve(import.meta.dirname, '../..');
const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('getent'));
const ALLOWED = 'api.example.test';

describe.skipIf(skip !== null)('what srt-gw run loads', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'srt-gw-run-startup-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  let packages = 0;

  /** Runs `srt-gw run -q FLAGS -- COMMAND` from a fresh copy of the package; the vendored packages it loaded. */
  function loadedBy(flags: string[], command: string[]): string[] {
    // The bundle finds its package (native helpers) through the nearest srt-gw package.json.
    const packageRoot = join(scratch, `package-${++packages}`);
    mkdirSync(join(packageRoot, 'native'), { recursive: true });
    writeFileSync(join(packageRoot, 'package.json'), JSON.stringify({ name: 'srt-gw', version: '0.0.0-test' }));
    symlinkSync(join(ROOT, 'native', 'build'), join(packageRoot, 'native', 'build'));
    cpSync(join(ROOT, 'dist', 'bin'), join(packageRoot, 'dist', 'bin'), { recursive: true, filter: (source) => !source.includes('.v8cache') });
    const project = join(scratch, `project-${packages}`);
    mkdirSync(project);

    const result = spawnSync(process.execPath, [join(packageRoot, 'dist', 'bin', 'srt-gw.js'), 'run', '-q', '--ca-dir', join(scratch, 'ca'), ...flags, '--', ...command], {
      cwd: project,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return readdirSync(join(packageRoot, 'dist', 'bin', 'vendor'))
      .filter((name) => name.endsWith('.v8cache'))
      .map((name) => name.slice(1, -'.v8cache'.length));
  }

  it('--allow HOST -- true loads neither zod nor yaml: no policy file, nothing to parse, no reviewed writes', () => {
    const loaded = loadedBy(['--allow', ALLOWED], ['true']);
    expect(loaded).not.toContain('zod');
    expect(loaded).not.toContain('yaml');
  });

  it('-- true never loads the upstream client: the command made no DNS query and no connection', () => {
    expect(loadedBy([], ['true'])).not.toContain('undici');
  });

  it('the upstream client loads at the jail\'s first DNS query, before any request', () => {
    // getent resolves the name through the jail's DNS forwarder and connects nowhere.
    expect(loadedBy(['--allow', ALLOWED], ['getent', 'ahostsv4', ALLOWED])).toContain('undici');
  });
});
