// proxy-protocol-header.ts: readProxyHeader settles with an Error for every malformed header.
import { PassThrough } from 'node:stream';
import { beforeAll, describe, expect, test } from 'vitest';
import { loadProxyHeaderParser, readProxyHeader } from './proxy-protocol-header.js';

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

function headerOf(versionCommand: number, family: number, body: Buffer): Buffer {
  const fixed = Buffer.from([versionCommand, family, 0, 0]);
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, fixed, body]);
}

async function read(bytes: Buffer) {
  const socket = new PassThrough();
  const reading = readProxyHeader(socket, 5000);
  socket.end(bytes);
  return reading;
}

describe('readProxyHeader', () => {
  beforeAll(loadProxyHeaderParser);

  test('a valid IPv4 header yields the destination and the bytes after it', async () => {
    const header = headerOf(0x21, 0x11, Buffer.from([10, 0, 0, 5, 93, 184, 216, 34, 0xc3, 0x50, 0x01, 0xbb]));
    const { destination, rest } = await read(Buffer.concat([header, Buffer.from('hello')]));
    expect(destination).toEqual({ address: '93.184.216.34', port: 443, source: '10.0.0.5:50000' });
    expect(rest.toString()).toBe('hello');
  });

  // Found by fuzz/targets/proxy-v2-header.fuzz.mjs: the parser library throws a plain object.
  test('a header with a bad protocol version rejects with an Error, not the parser library\'s plain object', async () => {
    const header = headerOf(0x0d, 0x29, Buffer.alloc(0x29, 0x29));
    const error: unknown = await read(header).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('malformed PROXY header: given protocol version is invalid');
  });

  test('a truncated address block rejects with an Error', async () => {
    const error: unknown = await read(headerOf(0x21, 0x11, Buffer.from([10, 0, 0]))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
  });
});
