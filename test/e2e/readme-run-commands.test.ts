// The `srt-gw run` command lines the README and docs show cannot rot: each one is found in the
// text and executed verbatim by bash, from a scratch directory outside the checkout, with `srt-gw`
// on PATH as a shim for the built CLI. The hosts the commands name (example.com,
// registry.npmjs.org) are an HTTPS upstream in a network namespace the test creates: the command
// runs in a private mount namespace whose /etc/hosts names that upstream and whose system CA
// bundle holds the test CA (what the gateway reads), and whose resolv.conf points at the
// loopback, so nothing leaves the machine. A command that needs what the test cannot provide
// offline is listed on stderr and in NOT_RUN; a documented command with neither a scenario nor a
// reason fails the test.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { jailTestEnv } from '../support/jail-run.js';
import { startNetnsUpstream, type NetnsUpstream } from '../support/netns-upstream.js';
import { ensureBuilt, JAIL_PATH, REPO_ROOT } from '../support/srt-gw-run.js';
import { createTestCa, issueServerCert, type TestCa } from '../support/test-pki.js';

const skip = capabilityGate(
  missingRoot(),
  missingCommand('bwrap'),
  missingCommand('nft'),
  missingCommand('ip'),
  missingCommand('unshare'),
  missingCommand('bash'),
  missingCommand('curl'),
  missingCommand('npm'),
  missingCommand('openssl'),
);

/** The names documented commands reach; all of them are the netns upstream here. */
const DOCUMENTED_HOSTS = ['example.com', 'registry.npmjs.org'];
const RUN_TIMEOUT_MS = 60_000;

interface DocumentedCommand {
  /** The command line exactly as written (trailing `# comment` included: bash ignores it). */
  line: string;
  /** Every place it is written, `FILE:LINE`. */
  places: string[];
}

/** `srt-gw run` command lines in markdown: lines of sh code blocks, inline code spans that are a whole command (`... -- CMD`), and MCP configurations in json blocks. */
function commandsInMarkdown(file: string, text: string): [string, string][] {
  const found: [string, string][] = [];
  const lineOf = (index: number, within = text) => within.slice(0, index).split('\n').length;
  const fences = /^```(\w*)[^\n]*\n([\s\S]*?)^```/gm;
  let outside = text;
  for (const match of text.matchAll(fences)) {
    const [block, language, body] = match;
    outside = outside.replace(block, (kept) => '\n'.repeat(kept.split('\n').length - 1));
    const start = lineOf(match.index) + 1;
    if (language === 'sh' || language === 'bash' || language === 'shell' || language === 'console') {
      body!.split('\n').forEach((line, i) => {
        if (/\bsrt-gw(\.js)? run\b/.test(line)) found.push([line.trim(), `${file}:${start + i}`]);
      });
    } else if (language === 'json') {
      for (const line of runCommandsInJson(body!)) found.push([line, `${file}:${start}`]);
    }
  }
  // Code blocks were blanked out of `outside` line for line, so its line numbers are the file's.
  for (const match of outside.matchAll(/`(srt-gw run(?: [^`]*)? -- [^`]+)`/g)) found.push([match[1]!, `${file}:${lineOf(match.index, outside)}`]);
  return found;
}

