import { describe, expect, it } from 'vitest';
import { parseIpAddress, type IpAddress } from './host.js';
import { parsePolicy } from './loader.js';
import { checkDestinationAddress, embeddedIpv4, privateRangeOf, type PrivateRangeKind } from './private-destinations.js';
import { renderShownPolicy, showPolicy } from './show.js';
import type { Policy } from './types.js';

function ip(text: string): IpAddress {
  const address = parseIpAddress(text);
  if (address === null) throw new Error(`not an address: ${text}`);
  return address;
}

const NO_RULES: Policy = { version: 1, rules: [] };

describe('privateRangeOf', () => {
  const cases: [string, string, PrivateRangeKind | null][] = [
    ['loopback, first address', '127.0.0.1', 'loopback'],
    ['loopback, anywhere in 127/8', '127.255.3.4', 'loopback'],
    ['IPv6 loopback', '::1', 'loopback'],
    ['"this network" 0.0.0.0', '0.0.0.0', 'this-network'],
    ['"this network" 0/8', '0.1.2.3', 'this-network'],
    ['IPv6 unspecified [::]', '::', 'unspecified'],
    ['RFC 1918 10/8', '10.20.30.40', 'private'],
    ['RFC 1918 172.16/12, low end', '172.16.0.1', 'private'],
    ['RFC 1918 172.16/12, high end', '172.31.255.254', 'private'],
    ['just past 172.16/12 is public', '172.32.0.1', null],
    ['RFC 1918 192.168/16', '192.168.1.1', 'private'],
    ['CGNAT 100.64/10', '100.64.0.1', 'shared'],
    ['CGNAT 100.64/10, high end', '100.127.255.255', 'shared'],
    ['just past CGNAT is public', '100.128.0.1', null],
    ['cloud metadata', '169.254.169.254', 'link-local'],
    ['IPv4 link-local', '169.254.1.1', 'link-local'],
    ['IPv6 link-local', 'fe80::1', 'link-local'],
    ['IPv6 link-local, end of fe80::/10', 'febf::1', 'link-local'],
    ['IPv6 site-local (deprecated)', 'fec0::1', 'site-local'],
    ['ULA fd00::/8', 'fd12:3456::1', 'unique-local'],
    ['ULA fc00::/8', 'fc00::1', 'unique-local'],
    ['IPv4 multicast', '224.0.0.1', 'multicast'],
    ['IPv4 multicast, top', '239.255.255.250', 'multicast'],
    ['IPv6 multicast', 'ff02::1', 'multicast'],
    ['broadcast', '255.255.255.255', 'broadcast'],
    ['IPv4-mapped ::ffff:127.0.0.1', '::ffff:127.0.0.1', 'loopback'],
    ['IPv4-mapped in hex ::ffff:7f00:1', '::ffff:7f00:1', 'loopback'],
    ['IPv4-mapped metadata', '::ffff:169.254.169.254', 'link-local'],
    ['NAT64 64:ff9b::7f00:1', '64:ff9b::7f00:1', 'loopback'],
    ['NAT64 of a LAN address', '64:ff9b::10.0.0.1', 'private'],
    ['local-use NAT64 prefix', '64:ff9b:1::1', 'local-nat64'],
    ['6to4 2002:7f00:1::', '2002:7f00:1::', 'loopback'],
    ['6to4 of metadata', '2002:a9fe:a9fe::1', 'link-local'],
    ['IPv4-compatible ::127.0.0.1', '::127.0.0.1', 'loopback'],
    ['public IPv4', '93.184.216.34', null],
    ['public IPv4 (documentation range, used as a stand-in)', '203.0.113.9', null],
    ['public IPv6', '2606:4700::1111', null],
    ['NAT64 of a public address', '64:ff9b::5db8:d822', null],
    ['6to4 of a public address', '2002:5db8:d822::1', null],
  ];
  it.each(cases)('%s (%s)', (_name, address, kind) => {
    expect(privateRangeOf(ip(address))).toBe(kind);
  });

  it('embeddedIpv4 reads the IPv4 address out of NAT64 and 6to4 forms only', () => {
    expect(embeddedIpv4(ip('64:ff9b::7f00:1'))).toEqual(ip('127.0.0.1'));
    expect(embeddedIpv4(ip('2002:7f00:1::'))).toEqual(ip('127.0.0.1'));
    expect(embeddedIpv4(ip('2606:4700::1111'))).toBeNull();
    expect(embeddedIpv4(ip('127.0.0.1'))).toBeNull();
  });
});

