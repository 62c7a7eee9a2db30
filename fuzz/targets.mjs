// The fuzz targets: name → module, and how Jazzer.js runs it. fuzz/run-targets.mjs and the corpus replay
// test (fuzz/corpus-replay.test.ts) both read this list, so a target added here runs in both.
export const FUZZ_TARGETS = [
  { name: 'http1-request', sync: false },
  { name: 'path-normalization', sync: true },
  { name: 'host-normalization', sync: true },
  { name: 'tls-client-hello', sync: false },
  { name: 'dns-query', sync: true },
  // Its DNS server is on 127.0.0.1, which Jazzer.js's SSRF detector would report.
  { name: 'dns-upstream-answer', sync: false, disableBugDetectors: ['ssrf'] },
  { name: 'proxy-v2-header', sync: false },
  // `extends:` may name any file by design (docs/policy.md), which the path-traversal detector reports.
  { name: 'policy-loader', sync: true, disableBugDetectors: ['path-traversal'] },
  { name: 'srt-settings', sync: true },
];
