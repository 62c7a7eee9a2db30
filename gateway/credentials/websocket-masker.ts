// Masks injected secrets in what a WebSocket upstream sends back, frame by frame. Masking the raw
// byte stream is not enough: a server may split one message into several frames (gorilla/websocket
// writes a large message as 4 KiB fragments), and a frame header in the middle of an echoed
// secret hides it from a byte search. So the frames are parsed, the payloads of one message are
// searched as one stream, and every frame leaves with its own header and its own length (the
// replacements have the length of what they replace).
//
// Streams, never buffers a message: only a frame header, a control frame (at most 125 bytes), and
// the last (longest secret - 1) bytes of an unfinished message wait. Those bytes wait for the next
// fragment of the message; a fragment without its FIN is not delivered whole until then.
// Written here rather than taken from `ws`: its Receiver reassembles whole messages (up to 100 MiB
// by default) before anyone sees them, and then they would have to be framed again.
import { Transform } from 'node:stream';
import { StreamMasker, type MaskPair } from './secret-masker.js';

/** Why a stream was cut: the upstream sent what cannot be checked for the secret. */
export class WebSocketMaskingError extends Error {
  override readonly name = 'WebSocketMaskingError';
}

const CONTINUATION = 0x0;
const TEXT = 0x1;
const BINARY = 0x2;
const FIRST_CONTROL_OPCODE = 0x8;
const KNOWN_CONTROL_OPCODES = new Set([0x8, 0x9, 0xa]);
const MAX_CONTROL_PAYLOAD = 125;
/** The longest frame header: 2 bytes, a 64-bit length, a 4-byte masking key. */
const MAX_HEADER = 14;

interface FrameHeader {
  readonly fin: boolean;
  readonly opcode: number;
  readonly headerLength: number;
  readonly payloadLength: number;
}

/** Frame bytes that must leave after the first `at` bytes of the current message's payloads. */
interface Waiting {
  readonly at: number;
  readonly bytes: Buffer;
}

export class WebSocketFrameMasker {
  readonly #pairs: readonly MaskPair[];
  readonly #message: StreamMasker;
  #header: Buffer = Buffer.alloc(0);
  #frame: FrameHeader | null = null;
  /** Payload bytes of the current frame still to come. */
  #payloadLeft = 0;
  /** A control frame's payload, gathered whole (≤ 125 bytes) and masked at once. */
  #control: Buffer[] = [];
  /** Payload bytes of the current message fed to the masker, and those sent on. */
  #received = 0;
  #released = 0;
  #waiting: Waiting[] = [];

  constructor(pairs: readonly MaskPair[]) {
    this.#pairs = pairs;
    this.#message = new StreamMasker(pairs, { lengthPreserving: true });
  }

