// srt-gw serve reloads its policy on SIGHUP and on file change, atomically: while requests flow,
// each one is decided by the old policy or the new one, never by a mix and never with an error;
// a file that does not validate is reported and the old policy stays in force.
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capabilityGate, missingCommand } from '../support/capabilities.js';
import { startGatewayFixture, type GatewayFixture } from '../support/gateway-fixture.js';
import { curlThroughProxy, type GatewayProcess } from '../support/gateway-process.js';
import type { Upstream } from '../support/upstream.js';

const skip = capabilityGate(missingCommand('curl'), missingCommand('openssl'));
/** How long an empty policy file gets before `serve` reloads it (and reports it broken). */
const EMPTY_FILE_SECOND_LOOK_MS = 500;
/** Only a hang takes this long. */
const RELOAD_DEADLINE_MS = 20_000;
const API = 'api.example.test';

const policyAllowing = (path: string) => `
version: 1
rules:
  - id: api-${path.replace(/\W/g, '')}
    host: ${API}
    paths: ["/${path}/**"]
`;

describe.skipIf(skip !== null)('policy reload while traffic flows', () => {
  let fixture: GatewayFixture | undefined;
  let upstream: Upstream;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    fixture = await startGatewayFixture({ policyYaml: policyAllowing('old'), names: [API] });
    ({ upstream, gateway } = fixture);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  /** Status codes for /old/x and /new/x. */
  async function probe(): Promise<[number, number]> {
    const [old, fresh] = await Promise.all([curlThroughProxy(gateway, [upstream.url('/old/x')]), curlThroughProxy(gateway, [upstream.url('/new/x')])]);
    return [old.status, fresh.status];
  }

  async function until(predicate: () => Promise<boolean>, ms = RELOAD_DEADLINE_MS): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await predicate())) {
      if (Date.now() > deadline) throw new Error('condition not reached in time');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('SIGHUP swaps the policy; requests in between see the old one or the new one, nothing else', async () => {
    expect(await probe()).toEqual([200, 403]);
    writeFileSync(gateway.policyPath + '.next', policyAllowing('new'));
    renameSync(gateway.policyPath + '.next', gateway.policyPath); // how config tools replace files
    process.kill(gateway.pid, 'SIGHUP');
    const seen: [number, number][] = [];
    await until(async () => {
      const codes = await probe();
      seen.push(codes);
      return codes[0] === 403 && codes[1] === 200;
    });
    // Every answer is the old policy's or the new one's (no error, no gap), and each path
    // switches exactly once: /old from 200 to 403, /new from 403 to 200.
    const olds = seen.map(([old]) => old).join(',');
    const fresh = seen.map(([, next]) => next).join(',');
    expect(olds).toMatch(/^(200,)*403(,403)*$/);
    expect(fresh).toMatch(/^(403,)*200(,200)*$/);
    await gateway.waitForAudit((l) => l.kind === 'policy-reload' && l.outcome === 'ok', RELOAD_DEADLINE_MS);
  });

  it('a broken file is reported, counted in the audit log, and the policy in force stays', async () => {
    writeFileSync(gateway.policyPath, 'version: 1\nrules:\n  - id: broken\n    host: api.example.test\n    paths: ["no-leading-slash"]\n');
    process.kill(gateway.pid, 'SIGHUP');
    // The line for this file: an earlier write seen half-done by the file watcher (truncated, not
    // yet written) may have failed too, as "the file is empty".
    const line = await gateway.waitForAudit((l) => l.kind === 'policy-reload' && l.outcome === 'failed' && /policy\.yaml:5:/.test(String(l.reason)), RELOAD_DEADLINE_MS);
    expect(String(line.reason)).toMatch(/policy\.yaml:5:\d+: .*must start with "\/"/);
    expect(await probe()).toEqual([403, 200]);
  });

  it('editing the file is enough: the change is picked up without a signal', async () => {
    writeFileSync(gateway.policyPath, policyAllowing('old'));
    await until(async () => (await probe())[0] === 200);
    expect(await probe()).toEqual([200, 403]);
  });

  it('an editor that truncates, then writes a moment later, causes no failed reload', async () => {
    const reloadFailures = async () => (await gateway.auditLines()).filter((l) => l.kind === 'policy-reload' && l.outcome === 'failed').length;
    // The watcher gives an empty file a second look 500 ms after its change settles: a write
    // within that time is "a moment later". How long this process took to write is measured, not
    // assumed: a round in which it was too slow proves nothing (a failure is then the right
    // answer) and is played again.
    for (let round = 1; ; round++) {
      const failuresBefore = await reloadFailures();
      // One more rule each round: the reload line of this round's file is told by its rule count.
      const rules = 10 + round;
      const policy = policyAllowing('new') + Array.from({ length: rules - 1 }, (_, i) => `  - { id: filler-${i}, host: filler-${i}.example.test }\n`).join('');
      const truncatedAt = performance.now();
      writeFileSync(gateway.policyPath, '');
      // Longer than the watcher's 100 ms debounce: the empty file is seen, and given a second look.
      await new Promise((resolve) => setTimeout(resolve, 200));
      writeFileSync(gateway.policyPath, policy);
      const writtenWithinMs = performance.now() - truncatedAt;
      // The audit log is written in order: a failure from the empty moment comes before this line.
      await gateway.waitForAudit((l) => l.kind === 'policy-reload' && l.outcome === 'ok' && l.rules === rules, RELOAD_DEADLINE_MS);
      if (writtenWithinMs < EMPTY_FILE_SECOND_LOOK_MS) {
        expect(await reloadFailures()).toBe(failuresBefore);
        break;
      }
      if (round === 5) throw new Error(`in 5 rounds this process never wrote the file within ${EMPTY_FILE_SECOND_LOOK_MS} ms of truncating it`);
    }
    expect(await probe()).toEqual([403, 200]);
  });

  it('a file left empty is still reported as broken, and the policy in force stays', async () => {
    writeFileSync(gateway.policyPath, '');
    const line = await gateway.waitForAudit((l) => l.kind === 'policy-reload' && l.outcome === 'failed' && /empty/.test(String(l.reason)), RELOAD_DEADLINE_MS);
    expect(String(line.reason)).toContain('the file is empty');
    expect(await probe()).toEqual([403, 200]);
  });

  it('a deleted file is reported, the policy in force stays, and a file put back is loaded again', async () => {
    const failuresBefore = (await gateway.auditLines()).filter((l) => l.kind === 'policy-reload' && l.outcome === 'failed').length;
    unlinkSync(gateway.policyPath);
    // Seen by the directory watcher without a signal; SIGHUP as well, which must not stop the gateway.
    process.kill(gateway.pid, 'SIGHUP');
    await until(async () => (await gateway.auditLines()).filter((l) => l.kind === 'policy-reload' && l.outcome === 'failed').length > failuresBefore);
    const failed = (await gateway.auditLines()).filter((l) => l.kind === 'policy-reload' && l.outcome === 'failed').at(-1);
    expect(String(failed?.reason)).toMatch(/policy\.yaml/);
    expect(await probe()).toEqual([403, 200]);

    writeFileSync(gateway.policyPath, policyAllowing('old'));
    await until(async () => (await probe())[0] === 200);
    expect(await probe()).toEqual([200, 403]);
  });
});

