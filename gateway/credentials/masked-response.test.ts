// The masking response sink: headers and body masked, compressed bodies decompressed first,
// encodings it cannot read refused rather than passed through unchecked.
import { Writable } from 'node:stream';
import zlib from 'node:zlib';
import { describe, expect, test } from 'vitest';
import { maskPairs, type MaskPair } from '../../policies/credential-rewrite.js';
import { createMaskingResponseSink } from './masked-response.js';

const SECRET = 'real-secret-0123456789abcdef';
const PLACEHOLDER = 'srtgw-placeholder-x-1234';
const PAIRS = [{ from: SECRET, to: PLACEHOLDER }];

/** Stands in for http.ServerResponse: records the head and the body bytes. */
class RecordingResponse extends Writable {
  headersSent = false;
  status = 0;
  headers: Record<string, string | string[]> = {};
  chunks: Buffer[] = [];
  writeHead(status: number, headers: Record<string, string | string[]>): this {
    this.status = status;
    this.headers = headers;
    this.headersSent = true;
    return this;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(chunk);
    callback();
  }
  get body(): string {
    return Buffer.concat(this.chunks).toString();
  }
}

async function deliver(headers: Record<string, string>, body: Buffer, chunkSize = 7, pairs: readonly MaskPair[] = PAIRS): Promise<RecordingResponse> {
  const res = new RecordingResponse();
  const sink = createMaskingResponseSink(res, pairs, 'api.example.test');
  sink.writeHead(200, headers);
  for (let i = 0; i < body.length; i += chunkSize) sink.write(body.subarray(i, i + chunkSize));
  sink.end();
  await new Promise((resolve) => res.once('finish', resolve));
  return res;
}

describe('createMaskingResponseSink', () => {
  const plain = Buffer.from(`{"echo":"${SECRET}"}`);

  test('masks the body across chunks and drops Content-Length (the length changes)', async () => {
    const res = await deliver({ 'content-type': 'application/json', 'content-length': String(plain.length) }, plain);
    expect(res.body).toBe(`{"echo":"${PLACEHOLDER}"}`);
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['content-type']).toBe('application/json');
  });

  test('masks header values', async () => {
    const res = await deliver({ 'x-debug-key': SECRET, location: `https://x.test/?key=${SECRET}` }, Buffer.alloc(0));
    expect(res.headers['x-debug-key']).toBe(PLACEHOLDER);
    expect(res.headers.location).toBe(`https://x.test/?key=${PLACEHOLDER}`);
  });

  test('masks the encoded forms of the secret in a gzip body and in headers (hex, base64 inside a blob, every byte %XX)', async () => {
    const pairs = maskPairs(SECRET, PLACEHOLDER);
    const hex = Buffer.from(SECRET).toString('hex');
    const blob = Buffer.from(`user=bot;key=${SECRET};end`).toString('base64');
    const percent = [...Buffer.from(SECRET)].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('');
    const body = zlib.gzipSync(Buffer.from(`{"hex":"${hex}","blob":"${blob}","url":"/?k=${percent}"}`));
    const res = await deliver({ 'content-encoding': 'gzip', 'x-echo': blob, location: `/?k=${percent}` }, body, 5, pairs);
    for (const form of [hex, blob, percent, SECRET]) {
      expect(res.body).not.toContain(form);
      expect(JSON.stringify(res.headers)).not.toContain(form);
    }
    expect(res.body).toContain(`"hex":"${Buffer.from(PLACEHOLDER).toString('hex')}"`);
  });

  test.each([
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ] as const)('a %s body is decompressed, masked and sent without Content-Encoding', async (encoding, compress) => {
    const res = await deliver({ 'content-encoding': encoding }, compress(plain), 5);
    expect(res.body).toBe(`{"echo":"${PLACEHOLDER}"}`);
    expect(res.headers['content-encoding']).toBeUndefined();
  });

  test('an encoding it cannot read is refused before anything is sent', () => {
    const res = new RecordingResponse();
    const sink = createMaskingResponseSink(res, PAIRS, 'api.example.test');
    expect(() => sink.writeHead(200, { 'content-encoding': 'zstd' })).toThrow();
    expect(sink.refusal).toContain('content-encoding zstd');
    expect(res.headersSent).toBe(false);
  });
});

describe('a gRPC response', () => {
  test('keeps every length: a masked message still fits its length prefix; trailers are masked too', async () => {
    const res = new RecordingResponse() as RecordingResponse & { trailers?: Record<string, string | string[]>; addTrailers(t: Record<string, string | string[]>): void };
    res.addTrailers = (trailers) => (res.trailers = trailers);
    const sink = createMaskingResponseSink(res, PAIRS, 'api.example.test', { grpc: true });
    const message = Buffer.from(`{"echo":"${SECRET}"}`);
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
    sink.writeHead(200, { 'content-type': 'application/grpc' });
    sink.write(framed.subarray(0, 15));
    sink.write(framed.subarray(15));
    sink.addTrailers!({ 'grpc-status': '13', 'grpc-message': `bad key ${SECRET}` });
    sink.end();
    await new Promise((resolve) => res.once('finish', resolve));
    const out = Buffer.concat(res.chunks);
    expect(out.length).toBe(framed.length);
    expect(out.readUInt32BE(1)).toBe(message.length);
    expect(out.toString()).not.toContain(SECRET);
    expect(res.trailers).toEqual({ 'grpc-status': '13', 'grpc-message': `bad key ${PLACEHOLDER}` });
  });

  test('compressed messages (grpc-encoding) are refused, not passed on unchecked', () => {
    const sink = createMaskingResponseSink(new RecordingResponse(), PAIRS, 'api.example.test', { grpc: true });
    expect(() => sink.writeHead(200, { 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' })).toThrow(/grpc-encoding gzip/);
    expect(sink.refusal).toBe('api.example.test sent gRPC messages with grpc-encoding gzip, which the gateway cannot check for the injected credential');
  });
});
