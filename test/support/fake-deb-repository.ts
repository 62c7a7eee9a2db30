// A Debian package repository for the jailed-client tests: a tiny .deb built with `dpkg-deb`, and a
// flat repository (`deb [trusted=yes] URL ./`) of it served by the fake HTTP(S) server. The
// Packages and Release indexes are written here rather than by dpkg-scanpackages (dpkg-dev), so
// only dpkg itself is needed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FakeHttpsServer } from './fake-https-server.js';
import { jailTestEnv } from './jail-run.js';

export interface DebPackage {
  name: string;
  version: string;
  /** `<name>_<version>_all.deb`, as `apt-get download` names the file it writes. */
  fileName: string;
  bytes: Buffer;
  sha256: string;
}

export interface DebPackageSpec {
  /** Lower-case letters, digits and '-' (a valid Debian package name). */
  name: string;
  version: string;
  /** Files of the package, by absolute path inside it (e.g. /usr/share/doc/NAME/README). */
  files: Record<string, string>;
}

const digest = (algorithm: string, bytes: Buffer | string) => createHash(algorithm).update(bytes).digest('hex');

/** Builds `<name>_<version>_all.deb` under `workDir` with `dpkg-deb --build`. */
export function buildDebPackage(workDir: string, spec: DebPackageSpec): DebPackage {
  if (!/^[a-z0-9][a-z0-9-]+$/.test(spec.name)) throw new Error(`buildDebPackage: not a Debian package name: ${spec.name}`);
  const tree = join(workDir, `${spec.name}-${spec.version}`);
  mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
  writeFileSync(
    join(tree, 'DEBIAN', 'control'),
    [
      `Package: ${spec.name}`,
      `Version: ${spec.version}`,
      'Architecture: all',
      'Maintainer: srt-gw tests <test@example.test>',
      'Section: misc',
      'Priority: optional',
      'Description: srt-gw test package',
      ' Built by the srt-gw end-to-end tests; contains only text files.',
      '',
    ].join('\n'),
  );
  for (const [path, content] of Object.entries(spec.files)) {
    const file = join(tree, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  const fileName = `${spec.name}_${spec.version}_all.deb`;
  const debPath = join(workDir, fileName);
  execFileSync('dpkg-deb', ['--root-owner-group', '--build', tree, debPath], { env: jailTestEnv(), timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const bytes = readFileSync(debPath);
  return { name: spec.name, version: spec.version, fileName, bytes, sha256: digest('sha256', bytes) };
}

/** The Packages stanza of `deb`, as dpkg-scanpackages writes it for a flat repository. */
function packagesStanza(deb: DebPackage): string {
  return [
    `Package: ${deb.name}`,
    `Version: ${deb.version}`,
    'Architecture: all',
    'Maintainer: srt-gw tests <test@example.test>',
    'Priority: optional',
    'Section: misc',
    `Filename: ./${deb.fileName}`,
    `Size: ${deb.bytes.length}`,
    `MD5sum: ${digest('md5', deb.bytes)}`,
    `SHA256: ${deb.sha256}`,
    'Description: srt-gw test package',
    '',
  ].join('\n');
}

/**
 * Serves a flat repository of `debs` at the root of `server`: /Packages, /Release (listing the
 * Packages file's size and SHA256, unsigned: the source line says `[trusted=yes]`) and each .deb.
 * Returns the sources.list line for it.
 */
export function publishDebRepository(server: FakeHttpsServer, host: string, debs: readonly DebPackage[]): string {
  const packages = debs.map(packagesStanza).join('\n');
  const release = [
    'Origin: srt-gw tests',
    'Label: srt-gw tests',
    `Date: ${new Date().toUTCString()}`,
    'Architectures: all',
    'SHA256:',
    ` ${digest('sha256', packages)} ${Buffer.byteLength(packages)} Packages`,
    '',
  ].join('\n');
  server.serveFile('/Packages', { contentType: 'text/plain', body: packages });
  server.serveFile('/Release', { contentType: 'text/plain', body: release });
  for (const deb of debs) server.serveFile(`/${deb.fileName}`, { contentType: 'application/vnd.debian.binary-package', body: deb.bytes });
  return `deb [trusted=yes] ${server.url(host, '/')} ./`;
}
