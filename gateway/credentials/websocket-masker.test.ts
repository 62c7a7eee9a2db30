// The WebSocket masker: a secret echoed by an upstream is masked even when the upstream splits the
// message into fragments (with control frames between them), however the bytes are cut into
// chunks; every frame keeps its header and its length; what cannot be checked ends the stream.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, test } from 'vitest';
import { decodeFrame, encodeFrame, OPCODE, type WebsocketFrame } from '../../test/support/websocket-frames.js';
import { createWebSocketMaskingTransform, WebSocketFrameMasker, WebSocketMaskingError } from './websocket-masker.js';
import { StreamMasker, type MaskPair } from './secret-masker.js';

const SECRET = 'real-secret-0123456789abcdef';
const PLACEHOLDER = 'srtgw-placeholder-example-4f2a';
const PAIRS: MaskPair[] = [{ from: SECRET, to: PLACEHOLDER }];
/** The placeholder cut to the secret's length, as a length-preserving mask writes it. */
const MASKED = PLACEHOLDER.slice(0, SECRET.length);

/** Runs `input` through a masker cut at the given offsets; returns every output piece. */
function maskInChunks(input: Buffer, cuts: readonly number[]): Buffer[] {
  const masker = new WebSocketFrameMasker(PAIRS);
  const out: Buffer[] = [];
  let from = 0;
  for (const cut of [...cuts, input.length]) {
    out.push(...masker.push(input.subarray(from, cut)));
    from = cut;
  }
  out.push(...masker.flush());
  return out;
}

function decodeAll(bytes: Buffer): WebsocketFrame[] {
  const frames: WebsocketFrame[] = [];
  let rest = bytes;
  for (let decoded = decodeFrame(rest); decoded; decoded = decodeFrame(rest)) {
    frames.push(decoded.frame);
    rest = decoded.rest;
  }
  expect(rest.length, 'bytes left after the last whole frame').toBe(0);
  return frames;
}

const summary = (frames: readonly WebsocketFrame[]) => frames.map((frame) => ({ fin: frame.fin, opcode: frame.opcode, length: frame.payload.length }));

/** A text message echoing the secret, split by the upstream in the middle of it, with a ping between the fragments. */
const first = Buffer.from(`{"echo":"x-api-key: ${SECRET.slice(0, 11)}`);
const second = Buffer.from(`${SECRET.slice(11)}","n":1}`);
const ping = Buffer.from(`ping ${SECRET}`);
const fragmented = Buffer.concat([
  encodeFrame(OPCODE.text, first, false, false),
  encodeFrame(OPCODE.ping, ping, false),
  encodeFrame(OPCODE.continuation, second, false, true),
]);

