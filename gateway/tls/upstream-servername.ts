// Which TLS server name (SNI) the gateway sends to an upstream. One rule for the undici pools and
// the HTTP/2 (gRPC) sessions alike: the policy-checked host, never a name the client sent, and
// none for an IP literal, since SNI carries only host names (RFC 6066, section 3).
import { isIP } from 'node:net';

export function upstreamServername(target: { scheme: 'http' | 'https'; host: string }): string | undefined {
  return target.scheme === 'https' && isIP(target.host) === 0 ? target.host : undefined;
}