/** MCP server entries `{ "command": "srt-gw", "args": ["run", ...] }`, as the shell line they run. */
function runCommandsInJson(text: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return [];
  }
  const lines: string[] = [];
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return;
    const entry = node as { command?: unknown; args?: unknown };
    if (entry.command === 'srt-gw' && Array.isArray(entry.args) && entry.args[0] === 'run') {
      const quoted = ['srt-gw', ...(entry.args as string[])].map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`));
      lines.push(quoted.join(' '));
    }
    for (const child of Object.values(node)) visit(child);
  };
  visit(value);
  return lines;
}

function documentedRunCommands(): DocumentedCommand[] {
  const sources: [string, string][] = [['README.md', readFileSync(join(REPO_ROOT, 'README.md'), 'utf8')]];
  for (const name of readdirSync(join(REPO_ROOT, 'docs')).sort()) {
    if (name.endsWith('.md')) sources.push([`docs/${name}`, readFileSync(join(REPO_ROOT, 'docs', name), 'utf8')]);
  }
  const byLine = new Map<string, DocumentedCommand>();
  const add = (line: string, place: string) => {
    const known = byLine.get(line);
    if (known) known.places.push(place);
    else byLine.set(line, { line, places: [place] });
  };
  for (const [file, text] of sources) for (const [line, place] of commandsInMarkdown(file, text)) add(line, place);
  for (const name of readdirSync(join(REPO_ROOT, 'examples')).sort()) {
    if (!name.endsWith('.json')) continue;
    for (const line of runCommandsInJson(readFileSync(join(REPO_ROOT, 'examples', name), 'utf8'))) add(line, `examples/${name}`);
  }
  return [...byLine.values()];
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface ScenarioContext {
  cwd: string;
  home: string;
  upstream: NetnsUpstream;
}

interface Scenario {
  /**
   * A working directory (and home) shared with the other scenarios naming it: the lines of one
   * documented session, run in the order the document shows them. Default: a fresh one.
   */
  session?: string;
  /** When only the end of the line can run: that end, verbatim, and why the rest does not. */
  runs?: { tail: string; skipped: string };
  /** Written into the working directory / the home before the run. */
  cwdFiles?: Record<string, string>;
  homeFiles?: Record<string, string>;
  /** Executables (mode 0755) in the working directory. */
  cwdPrograms?: Record<string, string>;
  /**
   * Programs the line runs that are not installed here: scripts of that name on PATH, which
   * do what such a program does on the network (and print what the test checks).
   */
  standIns?: Record<string, string>;
  check(result: RunResult, context: ScenarioContext): void;
}

/** A program that reaches https://example.com/ as an agent would, printing the status. */
const REACHES_EXAMPLE_COM = "#!/bin/sh\nexec curl -sS -o /dev/null -w '%{http_code}\\n' https://example.com/\n";
const ALLOW_EXAMPLE_COM = 'version: 1\nrules:\n  - id: example\n    host: example.com\n';

function reachedExampleCom(result: RunResult, context: ScenarioContext): void {
  expect(result.stdout).toBe('200\n');
  expect(context.upstream.requests().some((request) => request.servername === 'example.com' && request.path === '/')).toBe(true);
}

/** Every documented command line this test runs, with what it needs and what it must do. */
const SCENARIOS: Record<string, Scenario> = {
  "(python3 -m http.server -b 127.0.0.1 8765 >/dev/null 2>&1 & trap 'kill $!' EXIT; srt-gw run --allow demo.test --resolve demo.test=127.0.0.1 -- curl -sS --retry 5 -o /dev/null -w '%{http_code}\\n' http://demo.test:8765/)": {
    // A local upstream on the host's loopback, reached by name: --resolve pins demo.test there.
    check: (result) => expect(result.stdout).toBe('200\n'),
  },
  'srt-gw run --policy policy.yaml -- npm install          # or: --allow registry.npmjs.org': {
    cwdFiles: {
      'policy.yaml': 'version: 1\nrules:\n  - id: npm-registry-read\n    host: registry.npmjs.org\n    methods: [GET, HEAD]\n',
      // No dependencies: npm needs nothing from the registry, which is not here.
      'package.json': '{ "name": "documented-project", "version": "1.0.0", "private": true }\n',
    },
    check: (_result, { cwd }) => {
      expect(JSON.parse(readFileSync(join(cwd, 'package-lock.json'), 'utf8'))).toMatchObject({ name: 'documented-project' });
    },
  },
  'srt-gw run -- claude                                    # policy from ./.srt-gw.yaml or ~/.config/srt-gw/policy.yaml': {
    homeFiles: { '.config/srt-gw/policy.yaml': ALLOW_EXAMPLE_COM },
    standIns: { claude: REACHES_EXAMPLE_COM },
    check: (result, context) => {
      reachedExampleCom(result, context);
      expect(result.stderr).toContain(`srt-gw: policy ${join(context.home, '.config', 'srt-gw', 'policy.yaml')}`);
    },
  },
  'srt-gw run --srt-settings ~/.srt-settings.json -- ./agent.sh   # srt\'s settings file, carried over with warnings': {
    homeFiles: { '.srt-settings.json': `${JSON.stringify({ network: { allowedDomains: ['example.com'], deniedDomains: [] }, filesystem: { denyRead: [], allowWrite: ['.'], denyWrite: [] } })}\n` },
    cwdPrograms: { 'agent.sh': REACHES_EXAMPLE_COM },
    check: reachedExampleCom,
  },
  'srt-gw run --write-mode overlay -- claude          # for one run': {
    homeFiles: { '.config/srt-gw/policy.yaml': ALLOW_EXAMPLE_COM },
    // An agent that writes a note (applied after the run) and an .envrc (held: it runs on the host).
    standIns: { claude: `#!/bin/sh\necho hello > notes.txt\necho 'export X=1' > .envrc\n${REACHES_EXAMPLE_COM.replace('#!/bin/sh\n', '')}` },
    check: (result, context) => {
      reachedExampleCom(result, context);
      expect(readFileSync(join(context.cwd, 'notes.txt'), 'utf8')).toBe('hello\n');
      expect(existsSync(join(context.cwd, '.envrc'))).toBe(false);
      expect(result.stderr).toMatch(/srt-gw: applied 1 change; held 1 change for review \(srt-gw changes show /);
    },
  },
  'srt-gw run --policy agent.yaml -- claude': {
    cwdFiles: { 'agent.yaml': ALLOW_EXAMPLE_COM },
    standIns: { claude: REACHES_EXAMPLE_COM },
    check: reachedExampleCom,
  },
  'srt-gw run --policy empty.yaml --monitor --write-policy draft.yaml -- npm install   # a trusted command': {
    session: 'learning a policy',
    cwdFiles: {
      'empty.yaml': 'version: 1\nrules: []\n',
      'package.json': '{ "name": "documented-project", "version": "1.0.0", "private": true }\n',
    },
    check: (_result, { cwd }) => {
      expect(readFileSync(join(cwd, 'draft.yaml'), 'utf8')).toMatch(/^version: 1$/m);
    },
  },
  'srt-gw run --policy draft.yaml -- npm install                                       # enforced from now on': {
    session: 'learning a policy',
    check: (_result, { cwd }) => {
      expect(JSON.parse(readFileSync(join(cwd, 'package-lock.json'), 'utf8'))).toMatchObject({ name: 'documented-project' });
    },
  },
  'srt-gw run -- true': {
    // No policy anywhere: the command runs, with no network and a hint on stderr.
    check: (result) => {
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('srt-gw: no policy');
    },
  },
};