describe('checkDestinationAddress', () => {
  const noOwn = { policy: NO_RULES, ownAddresses: [] };

  it('refuses a private address with the reason the client sees', () => {
    expect(checkDestinationAddress('127.0.0.1', noOwn)).toEqual({ allowed: false, reason: 'destination 127.0.0.1 is a private address' });
    expect(checkDestinationAddress('::ffff:7f00:1', noOwn)).toEqual({ allowed: false, reason: 'destination ::ffff:7f00:1 is a private address' });
    expect(checkDestinationAddress('169.254.169.254', noOwn)).toMatchObject({ allowed: false });
  });

  it('allows public addresses', () => {
    expect(checkDestinationAddress('93.184.216.34', noOwn)).toEqual({ allowed: true });
    expect(checkDestinationAddress('2606:4700::1111', noOwn)).toEqual({ allowed: true });
  });

  it("refuses the gateway host's own public address", () => {
    const facts = { policy: NO_RULES, ownAddresses: [ip('198.51.100.7')] };
    expect(checkDestinationAddress('198.51.100.7', facts)).toEqual({ allowed: false, reason: "destination 198.51.100.7 is an address of the gateway's own host" });
    expect(checkDestinationAddress('198.51.100.8', facts)).toEqual({ allowed: true });
  });

  it('refuses what is not a plain address (a zone id)', () => {
    expect(checkDestinationAddress('fe80::1%eth0', noOwn)).toMatchObject({ allowed: false });
  });

  it('an allow rule naming the address or its range opens it; a deny rule or a name rule does not', () => {
    const policy = parsePolicy(`
version: 1
rules:
  - { id: one-address, host: 127.0.0.1, port: 8080 }
  - { id: lan, host: 10.1.0.0/16 }
  - { id: ula, host: "fd00::/8", protocol: tcp, port: 22 }
  - { id: not-this, host: 192.168.1.1, action: deny }
  - { id: names, host: "*.example.test" }
`);
    const facts = { policy, ownAddresses: [] };
    expect(checkDestinationAddress('127.0.0.1', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('::ffff:127.0.0.1', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('127.0.0.2', facts)).toMatchObject({ allowed: false });
    expect(checkDestinationAddress('10.1.200.3', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('10.2.0.1', facts)).toMatchObject({ allowed: false });
    expect(checkDestinationAddress('fd00::5', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('192.168.1.1', facts)).toMatchObject({ allowed: false });
  });

  it('allowPrivateDestinations opens its ranges, an own address included', () => {
    const policy = parsePolicy(`
version: 1
allowPrivateDestinations: [127.0.0.0/8, "fe80::/10", 192.168.7.7]
rules:
  - { id: names, host: "*.example.test" }
`);
    expect(policy.allowPrivateDestinations?.map((entry) => entry.range)).toEqual(['127.0.0.0/8', 'fe80::/10', '192.168.7.7/32']);
    const facts = { policy, ownAddresses: [ip('127.0.0.1')] };
    expect(checkDestinationAddress('127.0.0.1', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('::ffff:127.0.0.1', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('fe80::1', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('192.168.7.7', facts)).toEqual({ allowed: true });
    expect(checkDestinationAddress('192.168.7.8', facts)).toMatchObject({ allowed: false });
    // The range opens the address itself, not IPv6 forms that merely carry it.
    expect(checkDestinationAddress('2002:7f00:1::', facts)).toMatchObject({ allowed: false });
    expect(checkDestinationAddress('169.254.169.254', facts)).toMatchObject({ allowed: false });
  });

  it('allowPrivateDestinations must hold CIDR blocks or addresses, never names', () => {
    expect(() => parsePolicy('version: 1\nallowPrivateDestinations: ["*.example.test"]\nrules: []\n')).toThrow(
      /<inline>:2:28: allowPrivateDestinations\[0\] must be a CIDR block such as "127.0.0.0\/8" or one IP address, not a host name/,
    );
    expect(() => parsePolicy('version: 1\nallowPrivateDestinations: [10.0.0.1/8]\nrules: []\n')).toThrow(/has bits set after the \/8 prefix; write "10.0.0.0\/8"/);
    expect(() => parsePolicy('version: 1\nallowPrivateDestinations: 127.0.0.0/8\nrules: []\n')).toThrow(/allowPrivateDestinations must be a list of CIDR blocks/);
  });

  it('extends: lists are appended and deduplicated', () => {
    // The preset carries none; the root's own entries are kept once.
    const policy = parsePolicy('version: 1\nextends: ["preset:npm-read"]\nallowPrivateDestinations: [127.0.0.0/8, 127.0.0.0/8]\nrules: []\n');
    expect(policy.allowPrivateDestinations?.map((entry) => entry.range)).toEqual(['127.0.0.0/8']);
  });

  it('policy show lists the entries with where they were written, and its output loads again', () => {
    const policy = parsePolicy('version: 1\nallowPrivateDestinations: [127.0.0.1]\nrules: []\n', 'p.yaml');
    expect(showPolicy(policy, 'p.yaml').allowPrivateDestinations).toEqual([{ range: '127.0.0.1/32', source: 'p.yaml:2:28', extendedAt: [] }]);
    const rendered = renderShownPolicy(policy, 'p.yaml');
    expect(rendered).toContain('allowPrivateDestinations:\n  - 127.0.0.1/32 # p.yaml:2:28\n');
    expect(parsePolicy(rendered).allowPrivateDestinations?.map((entry) => entry.range)).toEqual(['127.0.0.1/32']);
  });
});
