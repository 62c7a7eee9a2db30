// A Python package index for the jailed-client tests: a PEP 503 "simple" index served by the
// fake HTTPS server, and a pure-Python wheel (PEP 427: a zip with <name>-<version>.dist-info/
// METADATA, WHEEL and RECORD) written by python3's zipfile, so no build backend or network is needed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeHttpsServer } from './fake-https-server.js';
import { jailTestEnv } from './jail-run.js';

export interface Wheel {
  /** Normalised project name (lower case letters and digits only, so no PEP 503 normalising applies). */
  name: string;
  version: string;
  fileName: string;
  bytes: Buffer;
  sha256: string;
}

// Writes the wheel with correct RECORD hashes, as pip checks them on install.
const WRITE_WHEEL = `
import base64, hashlib, sys, zipfile
path, name, version, source = sys.argv[1:5]
dist = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": source,
    f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\nSummary: srt-gw test package\\n",
    f"{dist}/WHEEL": "Wheel-Version: 1.0\\nGenerator: srt-gw-tests\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
record = []
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
    for file, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{file},sha256={digest},{len(data)}")
        wheel.writestr(file, data)
    record.append(f"{dist}/RECORD,,")
    wheel.writestr(f"{dist}/RECORD", "\\n".join(record) + "\\n")
`;

/** A wheel for package `name` whose __init__.py is `source`, written under `workDir`. */
export function buildWheel(workDir: string, name: string, version: string, source: string): Wheel {
  if (!/^[a-z0-9]+$/.test(name)) throw new Error(`buildWheel: use a name of lower-case letters and digits (got ${name})`);
  const fileName = `${name}-${version}-py3-none-any.whl`;
  const path = join(workDir, fileName);
  execFileSync('python3', ['-c', WRITE_WHEEL, path, name, version, source], { env: jailTestEnv(), timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const bytes = readFileSync(path);
  return { name, version, fileName, bytes, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Serves `wheel` on `server`: the project page /simple/<name>/ linking the file (with its
 * #sha256= fragment) on `fileHost`, and the file itself at /files/<file>. The same server answers
 * for every name, so when `fileHost` is one the policy does not allow, only the policy stops it.
 */
export function publishWheel(server: FakeHttpsServer, wheel: Wheel, fileHost: string): void {
  const filePath = `/files/${wheel.fileName}`;
  const href = `${server.url(fileHost, filePath)}#sha256=${wheel.sha256}`;
  const page = [
    '<!DOCTYPE html>',
    `<html><head><meta name="pypi:repository-version" content="1.0"><title>Links for ${wheel.name}</title></head>`,
    `<body><h1>Links for ${wheel.name}</h1>`,
    `<a href="${href}">${wheel.fileName}</a><br/>`,
    '</body></html>',
    '',
  ].join('\n');
  server.serveFile(`/simple/${wheel.name}/`, { contentType: 'text/html; charset=utf-8', body: page });
  server.serveFile(filePath, { contentType: 'application/octet-stream', body: wheel.bytes });
}

/**
 * The interpreter `python3` runs, by its real path. A version manager's shim (pyenv) would run
 * `pyenv rehash` after `pip install`, which writes to the read-only home inside the jail and turns
 * a successful install into exit status 1.
 */
export function python3Executable(): string {
  return execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { env: jailTestEnv(), encoding: 'utf8', timeout: 20_000 }).trim();
}

/** Null when `python3 -m pip` works here, else why not (pip is a module, not a command on PATH). */
export function missingPip(): string | null {
  try {
    execFileSync('python3', ['-m', 'pip', '--version'], { env: jailTestEnv(), stdio: 'ignore', timeout: 20_000 });
    return null;
  } catch {
    return 'python3 -m pip does not work (Debian: apt-get install python3-pip)';
  }
}
