// Masks injected secrets in what an upstream sends back (an API that echoes request headers, an
// error that quotes the key): every occurrence of the secret and of its encodings (the pairs come
// from maskPairs() in policies/credential-rewrite.ts) becomes the placeholder before it reaches
// the sandbox. Streaming with bounded memory: only the last (longest pattern - 1) bytes are held
// back, so a secret split across chunk boundaries is still caught; the longest pattern is an
// encoded form (a \uXXXX-escaped secret is 6 times the secret), so the window grows with it.
import { Transform } from 'node:stream';
import type { MaskPair } from '../../policies/credential-rewrite.js';

export type { MaskPair };

interface Pattern {
  readonly from: Buffer;
  readonly to: Buffer;
}

export class StreamMasker {
  private readonly patterns: readonly Pattern[];
  /** Bytes held back between chunks: a match can start in them and end in the next chunk. */
  private readonly holdBack: number;
  private tail: Buffer = Buffer.alloc(0);

  /** `lengthPreserving`: replacements are cut or padded to the length they replace (WebSocket frames keep their lengths). */
  constructor(pairs: readonly MaskPair[], options: { lengthPreserving?: boolean } = {}) {
    const seen = new Set<string>();
    const patterns: Pattern[] = [];
    for (const pair of pairs) {
      if (pair.from === '' || seen.has(pair.from)) continue;
      seen.add(pair.from);
      const from = Buffer.from(pair.from, 'utf8');
      const to = options.lengthPreserving === true ? fitToLength(Buffer.from(pair.to, 'utf8'), from.length) : Buffer.from(pair.to, 'utf8');
      patterns.push({ from, to });
    }
    this.patterns = patterns;
    this.holdBack = Math.max(0, ...patterns.map((pattern) => pattern.from.length - 1));
  }

  /** Masks `chunk` (with what was held back) and returns what is safe to send now. */
  push(chunk: Buffer): Buffer {
    if (this.patterns.length === 0) return chunk;
    return this.mask(this.tail.length === 0 ? chunk : Buffer.concat([this.tail, chunk]), false);
  }

  /** The held-back bytes at the end of the stream, masked. */
  flush(): Buffer {
    const rest = this.tail;
    this.tail = Buffer.alloc(0);
    return rest.length === 0 ? rest : this.mask(rest, true);
  }

  /** Replaces every decided match in `buffer`; unless `final`, keeps the undecided end as the tail. */
  private mask(buffer: Buffer, final: boolean): Buffer {
    // SECURITY: a match that starts in the last (longest - 1) bytes waits for the next chunk: a
    // longer form that starts before it (one encoding inside another) may not have arrived whole,
    // and masking the shorter one first would send the longer one's start unmasked —
    // gateway/credentials/secret-masker.test.ts "a longer form that starts first".
    const decidedBefore = final ? buffer.length : buffer.length - this.holdBack;
    const out: Buffer[] = [];
    let position = 0;
    // Next occurrence of each pattern at or after `position`; -1 when there is none.
    const next = this.patterns.map((pattern) => buffer.indexOf(pattern.from, 0));
    for (;;) {
      let best = -1;
      for (let i = 0; i < this.patterns.length; i++) {
        if (next[i]! >= 0 && next[i]! < position) next[i] = buffer.indexOf(this.patterns[i]!.from, position);
        const at = next[i]!;
        if (at < 0) continue;
        // Leftmost wins; at the same place, the longest.
        if (best < 0 || at < next[best]! || (at === next[best]! && this.patterns[i]!.from.length > this.patterns[best]!.from.length)) best = i;
      }
      if (best < 0 || next[best]! >= decidedBefore) break;
      const at = next[best]!;
      const pattern = this.patterns[best]!;
      out.push(buffer.subarray(position, at), pattern.to);
      position = at + pattern.from.length;
    }
    const keepFrom = Math.max(position, decidedBefore);
    out.push(buffer.subarray(position, keepFrom));
    // A copy, so a large chunk is not kept alive by its last few bytes.
    if (!final) this.tail = Buffer.from(buffer.subarray(keepFrom));
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }
}

/** A Transform that masks everything passing through (`lengthPreserving`: see StreamMasker). */
export function createMaskingTransform(pairs: readonly MaskPair[], options: { lengthPreserving?: boolean } = {}): Transform {
  const masker = new StreamMasker(pairs, options);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const masked = masker.push(chunk);
      callback(null, masked.length > 0 ? masked : undefined);
    },
    flush(callback) {
      const rest = masker.flush();
      callback(null, rest.length > 0 ? rest : undefined);
    },
  });
}

/** Masks a whole string (a response header value). */
export function maskText(text: string, pairs: readonly MaskPair[]): string {
  let masked = text;
  for (const pair of [...pairs].sort((a, b) => b.from.length - a.from.length)) {
    if (pair.from !== '') masked = masked.split(pair.from).join(pair.to);
  }
  return masked;
}

function fitToLength(replacement: Buffer, length: number): Buffer {
  if (replacement.length >= length) return replacement.subarray(0, length);
  return Buffer.concat([replacement, Buffer.alloc(length - replacement.length, '*')]);
}