describe.skipIf(skip !== null)('reload when a file the policy extends changes', () => {
  let fixture: GatewayFixture | undefined;
  const baseDir = mkdtempSync(join(tmpdir(), 'srt-gw-reload-base-'));
  const base = join(baseDir, 'base.yaml');

  beforeAll(async () => {
    writeFileSync(base, policyAllowing('old'));
    // In another directory than the policy file: both are watched.
    fixture = await startGatewayFixture({ policyYaml: `version: 1\nextends: [${JSON.stringify(base)}]\n`, names: [API] });
  });

  afterAll(async () => {
    await fixture?.close();
    rmSync(baseDir, { recursive: true, force: true });
  });

  it('editing the extended file is enough: no signal, and the policy file itself is untouched', async () => {
    const { upstream, gateway } = fixture!;
    const status = async (path: string) => (await curlThroughProxy(gateway, [upstream.url(path)])).status;
    expect([await status('/old/x'), await status('/new/x')]).toEqual([200, 403]);
    writeFileSync(`${base}.next`, policyAllowing('new'));
    renameSync(`${base}.next`, base);
    const deadline = Date.now() + RELOAD_DEADLINE_MS;
    while ((await status('/new/x')) !== 200) {
      if (Date.now() > deadline) throw new Error('the change to the extended file was not picked up');
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await status('/old/x')).toBe(403);
    await gateway.waitForAudit((l) => l.kind === 'policy-reload' && l.outcome === 'ok', RELOAD_DEADLINE_MS);
  });
});
