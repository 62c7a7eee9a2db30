// The audit log of `srt-gw serve` works with log rotation and log shippers: SIGUSR1 opens the file
// again by name (logrotate's postrotate), and `--log -` writes the JSON lines to stdout.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_PATH, cleanEnv, startGatewayProcess } from '../support/gateway-process.js';
import { capabilityGate, missingCommand } from '../support/capabilities.js';

const skip = capabilityGate(missingCommand('curl'));
const POLICY = 'version: 1\nrules:\n  - id: api\n    host: api.example.test\n';

/** A request the gateway denies without any upstream: one audit line naming the host. */
function deniedRequest(proxyUrl: string, host: string): void {
  execFileSync('curl', ['-s', '-o', '/dev/null', '-x', proxyUrl, `http://${host}/`]);
}

describe.skipIf(skip !== null)('audit log rotation and stdout', () => {
  it('SIGUSR1 after a rename: earlier lines stay in the renamed file, later ones go to a new file; the gateway keeps serving', async () => {
    const gateway = await startGatewayProcess({ policyYaml: POLICY });
    try {
      deniedRequest(gateway.proxyUrl, 'before.example.test');
      await gateway.waitForAudit((line) => line.host === 'before.example.test');
      renameSync(gateway.logPath, `${gateway.logPath}.1`);
      process.kill(gateway.pid, 'SIGUSR1');
      // The reopen happens on the gateway's loop; a request after it is in the new file.
      let found = false;
      for (let attempt = 0; attempt < 100 && !found; attempt++) {
        deniedRequest(gateway.proxyUrl, `after${attempt}.example.test`);
        found = await gateway
          .waitForAudit((line) => typeof line.host === 'string' && line.host.startsWith('after'), 200)
          .then(() => true)
          .catch(() => false);
      }
      expect(found).toBe(true);
      expect(readFileSync(`${gateway.logPath}.1`, 'utf8')).toContain('before.example.test');
      expect(readFileSync(gateway.logPath, 'utf8')).not.toContain('before.example.test');
    } finally {
      expect((await gateway.stop()).code).toBe(0);
    }
  });

  it('--log - writes one JSON line per decision to stdout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srt-gw-log-stdout-'));
    const child = spawn(process.execPath, [CLI_PATH, 'serve', '--allow', 'api.example.test', '--listen', '127.0.0.1:0', '--ca-dir', join(dir, 'ca'), '--log', '-'], {
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stdout = '';
      child.stdout.setEncoding('utf8');
      const lineMatching = (test: (record: Record<string, unknown>) => boolean) =>
        new Promise<Record<string, unknown>>((resolve, reject) => {
          const look = () => {
            for (const line of stdout.split('\n')) {
              try {
                const record = JSON.parse(line) as Record<string, unknown>;
                if (test(record)) return resolve(record);
              } catch {
                // a partial line: wait for the rest
              }
            }
          };
          child.stdout.on('data', (chunk: string) => {
            stdout += chunk;
            look();
          });
          child.once('exit', () => reject(new Error(`serve exited; stdout: ${stdout}`)));
          look();
        });
      const listening = await lineMatching((record) => record.event === 'listening');
      deniedRequest(`http://${String(listening.proxy)}`, 'stdout.example.test');
      const line = await lineMatching((record) => record.host === 'stdout.example.test');
      expect(line.decision).toBe('deny');
    } finally {
      child.kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
