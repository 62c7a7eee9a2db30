// The library as a user gets it: dist/index.js, built fresh first. Tests that run commands in the
// jail use it (the jail's native helpers are found relative to the built files).
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ensureBuilt, REPO_ROOT } from './srt-gw-run.js';

export type Library = typeof import('../../index.js');

export async function builtLibrary(): Promise<Library> {
  ensureBuilt();
  return (await import(pathToFileURL(join(REPO_ROOT, 'dist', 'index.js')).href)) as Library;
}