describe('WebSocketFrameMasker', () => {
  test('a secret split across two fragments is masked; frames keep their order, flags and lengths', () => {
    const frames = decodeAll(Buffer.concat(maskInChunks(fragmented, [])));
    expect(summary(frames)).toEqual([
      { fin: false, opcode: OPCODE.text, length: first.length },
      { fin: true, opcode: OPCODE.ping, length: ping.length },
      { fin: true, opcode: OPCODE.continuation, length: second.length },
    ]);
    const message = Buffer.concat([frames[0]!.payload, frames[2]!.payload]).toString();
    expect(message).toBe(`{"echo":"x-api-key: ${MASKED}","n":1}`);
    expect(frames[1]!.payload.toString()).toBe(`ping ${MASKED}`);
  });

  test('the same, cut into two chunks at every offset and one byte at a time', () => {
    const expected = Buffer.concat(maskInChunks(fragmented, []));
    expect(expected.includes(SECRET)).toBe(false);
    for (let cut = 0; cut <= fragmented.length; cut++) {
      expect(Buffer.concat(maskInChunks(fragmented, [cut])).equals(expected), `cut at ${cut}`).toBe(true);
    }
    const everyByte = [...Array(fragmented.length).keys()].slice(1);
    expect(Buffer.concat(maskInChunks(fragmented, everyByte)).equals(expected)).toBe(true);
  });

  test('why frames are parsed: masking the raw bytes leaves the split secret in the message', () => {
    const byteMasker = new StreamMasker(PAIRS, { lengthPreserving: true });
    const frames = decodeAll(Buffer.concat([byteMasker.push(fragmented), byteMasker.flush()]));
    expect(Buffer.concat([frames[0]!.payload, frames[2]!.payload]).toString()).toContain(SECRET);
  });

  test('16-bit and 64-bit lengths: a 70 000-byte message in 4 KiB fragments, the secret across a fragment boundary', () => {
    const payload = Buffer.alloc(70_000, 'a');
    payload.write(SECRET, 4096 * 3 - 5);
    payload.write(SECRET, 70_000 - SECRET.length);
    const frames: Buffer[] = [];
    for (let at = 0; at < payload.length; at += 4096) {
      const fin = at + 4096 >= payload.length;
      frames.push(encodeFrame(at === 0 ? OPCODE.binary : OPCODE.continuation, payload.subarray(at, at + 4096), false, fin));
    }
    // And one unfragmented message that needs the 64-bit length.
    frames.push(encodeFrame(OPCODE.binary, payload, false));
    const input = Buffer.concat(frames);
    const output = decodeAll(Buffer.concat(maskInChunks(input, [1000, 30_000, 30_001, 100_000])));
    expect(output.map((frame) => frame.payload.length)).toEqual(frames.map((frame) => decodeFrame(frame)!.frame.payload.length));
    const expected = payload.toString('latin1').split(SECRET).join(MASKED);
    expect(Buffer.concat(output.slice(0, -1).map((frame) => frame.payload)).toString('latin1')).toBe(expected);
    expect(output.at(-1)!.payload.toString('latin1')).toBe(expected);
  });

  test('frames without the secret leave byte for byte as they came', () => {
    const input = Buffer.concat([
      encodeFrame(OPCODE.binary, randomBytes(300), false, false),
      encodeFrame(OPCODE.pong, Buffer.alloc(0), false),
      encodeFrame(OPCODE.continuation, randomBytes(70), false),
      encodeFrame(OPCODE.text, Buffer.alloc(0), false),
      encodeFrame(OPCODE.close, Buffer.from([0x03, 0xe8]), false),
    ]);
    expect(Buffer.concat(maskInChunks(input, [1, 2, 3, 200, 305])).equals(input)).toBe(true);
  });

  test('a finished message leaves whole at once, even when it ends with the start of the secret', () => {
    const message = encodeFrame(OPCODE.text, Buffer.from(`tail ${SECRET.slice(0, 10)}`), false);
    const masker = new WebSocketFrameMasker(PAIRS);
    expect(Buffer.concat(masker.push(message)).equals(message)).toBe(true);
  });

  test('an unfinished fragment holds back only what could start the secret, until the next fragment', () => {
    const masker = new WebSocketFrameMasker(PAIRS);
    const fragment = encodeFrame(OPCODE.text, Buffer.alloc(1000, 'z'), false, false);
    const sent = Buffer.concat(masker.push(fragment));
    expect(sent.length).toBe(fragment.length - (SECRET.length - 1));
    const rest = Buffer.concat(masker.push(encodeFrame(OPCODE.continuation, Buffer.from('end'), false)));
    expect(Buffer.concat([sent, rest]).equals(Buffer.concat([fragment, encodeFrame(OPCODE.continuation, Buffer.from('end'), false)]))).toBe(true);
  });

  test.each([
    ['a masked frame', encodeFrame(OPCODE.text, Buffer.from('hi'), true), /masked/],
    ['a compressed frame (RSV1)', Buffer.from([0xc1, 0x02, 0x68, 0x69]), /compressed/],
    ['an unknown opcode', Buffer.from([0x83, 0x00]), /unknown opcode 3/],
    ['a fragmented ping', Buffer.from([0x09, 0x00]), /control frame/],
    ['a 126-byte close', encodeFrame(OPCODE.close, Buffer.alloc(126), false), /control frame/],
  ])('%s ends the stream with a WebSocketMaskingError', (_name, frame, message) => {
    const masker = new WebSocketFrameMasker(PAIRS);
    expect(() => masker.push(frame)).toThrow(WebSocketMaskingError);
    expect(() => new WebSocketFrameMasker(PAIRS).push(frame)).toThrow(message);
  });

  test('as a Transform: masks through a stream, and fails it on a frame it cannot check', async () => {
    const output = await buffer(Readable.from([fragmented.subarray(0, 20), fragmented.subarray(20)]).pipe(createWebSocketMaskingTransform(PAIRS)));
    expect(output.equals(Buffer.concat(maskInChunks(fragmented, [])))).toBe(true);
    const failing = Readable.from([encodeFrame(OPCODE.text, Buffer.from('hi'), true)]).pipe(createWebSocketMaskingTransform(PAIRS));
    await expect(buffer(failing)).rejects.toThrow(WebSocketMaskingError);
  });
});
