// A tiny stdio MCP server for the tests: newline-delimited JSON-RPC 2.0 on stdin/stdout, answering
// `initialize`, `tools/list` and `tools/call` of an `echo` tool that returns its `text` argument.
// Every byte read from stdin is appended to the file named by argv[2], so a test can check what
// arrived. Writes nothing but responses to stdout; exits at the end of stdin.
import { appendFileSync, writeFileSync } from 'node:fs';

const received = process.argv[2];
if (received) writeFileSync(received, '');
let pending = Buffer.alloc(0);

/** The bytes of one response: JSON on one line (the test builds the same bytes and compares). */
function frame(message) {
  return Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
}

function answer(request) {
  switch (request.method) {
    case 'initialize':
      return { protocolVersion: '2025-06-18', capabilities: { tools: {} }, serverInfo: { name: 'echo', version: '1.0.0' } };
    case 'tools/list':
      return { tools: [{ name: 'echo', description: 'Returns its text', inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] } }] };
    case 'tools/call':
      return { content: [{ type: 'text', text: request.params.arguments.text }] };
    default:
      return undefined;
  }
}

process.stdin.on('data', (chunk) => {
  if (received) appendFileSync(received, chunk);
  pending = Buffer.concat([pending, chunk]);
  for (let newline = pending.indexOf(10); newline >= 0; newline = pending.indexOf(10)) {
    const line = pending.subarray(0, newline).toString('utf8');
    pending = pending.subarray(newline + 1);
    if (line.trim() === '') continue;
    const request = JSON.parse(line);
    if (request.id === undefined) continue; // a notification
    const result = answer(request);
    const response = result === undefined ? { jsonrpc: '2.0', id: request.id, error: { code: -32601, message: 'Method not found' } } : { jsonrpc: '2.0', id: request.id, result };
    process.stdout.write(frame(response));
  }
});
