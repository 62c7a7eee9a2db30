// Reads the PROXY protocol v2 header that the jail's redirector puts in front of every
// connection it hands over: it carries the address the sandboxed program asked for
// (SO_ORIGINAL_DST). Parsing is proxy-protocol-js's; framing and bounds are ours.
import type { Duplex } from 'node:stream';
import type ProxyProtocolModule from 'proxy-protocol-js';

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const FIXED_PART = 16;
/** Address blocks are at most 216 bytes (unix); allow some TLVs, refuse anything larger. */
const MAX_HEADER = 512;

export interface OriginalDestination {
  /** The address the program connected to (IPv4 dotted or IPv6 text). */
  address: string;
  port: number;
  /** The program's own address and port inside the jail, for the audit log. */
  source: string;
}

// Loaded by loadProxyHeaderParser(), only when a transparent listener starts: `srt-gw run` hands
// sockets over without PROXY headers and should not pay for compiling the parser at start-up.
let proxyProtocol: typeof ProxyProtocolModule | null = null;

/** Loads the PROXY header parser; readProxyHeader needs it to have resolved first. */
export async function loadProxyHeaderParser(): Promise<void> {
  proxyProtocol ??= (await import('proxy-protocol-js')).default;
}

/**
 * Reads exactly one PROXY v2 header off `socket`, then hands back whatever followed it.
 * Rejects (and the caller closes the socket) on a bad signature, a LOCAL or non-TCP header, an
 * oversized header, or no complete header within `timeoutMs`.
 */
export function readProxyHeader(socket: Duplex, timeoutMs: number): Promise<{ destination: OriginalDestination; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (error: Error | null, value?: { destination: OriginalDestination; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (error) reject(error);
      else resolve(value!);
    };
    const onEnd = () => finish(new Error('connection closed before the PROXY header was complete'));
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const compared = Math.min(buffered.length, SIGNATURE.length);
      if (!buffered.subarray(0, compared).equals(SIGNATURE.subarray(0, compared))) {
        finish(new Error('not a PROXY protocol v2 header'));
        return;
      }
      if (buffered.length < FIXED_PART) return;
      const total = FIXED_PART + buffered.readUInt16BE(14);
      if (total > MAX_HEADER) {
        finish(new Error(`PROXY header of ${total} bytes is larger than ${MAX_HEADER}`));
        return;
      }
      if (buffered.length < total) return;
      try {
        finish(null, { destination: parseDestination(buffered.subarray(0, total)), rest: buffered.subarray(total) });
      } catch (error) {
        finish(error as Error);
      }
    };
    const timer = setTimeout(() => finish(new Error('no PROXY header in time')), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
  });
}

function parseDestination(header: Buffer): OriginalDestination {
  if (proxyProtocol === null) throw new Error('the PROXY header parser is not loaded (call loadProxyHeaderParser first)');
  let parsed: ReturnType<typeof proxyProtocol.V2ProxyProtocol.parse>;
  try {
    parsed = proxyProtocol.V2ProxyProtocol.parse(header);
  } catch (error) {
    // proxy-protocol-js throws plain {name, message} objects, not Errors: callers get an Error.
    const message = (error as { message?: unknown } | null)?.message;
    throw new Error(`malformed PROXY header: ${typeof message === 'string' ? message : String(error)}`, { cause: error });
  }
  if (parsed.command !== proxyProtocol.Command.PROXY || parsed.transportProtocol !== proxyProtocol.TransportProtocol.STREAM) {
    throw new Error('PROXY header is not PROXY/STREAM (TCP)');
  }
  const address = parsed.proxyAddress;
  if (address instanceof proxyProtocol.IPv4ProxyAddress) {
    return {
      address: address.destinationAddress.address.join('.'),
      port: address.destinationPort,
      source: `${address.sourceAddress.address.join('.')}:${address.sourcePort}`,
    };
  }
  if (address instanceof proxyProtocol.IPv6ProxyAddress) {
    return {
      address: ipv6Text(address.destinationAddress.address),
      port: address.destinationPort,
      source: `[${ipv6Text(address.sourceAddress.address)}]:${address.sourcePort}`,
    };
  }
  throw new Error('PROXY header carries no IPv4 or IPv6 destination');
}

function ipv6Text(bytes: readonly number[]): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  // Canonical compression is not needed: every consumer parses the text back into bytes.
  return groups.join(':');
}
