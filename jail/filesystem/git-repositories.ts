// What git would run or read from a writable root: its git directories (a worktree's, the common
// one, submodules') and the hook directories core.hooksPath names, found by reading the repository.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { GIT_DIRECTORY_PROTECTED, type BuiltInPath } from './built-in-paths.js';
import { canonicalPath, expandHome, isWithin, probe } from './canonical-path.js';

/** Bounds the scan for submodules' git directories (.git/modules/a/modules/b ...). */
const MAX_SUBMODULE_DEPTH = 4;
const MAX_SUBMODULES = 200;

/**
 * What git would run from a writable root: the git directory (or the one a `.git` file points to)
 * with its hooks and config, the common directory of a worktree, submodules' git directories, and
 * core.hooksPath from the repository's and the user's git configuration.
 */
export function repositoryPaths(root: string, home: string): BuiltInPath[] {
  const paths: BuiltInPath[] = [];
  const dotGit = `${root}/.git`;
  const gitDirectories: string[] = [];
  if (probe(canonicalPath(dotGit)).kind === 'file') {
    paths.push({ path: '.git', kind: 'file', what: "the pointer to this checkout's git directory" });
    const pointer = /^gitdir:\s*(.+?)\s*$/m.exec(readText(dotGit) ?? '')?.[1];
    if (pointer !== undefined) gitDirectories.push(pointer.startsWith('/') ? pointer : `${root}/${pointer}`);
  }
  for (const gitDirectory of [...gitDirectories]) {
    const common = readText(`${gitDirectory}/commondir`)?.trim();
    if (common) gitDirectories.push(common.startsWith('/') ? common : `${gitDirectory}/${common}`);
  }
  for (const gitDirectory of [...gitDirectories, dotGit]) gitDirectories.push(...submoduleGitDirectories(`${gitDirectory}/modules`));
  for (const gitDirectory of gitDirectories) {
    for (const entry of GIT_DIRECTORY_PROTECTED) paths.push({ ...entry, path: `${gitDirectory}/${entry.path}` });
  }
  const configs = [...gitDirectories, dotGit].flatMap((directory) => [`${directory}/config`, `${directory}/config.worktree`]);
  configs.push(`${home}/.gitconfig`, `${home}/.config/git/config`);
  for (const hooksPath of new Set(configs.flatMap((config) => hooksPathsIn(readText(config) ?? '')))) {
    const absolute = hooksPath === '~' || hooksPath.startsWith('~/') ? expandHome(hooksPath, home) : hooksPath.startsWith('/') ? hooksPath : `${root}/${hooksPath}`;
    paths.push({ path: absolute, kind: 'directory', what: `core.hooksPath ${JSON.stringify(hooksPath)}: git hooks run outside the jail` });
    // husky keeps stubs in .husky/_ (the hooks path) that run the scripts one level up.
    const scripts = dirname(absolute);
    if (basename(absolute) === '_' && isWithin(scripts, root) && scripts !== root) {
      paths.push({ path: scripts, kind: 'directory', what: `the scripts the hooks in core.hooksPath ${JSON.stringify(hooksPath)} run (husky)` });
    }
  }
  return paths;
}

function submoduleGitDirectories(modules: string, depth = 1, found: string[] = []): string[] {
  if (depth > MAX_SUBMODULE_DEPTH || found.length >= MAX_SUBMODULES) return found;
  let entries: string[];
  try {
    entries = readdirSync(modules);
  } catch {
    return found;
  }
  for (const name of entries) {
    const directory = `${modules}/${name}`;
    if (probe(`${directory}/HEAD`).kind === 'file') found.push(directory);
    else if (probe(directory).kind === 'directory') submoduleGitDirectories(directory, depth + 1, found);
    if (found.length >= MAX_SUBMODULES) break;
    submoduleGitDirectories(`${directory}/modules`, depth + 1, found);
  }
  return found;
}

/** core.hooksPath values of a git config file (a small reader: sections, keys, quotes, comments). */
export function hooksPathsIn(configText: string): string[] {
  const values: string[] = [];
  let inCore = false;
  for (const rawLine of configText.split('\n')) {
    const line = rawLine.trim();
    const section = /^\[\s*([A-Za-z0-9.-]+)(\s+"[^"]*")?\s*\]\s*(.*)$/.exec(line);
    let rest = line;
    if (section) {
      inCore = section[1]!.toLowerCase() === 'core' && section[2] === undefined;
      rest = section[3] ?? '';
    }
    if (!inCore) continue;
    const entry = /^hookspath\s*=\s*(.*)$/i.exec(rest);
    if (!entry) continue;
    const value = gitConfigValue(entry[1] ?? '');
    if (value !== '') values.push(value);
  }
  return values;
}

function gitConfigValue(raw: string): string {
  let value = '';
  let quoted = false;
  for (let i = 0; i < raw.length; i++) {
    const char = raw[i]!;
    if (char === '\\' && i + 1 < raw.length) value += raw[++i];
    else if (char === '"') quoted = !quoted;
    else if ((char === '#' || char === ';') && !quoted) break;
    else value += char;
  }
  return value.trim();
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
