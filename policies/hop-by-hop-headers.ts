// The request headers the gateway never forwards as the client sent them: they describe one hop
// (RFC 9110 §7.6.1) or carry proxy credentials, and Host is set by the gateway itself. Here, not
// in gateway/, because policies check against the same list: a credential rule may not name one
// of these headers, since the gateway would drop or replace what the rule wrote.
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);
