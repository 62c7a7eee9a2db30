// Cost of a never-seen host (leaf build + ECDSA sign + createSecureContext) and of a cache hit.
// Run: npx vitest bench --run --project unit ca/leaf-issuance.bench.ts (a measurement, not a test).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { bench, describe } from 'vitest';
import { loadOrCreateCertificateAuthority } from './authority.js';
import { LeafContextCache } from './leaf-cache.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'srt-gw-leaf-bench-'));
const ca = await loadOrCreateCertificateAuthority(path.join(dir, 'ca'));
fs.rmSync(dir, { recursive: true, force: true }); // the loaded CA needs nothing more from disk
const cache = new LeafContextCache(ca, { maxEntries: 1_000_000 });
let counter = 0;
cache.secureContextFor('hot.example.test');
const sampleLeaf = ca.issueLeafCertificate('ctx.example.test');

describe('leaf issuance', () => {
  bench('issueLeafCertificate (build + sign + PEM)', () => {
    ca.issueLeafCertificate(`leaf-${counter++}.example.test`);
  });
  bench('tls.createSecureContext alone (P-256 leaf)', () => {
    tls.createSecureContext({ cert: sampleLeaf.certPem, key: sampleLeaf.keyPem, minVersion: 'TLSv1.2' });
  });
  bench('secureContextFor, never-seen host (miss)', () => {
    cache.secureContextFor(`miss-${counter++}.example.test`);
  });
  bench('secureContextFor, cached host (hit)', () => {
    cache.secureContextFor('hot.example.test');
  });
});
