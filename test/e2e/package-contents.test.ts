// What `npm pack` ships: everything a user needs at run time (the built code, the native
// sources and their build script, dashboards, schemas, docs, README, LICENSE), nothing of the
// development tree, and no shipped file that imports a dev dependency.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

interface PackFile {
  path: string;
}

const packed = (): string[] => {
  const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const [report] = JSON.parse(output) as [{ files: PackFile[] }];
  return report.files.map((file) => file.path).sort();
};

describe('npm pack contents', () => {
  const files = packed();

  it.each([
    'LICENSE',
    'README.md',
    'package.json',
    'dist/index.js',
    'dist/index.d.ts',
    'dist/cli/main.js',
    'dist/bin/srt-gw.js',
    'dist/bin/srt-gw-cli.cjs',
    'dist/bin/package.json',
    'dist/bin/vendor/undici.cjs',
    'dist/bin/vendor/zod.cjs',
    'native/redirector.c',
    'native/dns-forwarder.c',
    'native/jail-init.c',
    'native/helper-runtime.c',
    'native/helper-runtime.h',
    'native/build.sh',
    'scripts/build-native.mjs',
    'dashboards/grafana/srt-gw.json',
    'dashboards/prometheus/alerts.yml',
    'policies/policy.schema.json',
    'policies/examples/basic.yaml',
    'policies/presets/anthropic.yaml',
    'policies/presets/crates-read.yaml',
    'policies/presets/github.yaml',
    'policies/presets/go-proxy.yaml',
    'policies/presets/npm-read.yaml',
    'policies/presets/openai.yaml',
    'policies/presets/pypi-read.yaml',
    'docs/audit-log.schema.json',
    'docs/metrics.md',
    'examples/mcp.json',
    'examples/mcp-policy.yaml',
  ])('ships %s', (path) => {
    expect(files).toContain(path);
  });

  it('ships exactly the presets policies/presets.ts finds, and no test tables', () => {
    expect(files.filter((path) => path.startsWith('policies/presets/'))).toEqual(
      ['anthropic', 'crates-read', 'github', 'go-proxy', 'npm-read', 'openai', 'pypi-read'].map((name) => `policies/presets/${name}.yaml`),
    );
    expect(files.filter((path) => path.startsWith('policies/testdata/'))).toEqual([]);
  });

  it('ships nothing of the development tree', () => {
    const unwanted = files.filter((path) => /^(test|bench|\.ci|node_modules|gateway|ca|cli|jail)\/|\.test\.|\.bench\.|\.map$|\.v8cache$|^native\/build\//.test(path));
    expect(unwanted).toEqual([]);
  });

  it('no shipped JavaScript imports a dev dependency', () => {
    const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    const devOnly = Object.keys(pkg.devDependencies);
    const offenders = files
      .filter((path) => path.endsWith('.js'))
      .filter((path) => {
        const source = readFileSync(resolve(ROOT, path), 'utf8');
        return devOnly.some((name) => source.includes(`from '${name}`) || source.includes(`from "${name}`));
      });
    expect(offenders).toEqual([]);
  });
});
