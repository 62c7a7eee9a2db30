// The response side of credential injection: a ResponseSink that masks the injected secret in
// the upstream's headers and body before anything reaches the client. The body length changes,
// so Content-Length is dropped; a compressed body is decompressed first (gzip, deflate, br),
// because a secret inside compressed bytes cannot be found; any other encoding is refused.
import type { Writable } from 'node:stream';
import type zlib from 'node:zlib';
import { createMaskingTransform, maskText, type MaskPair } from './secret-masker.js';
import type { ResponseSink } from '../upstream/upstream-client.js';

export interface MaskingResponseSink extends ResponseSink {
  /** Set when the response could not be checked for the secret (unknown encoding): answer 502 with it. */
  readonly refusal: string | null;
}

type ClientResponse = Writable & {
  readonly headersSent: boolean;
  writeHead(status: number, headers: Record<string, string | string[]>): unknown;
  /** An HTTP/2 response's trailers (http.ServerResponse has one too; only HTTP/2 calls reach it). */
  addTrailers?(trailers: Record<string, string | string[]>): void;
};

/** A header or trailer value with every secret masked. */
function maskValue(value: string | string[], pairs: readonly MaskPair[]): string | string[] {
  return Array.isArray(value) ? value.map((item) => maskText(item, pairs)) : maskText(value, pairs);
}

// zlib is required on the first compressed response that needs masking, not at start-up (~1.5 ms
// of every `srt-gw run`, which mostly never masks anything).
const loadZlib = (): typeof zlib => process.getBuiltinModule('node:zlib');

const DECODERS: Record<string, () => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress> = {
  gzip: () => loadZlib().createGunzip(),
  'x-gzip': () => loadZlib().createGunzip(),
  deflate: () => loadZlib().createInflate(),
  br: () => loadZlib().createBrotliDecompress(),
};

/**
 * `grpc`: a gRPC response, whose body is length-prefixed messages: replacements keep the length
 * of what they replace, a compressed message (grpc-encoding) is refused, and trailers are masked.
 */
export function createMaskingResponseSink(res: ClientResponse, pairs: readonly MaskPair[], upstreamHost: string, options: { grpc?: boolean } = {}): MaskingResponseSink {
  const grpc = options.grpc === true;
  let entry: Writable | null = null;
  let refusal: string | null = null;
  const stages: Writable[] = [];
  const sink: MaskingResponseSink = {
    get refusal() {
      return refusal;
    },
    get headersSent() {
      return res.headersSent;
    },
    get writableFinished() {
      return res.writableFinished;
    },
    writeHead(status, headers) {
      const encodings = String(headers['content-encoding'] ?? '')
        .split(',')
        .map((token) => token.trim().toLowerCase())
        .filter((token) => token !== '' && token !== 'identity');
      if (encodings.length > 1 || (encodings.length === 1 && DECODERS[encodings[0]!] === undefined)) {
        refusal = `${upstreamHost} sent a response with content-encoding ${encodings.join(', ')}, which the gateway cannot check for the injected credential`;
        throw new Error(refusal);
      }
      const messageEncoding = String(headers['grpc-encoding'] ?? 'identity').trim().toLowerCase();
      if (grpc && messageEncoding !== 'identity') {
        refusal = `${upstreamHost} sent gRPC messages with grpc-encoding ${messageEncoding}, which the gateway cannot check for the injected credential`;
        throw new Error(refusal);
      }
      const outgoing: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(headers)) {
        if (name === 'content-length') continue;
        if (name === 'content-encoding' && encodings.length === 1) continue;
        outgoing[name] = maskValue(value, pairs);
      }
      res.writeHead(status, outgoing);
      const masker = createMaskingTransform(pairs, { lengthPreserving: grpc });
      const decoder = encodings.length === 1 ? DECODERS[encodings[0]!]!() : null;
      if (decoder) {
        decoder.pipe(masker);
        stages.push(decoder);
      }
      stages.push(masker);
      masker.pipe(res);
      for (const stage of stages) stage.on('error', () => res.destroy());
      entry = decoder ?? masker;
      return undefined;
    },
    write(chunk) {
      return entry?.write(chunk) ?? true;
    },
    end() {
      if (entry) entry.end();
      else res.end();
      return undefined;
    },
    addTrailers(trailers) {
      const masked: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(trailers)) masked[name] = maskValue(value, pairs);
      res.addTrailers?.(masked);
    },
    destroy(error) {
      for (const stage of stages) stage.destroy();
      res.destroy(error);
      return undefined;
    },
    once(event, listener) {
      if (event === 'drain' && entry) entry.once('drain', listener);
      else res.once(event, listener);
      return sink;
    },
  };
  res.once('close', () => {
    for (const stage of stages) stage.destroy();
  });
  return sink;
}
