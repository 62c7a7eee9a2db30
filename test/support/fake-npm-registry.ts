// An npm registry for the jailed-client tests: tarballs made by the real `npm pack` from tiny
// package directories, and packuments (GET /<name>) pointing at them with real integrity values,
// served by the fake HTTPS server. Unscoped names only.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeHttpsServer } from './fake-https-server.js';
import { jailTestEnv } from './jail-run.js';

export interface NpmPackageSpec {
  name: string;
  version: string;
  /** index.js's content. */
  indexJs: string;
  dependencies?: Record<string, string>;
}

export interface PackedNpmPackage {
  spec: NpmPackageSpec;
  tarball: Buffer;
  /** dist.integrity: sha512 in SRI form. */
  integrity: string;
  /** dist.shasum: sha1 hex. */
  shasum: string;
  /** The registry path the packument names: /<name>/-/<name>-<version>.tgz */
  tarballPath: string;
}

/** `npm pack` of a package directory written under `workDir`; offline, touching no registry. */
export function packNpmPackage(workDir: string, spec: NpmPackageSpec): PackedNpmPackage {
  const dir = join(workDir, `${spec.name}-src`);
  const out = join(workDir, `${spec.name}-out`);
  mkdirSync(dir, { recursive: true });
  mkdirSync(out, { recursive: true });
  const manifest = { name: spec.name, version: spec.version, main: 'index.js', license: 'MIT', dependencies: spec.dependencies ?? {} };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(dir, 'index.js'), spec.indexJs);
  const printed = execFileSync(
    'npm',
    ['pack', '--json', '--offline', '--no-update-notifier', '--cache', join(workDir, 'npm-cache'), '--pack-destination', out],
    { cwd: dir, env: jailTestEnv(), encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const [packed] = JSON.parse(printed) as { filename: string }[];
  if (!packed) throw new Error(`npm pack printed no file: ${printed}`);
  const tarball = readFileSync(join(out, packed.filename));
  return {
    spec,
    tarball,
    integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
    shasum: createHash('sha1').update(tarball).digest('hex'),
    tarballPath: `/${spec.name}/-/${spec.name}-${spec.version}.tgz`,
  };
}

/**
 * Serves `pkg` on `server`: its packument at /<name> and its tarball at its path. The packument's
 * tarball URL names `tarballHost`, so a test can put the tarball on a host the policy does not
 * allow; the same server answers for every name, so only the policy can stop the download.
 */
export function publishNpmPackage(server: FakeHttpsServer, pkg: PackedNpmPackage, tarballHost: string): void {
  const { name, version, dependencies } = pkg.spec;
  const packument = {
    _id: name,
    name,
    'dist-tags': { latest: version },
    versions: {
      [version]: {
        _id: `${name}@${version}`,
        name,
        version,
        main: 'index.js',
        license: 'MIT',
        dependencies: dependencies ?? {},
        dist: { tarball: server.url(tarballHost, pkg.tarballPath), integrity: pkg.integrity, shasum: pkg.shasum },
      },
    },
    time: { created: '2024-01-01T00:00:00.000Z', modified: '2024-01-01T00:00:00.000Z', [version]: '2024-01-01T00:00:00.000Z' },
  };
  server.serveFile(`/${name}`, { contentType: 'application/json', body: JSON.stringify(packument) });
  server.serveFile(pkg.tarballPath, { contentType: 'application/octet-stream', body: pkg.tarball });
}
