// A stdio MCP server wrapped in `srt-gw run` (what examples/mcp.json does for Claude Code and other
// MCP clients): the JSON-RPC exchange passes through byte for byte in both directions, a 1 MiB
// message included; with -q nothing else is written anywhere, and without it only stderr hears
// from srt-gw.
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand, missingRoot } from '../support/capabilities.js';
import { createJailWorkdir, jailTestEnv } from '../support/jail-run.js';
import { ensureBuilt, REPO_ROOT, startSrtGwRun } from '../support/srt-gw-run.js';

const skip = capabilityGate(missingRoot(), missingCommand('bwrap'), missingCommand('nft'), missingCommand('cc'), missingCommand('git'));

const SERVER = join(REPO_ROOT, 'test', 'support', 'mcp-echo-server.mjs');
const EXAMPLE = join(REPO_ROOT, 'examples', 'mcp.json');

interface McpConfig {
  mcpServers: Record<string, { command: string; args: string[] }>;
}

const line = (message: unknown) => Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');

/** The exchange: requests the client sends and the exact responses the echo server must produce. */
function exchange(bigText: string): { request: Buffer; response: Buffer }[] {
  const call = (id: number, text: string) => ({
    request: line({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text } } }),
    response: line({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }] } }),
  });
  return [
    {
      request: line({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '1' } } }),
      response: line({ jsonrpc: '2.0', id: 1, result: { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'echo', version: '1.0.0' } } }),
    },
    { request: line({ jsonrpc: '2.0', method: 'notifications/initialized' }), response: Buffer.alloc(0) },
    call(2, 'héllo ✓ \u0000 "quoted" \\ backslash'),
    call(3, bigText),
  ];
}

describe.skipIf(skip !== null)('MCP: a stdio server wrapped in srt-gw run', () => {
  let dir: string;
  let home: string;
  let config: McpConfig;

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'srt-gw-mcp-'));
    home = join(dir, 'home');
    mkdirSync(join(home, '.npm'), { recursive: true });
    config = JSON.parse(readFileSync(EXAMPLE, 'utf8')) as McpConfig;
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('examples/mcp.json wraps each server in `srt-gw run -q --policy FILE -- COMMAND`', () => {
    const servers = Object.values(config.mcpServers);
    expect(servers.length).toBeGreaterThan(0);
    for (const server of servers) {
      expect(server.command).toBe('srt-gw');
      expect(server.args.slice(0, 2)).toEqual(['run', '-q']);
      expect(server.args).toContain('--');
      const policy = server.args[server.args.indexOf('--policy') + 1];
      expect(policy).toBe('examples/mcp-policy.yaml');
    }
  });

  /** The example's own srt-gw flags (policy made absolute), with the echo server as the command. */
  function exampleFlags(): string[] {
    const args = Object.values(config.mcpServers)[0]!.args;
    const flags = args.slice(1, args.indexOf('--'));
    const at = flags.indexOf('--policy');
    flags[at + 1] = join(REPO_ROOT, flags[at + 1]!);
    return flags;
  }

  async function converse(flags: string[], bigBytes: number) {
    const cwd = createJailWorkdir(dir, `work-${flags.length}-${bigBytes}`);
    // The server goes into the working directory, which the jail shows: the repository itself
    // may live under /tmp (a CI clone), and the jail's /tmp is private.
    copyFileSync(SERVER, join(cwd, 'mcp-echo-server.mjs'));
    const run = startSrtGwRun({
      flags,
      command: [process.execPath, './mcp-echo-server.mjs', 'received.bin'],
      cwd,
      env: jailTestEnv({ HOME: home }),
      interactive: true,
      timeoutMs: 60_000,
    });
    // About `bigBytes` of text, starting with multi-byte characters so a re-encoding would show.
    const bigText = `${'ü'.repeat(1000)}${randomBytes((bigBytes - 2000) / 2).toString('hex')}`;
    const steps = exchange(bigText);
    let expected = Buffer.alloc(0);
    for (const step of steps) {
      run.child.stdin!.write(step.request);
      expected = Buffer.concat([expected, step.response]);
      // A real client waits for each answer before the next request.
      const deadline = Date.now() + 30_000;
      while (Buffer.byteLength(run.stdout(), 'utf8') < expected.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    run.endInput();
    const result = await run.finished;
    const sent = Buffer.concat(steps.map((step) => step.request));
    return { result, expected, sent, received: readFileSync(join(cwd, 'received.bin')), bigRequestBytes: steps[3]!.request.length };
  }

  it('with the example\'s flags (-q): byte-exact both ways, a 1 MiB message included, and srt-gw writes nothing', async () => {
    const { result, expected, sent, received, bigRequestBytes } = await converse(exampleFlags(), 1 << 20);
    expect(bigRequestBytes).toBeGreaterThanOrEqual(1 << 20);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdoutBytes.equals(expected)).toBe(true);
    expect(received.equals(sent)).toBe(true);
    expect(result.stderr).toBe('');
  });

  it('without -q and without a policy, srt-gw speaks only on stderr; stdout is still the server\'s alone', async () => {
    const { result, expected, sent, received } = await converse([], 64 * 1024);
    expect(result.code).toBe(0);
    expect(result.stdoutBytes.equals(expected)).toBe(true);
    expect(received.equals(sent)).toBe(true);
    expect(result.stderr).toMatch(/^srt-gw: no policy/);
  });
});
