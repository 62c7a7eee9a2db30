// Table-driven tests for host.ts; each case's name says what it proves.
import { describe, expect, test } from 'vitest';
import { hostMatchesPattern, isIpLiteral, normalizeHost, parseHostPattern } from './host.js';

describe('normalizeHost', () => {
  test('answers are remembered per exact input, and stay right after the memory starts over', () => {
    const inputs: [string, string | null][] = [['0x7f.1', '127.0.0.1'], ['API.Example.TEST.', 'api.example.test'], ['api.example.test', 'api.example.test'], ['bad host', null]];
    for (let round = 0; round < 2; round++) for (const [input, expected] of inputs) expect(normalizeHost(input)).toBe(expected);
    // More distinct client-sent names than are remembered: the bound is reached, answers unchanged.
    for (let i = 0; i < 5000; i++) expect(normalizeHost(`Name${i}.Example.TEST`)).toBe(`name${i}.example.test`);
    for (const [input, expected] of inputs) expect(normalizeHost(input)).toBe(expected);
  });

  test.each([
    ['host comparison is case-insensitive', 'API.Example.TEST', 'api.example.test'],
    ['trailing dot ignored', 'api.example.test.', 'api.example.test'],
    ['IDN host compares as punycode', 'Bücher.example', 'xn--bcher-kva.example'],
    ['punycode stays as it is', 'xn--bcher-kva.example', 'xn--bcher-kva.example'],
    ['underscore allowed in a label', '_acme.example.test', '_acme.example.test'],
    ['single-label name', 'localhost', 'localhost'],
    ['IPv4 literal', '203.0.113.9', '203.0.113.9'],
    ['brackets around IPv6 are stripped', '[2001:DB8::1]', '2001:db8::1'],
    ['IPv6 is written in RFC 5952 form', '2001:0db8:0:0:0:0:0:0001', '2001:db8::1'],
    ['IPv6 compresses the longest zero run', '2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['IPv4-mapped IPv6 becomes the IPv4 address', '::ffff:203.0.113.9', '203.0.113.9'],
    ['IPv4-mapped IPv6 in hex becomes the IPv4 address', '[::ffff:cb00:7109]', '203.0.113.9'],
    ['decimal IPv4 form becomes the dotted address a client would dial', '2130706433', '127.0.0.1'],
    ['hex IPv4 form becomes the dotted address', '0x7f.1', '127.0.0.1'],
  ])('%s: %s → %s', (_name, input, expected) => {
    expect(normalizeHost(input)).toBe(expected);
  });

  test.each([
    ['empty', ''],
    ['only a dot', '.'],
    ['empty label', 'a..example.test'],
    ['two trailing dots', 'example.test..'],
    ['space', 'api example.test'],
    ['percent escape is not decoded into a name', 'ap%69.example.test'],
    ['slash', 'api.example.test/x'],
    ['wildcard is not a host', '*.example.test'],
    ['port is not part of a host', 'api.example.test:443'],
    ['IPv6 zone id', 'fe80::1%eth0'],
    ['unclosed bracket', '[::1'],
    ['bracketed IPv4', '[127.0.0.1]'],
    ['invalid IPv4', '999.1.1.1'],
    ['name ending in a number is not a valid IPv4', 'example.123'],
    ['label over 63 characters', `${'a'.repeat(64)}.test`],
    ['name over 253 characters', `${'a.'.repeat(127)}test`],
  ])('rejects %s: %j', (_name, input) => {
    expect(normalizeHost(input)).toBeNull();
  });
});

test.each([
  ['203.0.113.9', true],
  ['::1', true],
  ['2001:db8::1', true],
  ['api.example.test', false],
  ['[::1]', false],
  ['1.2.3', false],
])('isIpLiteral(%j) is %s', (host, expected) => {
  expect(isIpLiteral(host)).toBe(expected);
});

describe('hostMatchesPattern', () => {
  test.each([
    ['exact name matches', 'api.example.test', 'api.example.test', true],
    ['exact name does not match a subdomain', 'x.api.example.test', 'api.example.test', false],
    ['exact name does not match a longer name ending the same', 'evilapi.example.test', 'api.example.test', false],
    ['host comparison is case-insensitive', 'API.EXAMPLE.test', 'api.Example.TEST', true],
    ['trailing dot ignored', 'api.example.test.', 'api.example.test', true],
    ['IDN host compares as punycode', 'xn--bcher-kva.example', 'bücher.example', true],
    ['wildcard matches a subdomain', 'a.example.test', '*.example.test', true],
    ['wildcard matches a deeper subdomain', 'a.b.example.test', '*.example.test', true],
    ['wildcard does not match the apex', 'example.test', '*.example.test', false],
    ['wildcard does not match a name that only ends with the same letters', 'evilexample.test', '*.example.test', false],
    ['wildcard does not match the apex with a trailing dot', 'example.test.', '*.example.test', false],
    ['"*" matches any name', 'anything.test', '*', true],
    ['"*" matches a single-label name', 'localhost', '*', true],
    ['IP literal never matches "*"', '203.0.113.9', '*', false],
    ['IP literal never matches a name wildcard', '1.2.3.4', '*.2.3.4', false],
    ['IP literal never matches a name wildcard (IPv6)', '::1', '*.example.test', false],
    ['numeric host spelling is an IP literal, not a name for "*"', '2130706433', '*', false],
    ['IP literal equals', '203.0.113.9', '203.0.113.9', true],
    ['IP literal differs', '203.0.113.10', '203.0.113.9', false],
    ['IPv6 literal equals in another spelling', '[2001:db8:0::1]', '2001:db8::1', true],
    ['CIDR contains IPv4', '203.0.113.200', '203.0.113.0/24', true],
    ['CIDR does not contain IPv4 outside it', '203.0.114.1', '203.0.113.0/24', false],
    ['CIDR /32 is one address', '203.0.113.9', '203.0.113.9/32', true],
    ['CIDR /0 contains every IPv4', '8.8.8.8', '0.0.0.0/0', true],
    ['CIDR contains IPv6', 'fd12:3456::1', 'fd00::/8', true],
    ['CIDR does not contain IPv6 outside it', 'fe80::1', 'fd00::/8', false],
    ['IPv4-mapped IPv6 compares as the IPv4 against an IPv4 CIDR', '::ffff:10.1.2.3', '10.0.0.0/8', true],
    ['IPv4-mapped IPv6 outside the IPv4 CIDR', '::ffff:11.1.2.3', '10.0.0.0/8', false],
    ['IPv4 compares as IPv4-mapped against a mapped IPv6 CIDR', '10.1.2.3', '::ffff:10.0.0.0/104', true],
    ['IPv4 is inside ::/0 as a mapped address', '10.1.2.3', '::/0', true],
    ['IPv4 is not inside an unrelated IPv6 CIDR', '10.1.2.3', 'fd00::/8', false],
    ['IPv6 is never inside an IPv4 CIDR', '2001:db8::1', '0.0.0.0/0', false],
    ['IPv4 literal pattern matches its mapped form', '::ffff:203.0.113.9', '203.0.113.9', true],
    ['CIDR never matches a name', 'api.example.test', '0.0.0.0/0', false],
    ['IP literal pattern never matches a name', 'localhost', '127.0.0.1', false],
    ['invalid host matches nothing', 'a..b', '*', false],
    ['invalid pattern matches nothing', 'api.example.test', 'api.*.test', false],
  ])('%s: %s vs %s', (_name, host, pattern, expected) => {
    expect(hostMatchesPattern(host, pattern)).toBe(expected);
  });
});

describe('parseHostPattern', () => {
  test.each([
    ['exact name is normalised', 'API.Example.test.', 'api.example.test'],
    ['wildcard suffix is normalised', '*.Bücher.example', '*.xn--bcher-kva.example'],
    ['any name', '*', '*'],
    ['IPv6 literal', '[2001:DB8::1]', '2001:db8::1'],
    ['IPv4 CIDR', '10.0.0.0/8', '10.0.0.0/8'],
    ['IPv6 CIDR', 'FD00::/8', 'fd00::/8'],
    ['IPv4-mapped IPv6 CIDR becomes an IPv4 CIDR', '::ffff:10.0.0.0/104', '10.0.0.0/8'],
  ])('%s: %s → %s', (_name, input, expected) => {
    const parsed = parseHostPattern(input);
    expect(parsed).toHaveProperty('text', expected);
  });

  test.each([
    ['wildcard in the middle', 'api.*.test', 'is not the whole first label'],
    ['wildcard without a dot', '*example.test', 'write "*.example.test"'],
    ['two wildcards', '*.*.example.test', 'is not the whole first label'],
    ['wildcard over an IP address', '*.1.2.3', 'not an IP address'],
    ['CIDR with host bits set', '10.0.0.1/8', 'write "10.0.0.0/8"'],
    ['IPv4 CIDR prefix too long', '10.0.0.0/33', '0-32 for IPv4'],
    ['IPv6 CIDR prefix too long', 'fd00::/129', '0-128 for IPv6'],
    ['CIDR prefix with a leading zero', '10.0.0.0/08', 'not a valid CIDR block'],
    ['CIDR over a name', 'example.test/8', 'not a valid CIDR block'],
    ['empty', '', 'must not be empty'],
    ['URL instead of a host', 'https://api.example.test/v1', 'is a URL'],
    ['port inside the host', 'api.example.test:443', 'put the port in "port:"'],
    ['invalid name', 'api..example.test', 'not a valid host name'],
  ])('rejects %s: %j', (_name, input, expected) => {
    const parsed = parseHostPattern(input);
    expect(parsed).toHaveProperty('error');
    expect('error' in parsed && parsed.error).toContain(expected);
  });
});
