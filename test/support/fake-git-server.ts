// A git host for the jailed-client tests: git's own smart-HTTP server (`git http-backend`) run as
// CGI behind the fake HTTPS (or plain HTTP) server, over bare repositories the test creates. Bodies stream both
// ways, so clone, fetch and push behave exactly as against a real host.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { RequestHandler } from './fake-https-server.js';
import { jailTestEnv } from './jail-run.js';

const CGI_TIMEOUT_MS = 30_000;
const COMMITTER = ['-c', 'user.name=srt-gw test', '-c', 'user.email=test@example.test', '-c', 'commit.gpgsign=false'];

/** Runs git on the host for the fixtures (never over the network). */
export function hostGit(args: readonly string[], cwd?: string): string {
  return execFileSync('git', [...COMMITTER, ...args], { cwd, env: jailTestEnv(), encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export interface BareRepository {
  /** Absolute path of the bare repository (`<projectRoot>/<name>.git`). */
  path: string;
  /** The commit `main` points at (when the repository was created). */
  head: string;
  /** The host-side work tree the commits are made in and pushed from. */
  workTree: string;
}

/**
 * A bare repository `<name>.git` under `projectRoot` whose `main` has one commit adding `files`;
 * pushes over HTTP are enabled (http.receivepack), so only a policy can stop one.
 */
export function createBareRepository(projectRoot: string, name: string, files: Record<string, string>): BareRepository {
  const work = join(projectRoot, `${name}-work`);
  mkdirSync(work, { recursive: true });
  hostGit(['init', '-q', '-b', 'main', work]);
  for (const [file, content] of Object.entries(files)) writeFileSync(join(work, file), content);
  hostGit(['add', '.'], work);
  hostGit(['commit', '-q', '-m', 'initial commit'], work);
  const path = join(projectRoot, `${name}.git`);
  hostGit(['clone', '-q', '--bare', work, path]);
  hostGit(['config', 'http.receivepack', 'true'], path);
  return { path, head: hostGit(['rev-parse', 'main'], path), workTree: work };
}

/** A new commit on the server's `main` (made on the host, no network), as another developer's push; returns it. */
export function pushNewCommit(repo: BareRepository, files: Record<string, string>, message: string): string {
  for (const [file, content] of Object.entries(files)) writeFileSync(join(repo.workTree, file), content);
  hostGit(['add', '.'], repo.workTree);
  hostGit(['commit', '-q', '-m', message], repo.workTree);
  hostGit(['push', '-q', repo.path, 'main'], repo.workTree);
  return hostGit(['rev-parse', 'main'], repo.path);
}

/** Runs `git http-backend` for each request, as a web server runs a CGI program. */
export function gitHttpBackend(projectRoot: string): RequestHandler {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'https://fake.invalid');
    const env: NodeJS.ProcessEnv = {
      ...jailTestEnv(),
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
    };
    if (req.headers['content-length'] !== undefined) env.CONTENT_LENGTH = req.headers['content-length'];
    // Git-Protocol (v2), Content-Encoding (gzip request bodies) and the rest, as CGI passes them.
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name === 'content-type' || name === 'content-length') continue;
      env[`HTTP_${name.toUpperCase().replace(/-/g, '_')}`] = Array.isArray(value) ? value.join(', ') : value;
    }
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => cgi.kill('SIGKILL'), CGI_TIMEOUT_MS);
    cgi.once('close', () => clearTimeout(timer));
    cgi.stdin.on('error', () => undefined);
    cgi.stderr.resume();
    req.pipe(cgi.stdin);

    let head = Buffer.alloc(0);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const text = head.toString('latin1');
      const match = /\r?\n\r?\n/.exec(text);
      if (!match) return;
      cgi.stdout.off('data', onHead);
      let status = 200;
      for (const line of text.slice(0, match.index).split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else res.appendHeader(name, value);
      }
      res.writeHead(status);
      res.write(head.subarray(match.index + match[0].length));
      cgi.stdout.pipe(res);
    };
    cgi.stdout.on('data', onHead);
    cgi.once('close', (code) => {
      if (res.headersSent) return;
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`git http-backend exited ${code} without a response\n`);
    });
  };
}
