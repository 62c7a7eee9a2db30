// `srt-gw serve` as a process: it announces where it listens, creates its CA on first use, refuses a
// bad configuration with exit code 2 before listening (fail closed), and exits 0 on SIGTERM.
import { existsSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { runGatewayToExit, startGatewayProcess } from '../support/gateway-process.js';

const GOOD_POLICY = `
version: 1
rules:
  - id: api-all
    host: api.example.test
`;

describe('srt-gw serve as a process', () => {
  it('prints the listening line, creates the CA in --ca-dir, and exits 0 on SIGTERM', async () => {
    const gateway = await startGatewayProcess({ policyYaml: GOOD_POLICY });
    try {
      expect(gateway.proxyPort).toBeGreaterThan(0);
      expect(gateway.metricsUrl).toBeNull();
      expect(existsSync(gateway.caPath)).toBe(true);
      const ca = new X509Certificate(readFileSync(gateway.caPath));
      expect(ca.ca).toBe(true);
    } finally {
      const exit = await gateway.stop();
      expect(exit).toEqual({ code: 0, signal: null, killed: false });
    }
  });

  it('SIGTERM sent the moment the listening line appears still exits 0 (handlers are in place before "ready")', async () => {
    const exits = [];
    for (let i = 0; i < 5; i++) {
      const gateway = await startGatewayProcess({ policyYaml: GOOD_POLICY });
      exits.push(await gateway.stop());
    }
    expect(exits).toEqual(Array.from({ length: 5 }, () => ({ code: 0, signal: null, killed: false })));
  });

  it('announces the metrics address when --metrics is given', async () => {
    const gateway = await startGatewayProcess({ policyYaml: GOOD_POLICY, args: ['--metrics', '127.0.0.1:0'] });
    try {
      expect(gateway.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    } finally {
      await gateway.stop();
    }
  });

  it.each([
    ['a policy that is not YAML', 'version: 1\nrules: [\n'],
    ['a policy without a version', 'rules:\n  - id: a\n    host: api.example.test\n'],
    ['a rule without an id', 'version: 1\nrules:\n  - host: api.example.test\n'],
    ['an unknown action', 'version: 1\nrules:\n  - id: a\n    host: api.example.test\n    action: maybe\n'],
  ])('%s → exit code 2 and a message on stderr, never listening', async (_label, policyYaml) => {
    const result = await runGatewayToExit({ policyYaml });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().length).toBeGreaterThan(0);
    expect(result.stdout).not.toContain('"listening"');
  });

  it('a missing policy file → exit code 2', async () => {
    const result = await runGatewayToExit({ policyYaml: GOOD_POLICY, args: ['--policy', '/nonexistent/srt-gw/policy.yaml'] });
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain('"listening"');
  });

  it('an audit log that cannot be opened → exit code 2 naming it, never listening (no gateway without its log)', async () => {
    const result = await runGatewayToExit({ policyYaml: GOOD_POLICY, args: ['--log', '/dev/null/audit.log'] });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('cannot open the audit log /dev/null/audit.log');
    expect(result.stdout).not.toContain('"listening"');
  });

  it('a malformed --resolve → exit code 2', async () => {
    const result = await runGatewayToExit({ policyYaml: GOOD_POLICY, args: ['--resolve', 'no-equals-sign'] });
    expect(result.code).toBe(2);
    expect(result.stdout).not.toContain('"listening"');
  });
});
