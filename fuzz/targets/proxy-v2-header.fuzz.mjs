// The PROXY protocol v2 header in front of every connection a transparent listener accepts,
// fed through readProxyHeader on a stream in the chunks the first input byte chooses.
// Contract: the promise settles once the input has ended (never waits for its timeout), rejects
// only with an Error, and a resolved destination is an IP literal with a port in 0..65535 and
// leaves the bytes after the header to the caller: `rest` (the rest of the chunk that completed
// the header) followed by what is still unread on the paused socket.
import { PassThrough } from 'node:stream';
import { isIP } from 'node:net';
import { loadProxyHeaderParser, readProxyHeader } from '../../dist/gateway/listeners/proxy-protocol-header.js';
import { expect, violation, withinDeadline } from '../target-contract.mjs';

await loadProxyHeaderParser();

/** Far longer than parsing takes; readProxyHeader's own timeout is longer still, so a hit is a hang. */
const DEADLINE_MS = 2000;

export async function fuzz(data) {
  const chunkSize = ((data[0] ?? 0) % 32) + 1;
  const input = data.subarray(1);
  const socket = new PassThrough();
  const reading = readProxyHeader(socket, DEADLINE_MS * 10).then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
  for (let at = 0; at < input.length; at += chunkSize) socket.write(input.subarray(at, at + chunkSize));
  socket.end();
  const result = await withinDeadline(reading, DEADLINE_MS, 'readProxyHeader on a complete input');
  const unread = [];
  for (let chunk = socket.read(); chunk !== null; chunk = socket.read()) unread.push(chunk);
  socket.destroy();
  if ('error' in result) {
    if (!(result.error instanceof Error)) throw violation(`rejected with a non-Error: ${String(result.error)}`);
    return;
  }
  const { destination, rest } = result.value;
  expect(isIP(destination.address) !== 0, `destination is an IP literal: ${destination.address}`);
  expect(Number.isInteger(destination.port) && destination.port >= 0 && destination.port <= 65535, `port in range: ${destination.port}`);
  const headerLength = 16 + input.readUInt16BE(14);
  const after = Buffer.concat([rest, ...unread]);
  expect(after.equals(input.subarray(headerLength)), `rest and the unread bytes are exactly what followed the header (${after.length} of ${input.length - headerLength} bytes)`);
}
