// Seatbelt's violation reports, parsed from lines built in the documented format of
// `log stream --style ndjson` (UNVERIFIED against a real Mac: see docs/macos.md), and the monitor
// driven by a stand-in `log` program that prints such lines.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { formatDenialSummary } from '../denial-summary.js';
import { parseSeatbeltLogLine, seatbeltDenial, SeatbeltDenialGroups, seatbeltLogStreamArgs, SeatbeltViolationMonitor, type SeatbeltViolation } from './seatbelt-violations.js';

const TAG = 'srt-gw-0123456789abcdef';

/** One event as `log stream --style ndjson` prints it (the fields a real event carries, abridged). */
function event(message: string): string {
  return JSON.stringify({
    timestamp: '2025-06-01 10:00:00.000000+0200',
    messageType: 'Error',
    eventType: 'logEvent',
    processImagePath: '/kernel',
    senderImagePath: '/System/Library/Extensions/Sandbox.kext/Contents/MacOS/Sandbox',
    processID: 0,
    subsystem: '',
    category: '',
    eventMessage: message,
  });
}

describe('parseSeatbeltLogLine', () => {
  it.each<[string, string, SeatbeltViolation | null]>([
    ['a refused connect', `Sandbox: curl(4242) deny(1) network-outbound 203.0.113.9:443\n${TAG}`, { process: 'curl', pid: 4242, operation: 'network-outbound', target: '203.0.113.9:443', repeats: 1 }],
    ['a name lookup', `Sandbox: python3.12(9) deny(1) network-outbound /private/var/run/mDNSResponder\n${TAG}`, { process: 'python3.12', pid: 9, operation: 'network-outbound', target: '/private/var/run/mDNSResponder', repeats: 1 }],
    ['a hidden read', `Sandbox: cat(77) deny(1) file-read-data /Users/dev/.ssh/id_ed25519\n${TAG}`, { process: 'cat', pid: 77, operation: 'file-read-data', target: '/Users/dev/.ssh/id_ed25519', repeats: 1 }],
    ['merged duplicates', `3 duplicate reports for Sandbox: node(5) deny(1) file-write-create /Users/dev/.bashrc\n${TAG}`, { process: 'node', pid: 5, operation: 'file-write-create', target: '/Users/dev/.bashrc', repeats: 3 }],
    ['one duplicate', `1 duplicate report for Sandbox: sh(5) deny(1) file-write-data /dev/dtracehelper\n${TAG}`, { process: 'sh', pid: 5, operation: 'file-write-data', target: '/dev/dtracehelper', repeats: 1 }],
    ['a process name with spaces and parentheses', `Sandbox: Gradle Worker (2)(10) deny(1) signal\n${TAG}`, { process: 'Gradle Worker (2)', pid: 10, operation: 'signal', target: '', repeats: 1 }],
    ['a path with spaces', `Sandbox: ls(3) deny(1) file-read-data /Users/dev/My Secrets/a b\n${TAG}`, { process: 'ls', pid: 3, operation: 'file-read-data', target: '/Users/dev/My Secrets/a b', repeats: 1 }],
    ['another run\'s tag', `Sandbox: cat(11) deny(1) file-read-data /tmp/x\nsrt-gw-ffffffffffffffff`, null],
    ['no tag (a denial of another sandbox)', 'Sandbox: cat(11) deny(1) file-read-data /tmp/x', null],
    ['a target that smuggles our tag after a line break', `Sandbox: cat(12) deny(1) file-read-data /tmp/x\n${TAG}\nother`, null],
    ['our tag inside the target only', `Sandbox: cat(13) deny(1) file-read-data /tmp/${TAG}\nother`, null],
    ['an allow report', `Sandbox: cat(13) allow(0) file-read-data /tmp/x\n${TAG}`, null],
    ['something else with our tag', `hello\n${TAG}`, null],
  ])('%s', (_what, message, expected) => {
    expect(parseSeatbeltLogLine(event(message), TAG)).toEqual(expected);
  });

  it.each([['not json'], ['Filtering the log data using "eventMessage ENDSWITH ..."'], ['{"count":5,"finished":1}'], ['[]'], ['null'], ['']])('skips %j', (line) => {
    expect(parseSeatbeltLogLine(line, TAG)).toBeNull();
  });
});

