import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { JAIL_PORTS, jailNftRuleset } from './nft-rules.js';

describe('jailNftRuleset', () => {
  const ruleset = jailNftRuleset();

  it('sends DNS to any server, over UDP and TCP, to the forwarder before anything else', () => {
    const lines = ruleset.split('\n').map((line) => line.trim());
    const dns = lines.indexOf(`meta l4proto { tcp, udp } th dport 53 redirect to :${JAIL_PORTS.dnsPort}`);
    const loopback = lines.indexOf('ip daddr 127.0.0.0/8 return');
    expect(dns).toBeGreaterThan(0);
    // DNS to 127.0.0.53 (systemd-resolved's stub) must reach the forwarder too.
    expect(dns).toBeLessThan(loopback);
  });

  it('redirects every other TCP connection that leaves loopback to the redirector', () => {
    expect(ruleset).toContain(`meta l4proto tcp redirect to :${JAIL_PORTS.redirectPort}`);
    expect(ruleset).toMatch(/ip6 daddr ::1 return\n\s+meta l4proto tcp redirect/);
  });

  it('drops whatever is not loopback at output, for IPv4 and IPv6 alike (one inet table)', () => {
    expect(ruleset).toContain('table inet srtgw');
    expect(ruleset).toMatch(/type filter hook output priority 0; policy drop;\n\s+ip daddr 127\.0\.0\.0\/8 accept\n\s+ip6 daddr ::1 accept\n\s+\}/);
  });

  it('refuses helper ports the unprivileged command could bind', () => {
    expect(() => jailNftRuleset({ redirectPort: 15001, dnsPort: 53 })).toThrow(/privileged port/);
    expect(() => jailNftRuleset({ redirectPort: 901, dnsPort: 0 })).toThrow(/privileged port/);
  });

  it('is accepted by nft itself (nft --check)', () => {
    let nft = '';
    try {
      nft = execFileSync('sh', ['-c', 'command -v nft || ls /usr/sbin/nft'], { encoding: 'utf8' }).trim();
    } catch {
      // checked in CI, where nftables is installed
    }
    if (!nft || process.getuid?.() !== 0) {
      if (process.env.CI === 'true') throw new Error('nft (root) is needed to check the ruleset; .ci/run installs nftables');
      return;
    }
    // --check parses and validates without touching any ruleset; a user namespace keeps it private.
    execFileSync('unshare', ['-rn', nft, '--check', '-f', '-'], { input: ruleset });
  });
});
