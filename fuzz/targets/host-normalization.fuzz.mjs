// Host names and authorities as a client writes them (Host header, CONNECT target, SNI).
// Contract: normalizeHost returns a string or null and is idempotent; splitAuthority returns
// {host, port}|null with a port in 1..65535; IP literals format and parse back to themselves.
import { normalizeHost, parseHostPattern, parseIpAddress, formatIpAddress, isIpLiteral } from '../../dist/policies/host.js';
import { splitAuthority } from '../../dist/gateway/http/exchange.js';
import { expect, expectEqual } from '../target-contract.mjs';

export function fuzz(data) {
  // Both decodings: latin1 keeps every byte (a header value), utf8 gives non-ASCII names (IDN).
  for (const text of [data.toString('latin1'), data.toString('utf8')]) checkHost(text);
}

function checkHost(text) {
  const host = normalizeHost(text);
  if (host !== null) {
    expect(typeof host === 'string' && host.length > 0, 'normalizeHost returns a non-empty string or null');
    expectEqual(normalizeHost(host), host, `normalizeHost is idempotent on ${JSON.stringify(text)}`);
    expectEqual(host, host.toLowerCase(), 'a normalised host is lower case');
    if (isIpLiteral(host)) {
      const address = parseIpAddress(host);
      expect(address !== null, `an IP literal host parses: ${host}`);
      expectEqual(formatIpAddress(address), host, 'an IP literal host is in canonical form');
    }
  }
  const authority = splitAuthority(text);
  if (authority !== null) {
    expect(authority.host.length > 0, 'splitAuthority never returns an empty host');
    expect(authority.port === null || (Number.isInteger(authority.port) && authority.port >= 1 && authority.port <= 65535), `port in range: ${authority.port}`);
  }
  const pattern = parseHostPattern(text);
  expect('error' in pattern ? typeof pattern.error === 'string' : typeof pattern.text === 'string', 'parseHostPattern returns {pattern,text}|{error}');
  const address = parseIpAddress(text);
  if (address !== null) {
    const formatted = formatIpAddress(address);
    const back = parseIpAddress(formatted);
    expect(back !== null && back.family === address.family && back.value === address.value, `formatIpAddress round-trips ${JSON.stringify(text)} → ${formatted}`);
  }
}