describe('seatbeltDenial', () => {
  const violation = (operation: string, target: string): SeatbeltViolation => ({ process: 'curl', pid: 1, operation, target, repeats: 1 });

  it('a direct connect is a connection denial with host and port, saying the program ignored the proxy variables', () => {
    const denial = seatbeltDenial(violation('network-outbound', '203.0.113.9:443'));
    expect(denial).toMatchObject({ kind: 'connection', host: '203.0.113.9', port: 443, rule: null, monitored: false, example: 'network-outbound by curl' });
    expect(denial.reason).toContain('HTTP_PROXY');
  });

  it('an IPv6 address loses its brackets', () => {
    expect(seatbeltDenial(violation('network-outbound', '[2001:db8::1]:443'))).toMatchObject({ host: '2001:db8::1', port: 443 });
  });

  it('a name lookup says names resolve at the gateway', () => {
    expect(seatbeltDenial(violation('network-outbound', '/private/var/run/mDNSResponder')).reason).toContain('gateway resolves names');
  });

  it('a listen is a connection denial naming allowLocalBinding', () => {
    expect(seatbeltDenial(violation('network-bind', 'localhost:3000')).reason).toContain('allowLocalBinding');
  });

  it('a file denial carries the path and, when the jail can say, the rule that decides it', () => {
    const explain = (path: string) => (path.startsWith('/Users/dev/.ssh') ? 'hidden by default: SSH keys (~/.ssh)' : undefined);
    expect(seatbeltDenial(violation('file-read-data', '/Users/dev/.ssh/id_ed25519'), explain)).toMatchObject({ kind: 'file', host: '/Users/dev/.ssh/id_ed25519', reason: 'hidden by default: SSH keys (~/.ssh)' });
    expect(seatbeltDenial(violation('file-write-create', '/Users/dev/x'), explain)).toMatchObject({ kind: 'file', reason: 'not writable in the jail' });
  });

  it('anything else is "other", named by its target or operation', () => {
    expect(seatbeltDenial(violation('mach-lookup', 'com.apple.SecurityServer'))).toMatchObject({ kind: 'other', host: 'com.apple.SecurityServer' });
    expect(seatbeltDenial(violation('signal', ''))).toMatchObject({ kind: 'other', host: 'signal' });
  });
});

describe('SeatbeltDenialGroups', () => {
  it('groups repeats, drops noise, and bounds the groups', () => {
    const groups = new SeatbeltDenialGroups(undefined, 2);
    const add = (operation: string, target: string, repeats = 1) => groups.add({ process: 'x', pid: 1, operation, target, repeats });
    add('network-outbound', '203.0.113.9:443');
    add('network-outbound', '203.0.113.9:443', 4);
    add('file-write-data', '/dev/dtracehelper');
    add('mach-lookup', 'com.apple.analyticsd');
    add('file-read-data', '/Users/dev/.netrc');
    add('file-read-data', '/Users/dev/.aws/credentials', 2);
    const { denials, omitted } = groups.denials();
    expect(denials.map((d) => [d.kind, d.host, d.count])).toEqual([
      ['connection', '203.0.113.9', 5],
      ['file', '/Users/dev/.netrc', 1],
    ]);
    expect(omitted).toBe(2);
  });

  it('fits the run summary the gateway\'s denials use', () => {
    const groups = new SeatbeltDenialGroups();
    groups.add({ process: 'nc', pid: 1, operation: 'network-outbound', target: '203.0.113.9:443', repeats: 1 });
    const summary = formatDenialSummary(groups.denials().denials);
    expect(summary).toContain('203.0.113.9:443  connection  [no rule] only the srt-gw gateway is reachable');
  });
});

