// The Grafana dashboard checked against Grafana's own dashboard model: @grafana/schema's
// `Dashboard` type, generated from Grafana's CUE schema. The dashboard JSON is compiled as a fresh
// object literal assigned to that type, so literal unions are checked and unknown keys are
// errors (a JSON import would widen every string and hide both).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/gateway-process.js';

const DASHBOARD = join(REPO_ROOT, 'dashboards', 'grafana', 'srt-gw.json');
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
// Inside the repository, so that '@grafana/schema' resolves from its node_modules.
const work = mkdtempSync(join(REPO_ROOT, '.tmp-dashboard-check-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** tsc's diagnostics for `dashboard` assigned to Grafana's Dashboard type ('' when it conforms). */
function grafanaTypeErrors(dashboard: unknown, name: string): string {
  const file = join(work, `${name}.ts`);
  writeFileSync(file, `import type { Dashboard } from '@grafana/schema';\nexport const checked: Dashboard = ${JSON.stringify(dashboard, null, 2)};\n`);
  const tsconfig = join(work, `${name}.tsconfig.json`);
  writeFileSync(
    tsconfig,
    JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', noEmit: true, skipLibCheck: true, target: 'es2022' }, files: [file] }),
  );
  try {
    execFileSync(process.execPath, [TSC, '-p', tsconfig], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return '';
  } catch (error) {
    return String((error as { stdout?: string }).stdout ?? error);
  }
}

describe("the Grafana dashboard against Grafana's own dashboard model (@grafana/schema)", () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Record<string, unknown>[]; templating: { list: Record<string, unknown>[] } };

  it('dashboards/grafana/srt-gw.json conforms', () => {
    expect(grafanaTypeErrors(dashboard, 'conforms')).toBe('');
  });

  it('a misspelt panel key and a variable option without its value do not (the check is not vacuous)', () => {
    const broken = structuredClone(dashboard);
    broken.panels[0]!.gridPoss = broken.panels[0]!.gridPos;
    broken.templating.list[0]!.current = {};
    const errors = grafanaTypeErrors(broken, 'broken');
    expect(errors).toMatch(/'"?gridPoss"?' does not exist in type 'Panel/);
    expect(errors).toMatch(/missing the following properties from type 'VariableOption': text, value/);
  }, 60_000);
}, 60_000);