/** Documented commands this test cannot run offline, and why; printed on every run. */
const NOT_RUN: Record<string, string> = {
  'srt-gw run -q --policy examples/mcp-policy.yaml -- npx -y @modelcontextprotocol/server-filesystem .':
    'npx -y downloads @modelcontextprotocol/server-filesystem from registry.npmjs.org, which is not available offline',
  'srt-gw run --gateway https://gw.internal:8443 --gateway-ca gw-certs.pem -- ./agent.sh':
    'needs a central srt-gw serve with clients: and its certificates; test/e2e/run-remote-gateway.test.ts runs this against a real one',
};

const commands = documentedRunCommands();

let root = '';
let shimDir = '';
let hostsFile = '';
let bundleFile = '';
let resolvFile = '';
let upstream: NetnsUpstream | undefined;

/** bash -c LINE in a private mount namespace whose /etc/hosts, CA bundle and resolv.conf are the test's. */
function runLine(line: string, cwd: string, home: string, path: string): Promise<RunResult> {
  const mountAndRun = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/ssl/certs/ca-certificates.crt && mount --bind "$3" /etc/resolv.conf && exec bash -c "$4"';
  const env = jailTestEnv({ HOME: home, PATH: path });
  delete env.SRT_GW_CA_DIR;
  return new Promise((resolve) => {
    execFile(
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', mountAndRun, 'sh', hostsFile, bundleFile, resolvFile, line],
      { cwd, env, timeout: RUN_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('documented srt-gw run command lines', () => {
  it('are found, and each has a scenario here or a reason it cannot run offline', () => {
    expect(commands.length).toBeGreaterThanOrEqual(5);
    const unhandled = commands.filter((command) => SCENARIOS[command.line] === undefined && NOT_RUN[command.line] === undefined);
    expect(unhandled.map((command) => `${command.places.join(', ')}: ${command.line}`)).toEqual([]);
    const documented = new Set(commands.map((command) => command.line));
    const stale = [...Object.keys(SCENARIOS), ...Object.keys(NOT_RUN)].filter((line) => !documented.has(line));
    expect(stale, 'scenarios for command lines the docs no longer show').toEqual([]);
  });

  it('lists on stderr what it cannot run offline (the docs should show commands that run)', () => {
    const notRun = commands.flatMap((command) => {
      if (NOT_RUN[command.line] !== undefined) return [`  ${command.places.join(', ')}: ${command.line}\n    not run: ${NOT_RUN[command.line]}`];
      const partial = SCENARIOS[command.line]?.runs;
      return partial ? [`  ${command.places.join(', ')}: ${command.line}\n    run from "${partial.tail.slice(0, 30)}…" on; not run: ${partial.skipped}`] : [];
    });
    process.stderr.write(`[not run offline] documented srt-gw run commands:\n${notRun.join('\n')}\n`);
    expect(notRun.length).toBe(Object.keys(NOT_RUN).length + Object.values(SCENARIOS).filter((scenario) => scenario.runs).length);
  });
});

describe.skipIf(skip !== null)('documented srt-gw run command lines, executed verbatim', () => {
  let ca: TestCa;

  beforeAll(async () => {
    ensureBuilt();
    // Outside /tmp, which is private inside the jail: the stand-in programs on PATH must be visible there.
    root = realpathSync(mkdtempSync('/var/tmp/srt-gw-readme-run-'));
    shimDir = join(root, 'shim');
    mkdirSync(shimDir);
    writeFileSync(join(shimDir, 'srt-gw'), `#!/bin/sh\nexec '${process.execPath}' '${join(REPO_ROOT, 'dist', 'bin', 'srt-gw.js')}' "$@"\n`);
    chmodSync(join(shimDir, 'srt-gw'), 0o755);
    const pkiDir = join(root, 'pki');
    mkdirSync(pkiDir);
    ca = createTestCa(pkiDir, 'readme');
    upstream = await startNetnsUpstream({
      prefix: 'srtgw-readme',
      certificate: (addresses) => issueServerCert(pkiDir, ca, { names: DOCUMENTED_HOSTS, ipAddresses: addresses }),
    });
    hostsFile = join(root, 'hosts');
    writeFileSync(hostsFile, `127.0.0.1 localhost\n${upstream.ipv4} ${DOCUMENTED_HOSTS.join(' ')}\n`);
    bundleFile = join(root, 'ca-certificates.crt');
    writeFileSync(bundleFile, `${readFileSync('/etc/ssl/certs/ca-certificates.crt', 'utf8')}\n${ca.cert}`);
    // Any name outside the hosts file fails to resolve rather than reaching a real DNS server.
    resolvFile = join(root, 'resolv.conf');
    writeFileSync(resolvFile, 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
  });

  afterAll(async () => {
    await upstream?.close();
    if (root !== '') rmSync(root, { recursive: true, force: true });
  });

  const runnable = commands.filter((command) => SCENARIOS[command.line] !== undefined);

  it.each(runnable.map((command) => [command.places.join(', '), command] as const))('%s', async (_places, command) => {
    const scenario = SCENARIOS[command.line]!;
    const slug = (scenario.session ?? command.places[0]!).replace(/\W+/g, '-');
    const cwd = join(root, slug, 'work');
    const home = join(root, slug, 'home');
    const bin = join(root, slug, 'bin');
    for (const dir of [cwd, home, bin]) mkdirSync(dir, { recursive: true });
    const write = (dir: string, files: Record<string, string> | undefined, mode: number) => {
      for (const [name, content] of Object.entries(files ?? {})) {
        mkdirSync(dirname(join(dir, name)), { recursive: true });
        writeFileSync(join(dir, name), content);
        chmodSync(join(dir, name), mode);
      }
    };
    write(cwd, scenario.cwdFiles, 0o644);
    write(cwd, scenario.cwdPrograms, 0o755);
    write(home, scenario.homeFiles, 0o644);
    write(bin, scenario.standIns, 0o755);
    let line = command.line;
    if (scenario.runs) {
      expect(line.endsWith(scenario.runs.tail), 'the part that runs must be the end of the documented line').toBe(true);
      line = scenario.runs.tail;
    }
    // `node dist/bin/srt-gw.js`, as written for the checkout, from a directory that is not one.
    if (line.startsWith('node dist/')) symlinkSync(join(REPO_ROOT, 'dist'), join(cwd, 'dist'), 'dir');
    const result = await runLine(line, cwd, home, `${bin}:${shimDir}:${JAIL_PATH}`);
    const described = `bash -c ${JSON.stringify(line)} exited ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
    expect(result.code, described).toBe(0);
    try {
      scenario.check(result, { cwd, home, upstream: upstream! });
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${described}`, { cause: error });
    }
  });
});