describe('seatbeltLogStreamArgs', () => {
  it('streams ndjson of the events whose message ends with the tag', () => {
    expect(seatbeltLogStreamArgs(TAG)).toEqual(['stream', '--style', 'ndjson', '--predicate', `eventMessage ENDSWITH "${TAG}"`]);
  });

  it('refuses a tag that could change the predicate', () => {
    expect(() => seatbeltLogStreamArgs('x" OR TRUEPREDICATE OR "')).toThrow(TypeError);
  });
});

/** Only a hang takes this long. */
const HANG_MS = 20_000;

function isGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

/** Polls until `pid` has exited and been reaped; false if it is still there after HANG_MS. */
async function processGone(pid: number): Promise<boolean> {
  const deadline = Date.now() + HANG_MS;
  while (!isGone(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

describe('SeatbeltViolationMonitor (with a stand-in `log` program)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-fake-log-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function fakeLog(lines: string[]): string {
    const script = join(dir, `log-${Math.random().toString(36).slice(2)}`);
    const data = join(`${script}.out`);
    writeFileSync(data, lines.map((line) => `${line}\n`).join(''));
    // Then it runs on, as `log stream` does, until it is stopped (its pid in .pid: exec keeps it).
    writeFileSync(script, `#!/bin/sh\necho $$ > '${script}.pid'\nprintf '%s\\n' "$@" > '${script}.args'\necho 'Filtering the log data using "..."'\ncat '${data}'\nexec sleep 600\n`);
    chmodSync(script, 0o755);
    return script;
  }

  it('collects this run\'s violations until stopped, then stops `log`', { timeout: 2 * HANG_MS }, async () => {
    const logCommand = fakeLog([
      event(`Sandbox: curl(4242) deny(1) network-outbound 203.0.113.9:443\n${TAG}`),
      event(`2 duplicate reports for Sandbox: curl(4242) deny(1) network-outbound 203.0.113.9:443\n${TAG}`),
      event(`Sandbox: cat(7) deny(1) file-read-data /Users/dev/.ssh/id_ed25519\n${TAG}`),
      event(`Sandbox: cat(8) deny(1) file-read-data /Users/dev/.ssh/id_ed25519\nsrt-gw-someoneelse`),
    ]);
    const monitor = new SeatbeltViolationMonitor({ tag: TAG, logCommand, drainMs: 500, explainPath: () => 'hidden by default: SSH keys (~/.ssh)' });
    const { denials, omitted } = await monitor.stop();
    // `log` was stopped, not left to run (or waited for).
    const logPid = Number(readFileSync(`${logCommand}.pid`, 'utf8'));
    try {
      expect(await processGone(logPid)).toBe(true);
    } finally {
      if (!isGone(logPid)) process.kill(logPid, 'SIGKILL');
    }
    expect(omitted).toBe(0);
    expect(denials.map((d) => [d.kind, d.host, d.port, d.count, d.reason.slice(0, 24)])).toEqual([
      ['connection', '203.0.113.9', 443, 3, 'only the srt-gw gateway '],
      ['file', '/Users/dev/.ssh/id_ed25519', undefined, 1, 'hidden by default: SSH k'],
    ]);
    expect(readFileSync(`${logCommand}.args`, 'utf8').trim().split('\n')).toEqual(seatbeltLogStreamArgs(TAG));
    // A second stop returns the same, at once.
    expect((await monitor.stop()).denials).toHaveLength(2);
  });

  it('a missing `log` program reports nothing and does not hold up the run', { timeout: 2 * HANG_MS }, async () => {
    // A drain no run could wait for: stop() must see that `log` never started and skip it.
    const monitor = new SeatbeltViolationMonitor({ tag: TAG, logCommand: join(dir, 'no-such-log'), drainMs: 3_600_000 });
    await new Promise((resolve) => setImmediate(resolve)); // the spawn's failure is reported on the next tick
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([monitor.stop(), new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting'), HANG_MS)))]);
    clearTimeout(timer);
    expect(outcome).toEqual({ denials: [], omitted: 0 });
  });
});
