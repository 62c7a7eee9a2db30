// The built `srt-gw` launcher and its per-command V8 code cache (cli/launcher.ts): the first run
// of a command writes the cache beside the bundle, later runs read it without rewriting it, a
// rebuilt bundle gets a new one, and SRT_GW_CODE_CACHE=0 writes nothing. Runs a copy of dist/bin
// so that the repository's own caches are left alone. Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const scratch = mkdtempSync(join(tmpdir(), 'srt-gw-cli-cache-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

let packageRoot: string;
let bin: string;

beforeEach(() => {
  packageRoot = mkdtempSync(join(scratch, 'package-'));
  // The bundle finds its package (presets, native helpers) through the nearest srt-gw package.json.
  writeFileSync(join(packageRoot, 'package.json'), JSON.stringify({ name: 'srt-gw', version: '0.0.0-test' }));
  cpSync(join(ROOT, 'dist', 'bin'), join(packageRoot, 'dist', 'bin'), { recursive: true, filter: (source) => !source.includes('.v8cache') });
  bin = join(packageRoot, 'dist', 'bin');
});

function srtGw(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(bin, 'srt-gw.js'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const caches = () => readdirSync(bin).filter((name) => name.endsWith('.v8cache')).sort();
const vendorCaches = () => readdirSync(join(bin, 'vendor')).filter((name) => name.endsWith('.v8cache')).sort();

describe('srt-gw code cache', () => {
  it('the first run of a command writes its cache; the next run uses it and leaves it as it was', () => {
    const first = srtGw(['policy', 'check', 'policies/examples/basic.yaml']);
    expect(first.stdout).toContain('policies/examples/basic.yaml: 6 rules, 0 errors');
    expect(first.status).toBe(0);
    expect(caches()).toEqual(['.srt-gw-cli.policy.v8cache']);

    const cache = join(bin, '.srt-gw-cli.policy.v8cache');
    const past = new Date(Date.now() - 60_000);
    utimesSync(cache, past, past);
    const before = statSync(cache).mtimeMs;
    const second = srtGw(['policy', 'check', 'policies/examples/basic.yaml']);
    expect(second.stdout).toBe(first.stdout);
    expect(second.status).toBe(0);
    expect(statSync(cache).mtimeMs).toBe(before);
  });

  it('keeps one cache per command, so a short command does not stand in for run', () => {
    expect(srtGw(['--version']).stdout).toBe('0.1.0\n');
    expect(srtGw(['policy', 'schema']).status).toBe(0);
    expect(caches()).toEqual(['.srt-gw-cli.other.v8cache', '.srt-gw-cli.policy.v8cache']);
  });

  it('a rebuilt bundle gets a fresh cache instead of the old bytecode', () => {
    srtGw(['--version']);
    const cache = join(bin, '.srt-gw-cli.other.v8cache');
    const past = new Date(Date.now() - 60_000);
    utimesSync(cache, past, past);
    // A rebuild: same bytes here, but a new modification time, which is what the cache records.
    const bundle = join(bin, 'srt-gw-cli.cjs');
    utimesSync(bundle, new Date(), new Date());
    expect(srtGw(['--version']).stdout).toBe('0.1.0\n');
    expect(statSync(cache).mtimeMs).toBeGreaterThan(past.getTime());
  });

  it('SRT_GW_CODE_CACHE=0 runs without reading or writing a cache', () => {
    const result = srtGw(['--version'], { SRT_GW_CODE_CACHE: '0' });
    expect(result.stdout).toBe('0.1.0\n');
    expect(caches()).toEqual([]);
    expect(existsSync(join(bin, '.srt-gw-cli.other.v8cache'))).toBe(false);
    expect(srtGw(['policy', 'check', 'policies/examples/basic.yaml'], { SRT_GW_CODE_CACHE: '0' }).status).toBe(0);
    expect(vendorCaches()).toEqual([]);
  });

  it('a vendored package loaded on first use (yaml and zod for a policy file) gets a cache of its own, which the next run uses', () => {
    expect(vendorCaches()).toEqual([]);
    const first = srtGw(['policy', 'check', 'policies/examples/basic.yaml']);
    expect(first.status).toBe(0);
    expect(vendorCaches()).toEqual(['.yaml.v8cache', '.zod.v8cache']);

    const cache = join(bin, 'vendor', '.zod.v8cache');
    const past = new Date(Date.now() - 60_000);
    utimesSync(cache, past, past);
    const before = statSync(cache).mtimeMs;
    const second = srtGw(['policy', 'check', 'policies/examples/basic.yaml']);
    expect(second.stdout).toBe(first.stdout);
    expect(statSync(cache).mtimeMs).toBe(before);
  });

  it("an error's exit code and message come through the launcher unchanged", () => {
    const result = srtGw(['policy', 'check', 'no-such-policy.yaml']);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/no-such-policy\.yaml/);
  });

  it('a missing bundle is reported as an incomplete installation, not a stack trace', () => {
    rmSync(join(bin, 'srt-gw-cli.cjs'));
    const result = srtGw(['--version']);
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(`srt-gw: ${join(bin, 'srt-gw-cli.cjs')} is missing: this installation is incomplete; reinstall srt-gw (in a checkout: npm run build)\n`);
  });
});
