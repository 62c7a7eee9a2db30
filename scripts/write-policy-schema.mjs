#!/usr/bin/env node
// Regenerates policies/policy.schema.json (the published JSON Schema of policy files) from the zod
// schema. Run after `npm run build`: node scripts/write-policy-schema.mjs
// policies/schema-file.test.ts fails when the committed file and the zod schema drift apart.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const { policyJsonSchema } = await import('../dist/policies/schema.js');
const target = fileURLToPath(new URL('../policies/policy.schema.json', import.meta.url));
writeFileSync(target, `${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
process.stdout.write(`wrote ${target}\n`);
