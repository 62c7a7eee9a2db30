// `srt-gw demo`: the main job, offline, in one command. A local upstream on loopback stands in
// for an API; a small policy allows part of it; a node program in the jail asks for an allowed
// path, a denied path and a host no rule names, and the run's summary says what was denied.
// Exit 0 when each outcome is the one the policy decides, 1 otherwise (so it doubles as a check
// that the jail works here).
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDenialSummary } from '../jail/denial-summary.js';
import { runInJail } from '../jail/run-in-jail.js';
import { parsePolicy } from '../policies/loader.js';

const DEMO_HOST = 'api.demo.test';

const DEMO_POLICY = `version: 1
rules:
  - id: demo-public
    host: ${DEMO_HOST}
    methods: [GET]
    paths: ["/public/**"]
`;

/** The program run in the jail: three requests, one line each, as "label status". */
function jailedProgram(port: number): string {
  return `
const ask = async (label, url) => {
  try {
    const response = await fetch(url);
    const reason = response.headers.get('x-srt-gw-reason');
    const body = reason === null ? (await response.text()).trim() : 'refused by the gateway: ' + reason;
    console.log(label + ' ' + response.status + ' ' + body);
  } catch (error) {
    console.log(label + ' ' + (error.cause?.code ?? error.message));
  }
};
await ask('allowed', 'http://${DEMO_HOST}:${port}/public/hello');
await ask('denied', 'http://${DEMO_HOST}:${port}/private/keys');
await ask('unlisted', 'https://example.com/');
`;
}

export async function demo(): Promise<number> {
  const upstream = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from the demo upstream (${req.method} ${req.url})\n`);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const { port } = upstream.address() as AddressInfo;
  const scratch = mkdtempSync(join(tmpdir(), 'srt-gw-demo-'));
  process.stderr.write(
    [
      `srt-gw demo: a local server on 127.0.0.1:${port} stands in for ${DEMO_HOST}. The policy:`,
      ...DEMO_POLICY.trimEnd().split('\n').map((line) => `    ${line}`),
      `A node program in the jail asks for /public/hello (allowed), /private/keys (denied by default) and https://example.com/ (no rule).`,
      '',
    ].join('\n'),
  );
  let output = '';
  try {
    const result = await runInJail({
      command: process.execPath,
      args: ['--input-type=module', '-e', jailedProgram(port)],
      policy: parsePolicy(DEMO_POLICY, '<demo policy>'),
      cwd: scratch,
      caDir: join(scratch, 'ca'),
      // The demo's upstream is on loopback: pinning the name to it is what opens that address.
      resolve: new Map([[DEMO_HOST, ['127.0.0.1']]]),
      stdio: ['ignore', 'pipe', 'inherit'],
      onStart: ({ process: jailed }) => {
        jailed.child.stdout?.setEncoding('utf8');
        jailed.child.stdout?.on('data', (chunk: string) => {
          output += chunk;
          process.stdout.write(chunk.replace(/^(?=.)/gm, '  [jail] '));
        });
      },
    });
    process.stderr.write(formatDenialSummary(result.denials, result.omittedDenials));
    const lines = new Map(output.trim().split('\n').map((line) => [line.split(' ')[0], line] as const));
    const expected =
      result.exitCode === 0 &&
      / 200 hello from the demo upstream/.test(lines.get('allowed') ?? '') &&
      / 403 /.test(lines.get('denied') ?? '') &&
      / (ENOTFOUND|EAI_AGAIN)/.test(lines.get('unlisted') ?? '');
    process.stderr.write(
      expected
        ? 'srt-gw demo: the allowed request went through, the others were stopped by the gateway. Next: srt-gw run --allow HOST -- COMMAND\n'
        : 'srt-gw demo: the outcomes differ from what the policy decides; run srt-gw doctor\n',
    );
    return expected ? 0 : 1;
  } finally {
    upstream.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