  /** Takes upstream bytes; returns what may go to the client now. Throws WebSocketMaskingError. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#frame === null) {
        offset = this.#readHeader(chunk, offset, out);
        continue;
      }
      const take = Math.min(this.#payloadLeft, chunk.length - offset);
      const payload = chunk.subarray(offset, offset + take);
      offset += take;
      this.#payloadLeft -= take;
      if (this.#frame.opcode >= FIRST_CONTROL_OPCODE) this.#control.push(payload);
      else this.#feedMessage(payload, out);
      if (this.#payloadLeft === 0) this.#endFrame(out);
    }
    return out;
  }

  /** At the end of the stream: whatever still waits (the upstream cut a message short). */
  flush(): Buffer[] {
    const out: Buffer[] = [];
    this.#release(this.#message.flush(), out);
    for (const waiting of this.#waiting) out.push(waiting.bytes);
    this.#waiting = [];
    if (this.#header.length > 0) out.push(this.#header);
    this.#header = Buffer.alloc(0);
    return out;
  }

  #readHeader(chunk: Buffer, offset: number, out: Buffer[]): number {
    const needed = Math.min(MAX_HEADER - this.#header.length, chunk.length - offset);
    const candidate = Buffer.concat([this.#header, chunk.subarray(offset, offset + needed)]);
    const header = parseFrameHeader(candidate);
    if (header === null) {
      this.#header = candidate;
      return offset + needed;
    }
    const consumed = header.headerLength - this.#header.length;
    this.#header = Buffer.alloc(0);
    this.#frame = header;
    this.#payloadLeft = header.payloadLength;
    if (header.opcode < FIRST_CONTROL_OPCODE) this.#send(Buffer.from(candidate.subarray(0, header.headerLength)), out);
    else this.#control = [Buffer.from(candidate.subarray(0, header.headerLength))];
    if (header.payloadLength === 0) this.#endFrame(out);
    return offset + consumed;
  }

  #feedMessage(payload: Buffer, out: Buffer[]): void {
    this.#received += payload.length;
    this.#release(this.#message.push(payload), out);
  }

  #endFrame(out: Buffer[]): void {
    const frame = this.#frame!;
    this.#frame = null;
    if (frame.opcode >= FIRST_CONTROL_OPCODE) {
      const [header, ...payload] = this.#control;
      this.#control = [];
      const masker = new StreamMasker(this.#pairs, { lengthPreserving: true });
      this.#send(Buffer.concat([header!, masker.push(Buffer.concat(payload)), masker.flush()]), out);
      return;
    }
    if (!frame.fin) return;
    // The message is complete: nothing after it can finish a secret that started in it.
    this.#release(this.#message.flush(), out);
    this.#received = 0;
    this.#released = 0;
  }

  /** Frame bytes (a header, a control frame): out now, or after the message bytes still held. */
  #send(bytes: Buffer, out: Buffer[]): void {
    if (this.#released === this.#received && this.#waiting.length === 0) out.push(bytes);
    else this.#waiting.push({ at: this.#received, bytes });
  }

  /** Masked message bytes, in order, with the frame bytes that were waiting for them. */
  #release(masked: Buffer, out: Buffer[]): void {
    let offset = 0;
    for (;;) {
      while (this.#waiting.length > 0 && this.#waiting[0]!.at <= this.#released) out.push(this.#waiting.shift()!.bytes);
      if (offset === masked.length) return;
      const next = this.#waiting[0];
      const end = next === undefined ? masked.length : Math.min(masked.length, offset + (next.at - this.#released));
      out.push(masked.subarray(offset, end));
      this.#released += end - offset;
      offset = end;
    }
  }
}

/** A frame header from the start of `bytes`, or null while it is incomplete. Throws on frames that cannot be checked. */
function parseFrameHeader(bytes: Buffer): FrameHeader | null {
  if (bytes.length < 2) return null;
  const first = bytes[0]!;
  const second = bytes[1]!;
  const opcode = first & 0x0f;
  if ((first & 0x70) !== 0) {
    throw new WebSocketMaskingError('the upstream sent a compressed or extended WebSocket frame, which the gateway cannot check for the injected credential');
  }
  if ((second & 0x80) !== 0) throw new WebSocketMaskingError('the upstream sent a masked WebSocket frame (RFC 6455 §5.1 forbids it)');
  if (opcode >= FIRST_CONTROL_OPCODE ? !KNOWN_CONTROL_OPCODES.has(opcode) : opcode !== CONTINUATION && opcode !== TEXT && opcode !== BINARY) {
    throw new WebSocketMaskingError(`the upstream sent a WebSocket frame with the unknown opcode ${opcode}`);
  }
  let payloadLength = second & 0x7f;
  let headerLength = 2;
  if (payloadLength === 126) {
    if (bytes.length < 4) return null;
    payloadLength = bytes.readUInt16BE(2);
    headerLength = 4;
  } else if (payloadLength === 127) {
    if (bytes.length < 10) return null;
    const length = bytes.readBigUInt64BE(2);
    if (length > BigInt(Number.MAX_SAFE_INTEGER)) throw new WebSocketMaskingError('the upstream sent a WebSocket frame longer than 2^53 bytes');
    payloadLength = Number(length);
    headerLength = 10;
  }
  const fin = (first & 0x80) !== 0;
  if (opcode >= FIRST_CONTROL_OPCODE && (payloadLength > MAX_CONTROL_PAYLOAD || !fin)) {
    throw new WebSocketMaskingError('the upstream sent a fragmented or oversized WebSocket control frame (RFC 6455 §5.5)');
  }
  return { fin, opcode, headerLength, payloadLength };
}

/** A Transform for the upstream → client side of a WebSocket; fails the stream with a WebSocketMaskingError. */
export function createWebSocketMaskingTransform(pairs: readonly MaskPair[]): Transform {
  const masker = new WebSocketFrameMasker(pairs);
  const forward = (stream: Transform, pieces: Buffer[]) => {
    for (const piece of pieces) if (piece.length > 0) stream.push(piece);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        forward(this, masker.push(chunk));
      } catch (error) {
        callback(error as Error);
        return;
      }
      callback();
    },
    flush(callback) {
      forward(this, masker.flush());
      callback();
    },
  });
}
