// The chart renderer's template subset, case by case against what helm renders for the same
// template, and its refusals: anything outside the subset fails with file:line.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ChartRenderError, mergeValues, renderChart } from './render-chart.mjs';

const charts = [];
afterAll(() => {
  for (const dir of charts) rmSync(dir, { recursive: true, force: true });
});

/** A chart in a temp dir: templates by name, values, extra files. */
function chart({ templates, values = {}, files = {}, appVersion = '1.2.3' }) {
  const dir = mkdtempSync(join(tmpdir(), 'render-chart-test-'));
  charts.push(dir);
  writeFileSync(join(dir, 'Chart.yaml'), `apiVersion: v2\nname: demo\nversion: 0.4.0\nappVersion: "${appVersion}"\n`);
  writeFileSync(join(dir, 'values.yaml'), YAML.stringify(values, { version: '1.1' }));
  mkdirSync(join(dir, 'templates'));
  for (const [name, text] of Object.entries(templates)) writeFileSync(join(dir, 'templates', name), text);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Renders one template (plus optional helpers) and returns its text. */
function render(template, values = {}, { helpers, files, valuesFiles = [], releaseName = 'rel', namespace = 'ns' } = {}) {
  const dir = chart({ templates: { 'x.yaml': template, ...(helpers ? { '_helpers.tpl': helpers } : {}) }, values, files });
  const { manifests } = renderChart({ chartDir: dir, valuesFiles: valuesFiles.map((text, index) => {
    const file = join(dir, `override-${index}.yaml`);
    writeFileSync(file, text);
    return file;
  }), releaseName, namespace });
  return manifests.map((manifest) => manifest.content).join('---\n');
}

function renderError(template, values = {}, options = {}) {
  try {
    render(template, values, options);
  } catch (error) {
    if (error instanceof ChartRenderError) return error.message;
    throw error;
  }
  throw new Error('rendered without an error');
}

describe('values and built-in objects', () => {
  it.each([
    ['a nested value', 'a: {{ .Values.x.y }}', { x: { y: 'deep' } }, 'a: deep\n'],
    ['a missing key of a map prints nothing', 'a: "{{ .Values.absent }}"', {}, 'a: ""\n'],
    ['release and chart fields', 'a: {{ .Release.Name }}/{{ .Release.Namespace }}/{{ .Release.Service }}/{{ .Chart.Name }}/{{ .Chart.Version }}/{{ .Chart.AppVersion }}', {}, 'a: rel/ns/Helm/demo/0.4.0/1.2.3\n'],
    ['numbers and booleans print as written', 'a: {{ .Values.n }} {{ .Values.b }}', { n: 3, b: false }, 'a: 3 false\n'],
    ['$ is the root inside with', '{{ with .Values.x }}a: {{ $.Release.Name }}-{{ .y }}{{ end }}', { x: { y: 1 } }, 'a: rel-1\n'],
    ['a declared variable', '{{ $name := .Values.n }}a: {{ $name }}', { n: 'v' }, 'a: v\n'],
  ])('%s', (_label, template, values, expected) => {
    expect(render(template, values)).toBe(expected);
  });

  it('values files merge over values.yaml: maps key by key, lists replaced, null removes', () => {
    const text = render('a: {{ .Values.m.keep }} {{ .Values.m.changed }} {{ .Values.l | toYaml | trimSuffix "\\n" }} {{ .Values.gone | default "none" }}', { m: { keep: 1, changed: 2 }, l: [1, 2], gone: 'x' }, {
      valuesFiles: ['m: {changed: 3}\nl: [9]\ngone: null\n'],
    });
    expect(text).toBe('a: 1 3 - 9 none\n');
    expect(mergeValues({ a: { b: 1, c: 2 } }, { a: { c: null, d: 4 } })).toEqual({ a: { b: 1, d: 4 } });
  });

  it('values files are read as YAML 1.1, as helm does: yes is true, 0644 is octal', () => {
    expect(render('a: {{ .Values.flag }} {{ .Values.mode }}', {}, { valuesFiles: ['flag: yes\nmode: 0644\n'] })).toBe('a: true 420\n');
  });
});

describe('whitespace trimming', () => {
  it.each([
    ['{{- trims before, across newlines', 'a:\n  {{- " b" }}', 'a: b\n'],
    ['-}} trims after', 'a: {{ "b" -}}\n\n  \nc: d', 'a: bc: d\n'],
    ['a comment renders nothing and can trim', 'a: 1\n{{- /* gone */}}\nb: 2', 'a: 1\nb: 2\n'],
    ['a dash inside a number is not a trim marker', 'a: {{-3}}', 'a: -3\n'],
  ])('%s', (_label, template, expected) => {
    expect(render(template)).toBe(expected);
  });
});

describe('control structures', () => {
  it.each([
    ['if / else if / else', '{{ if eq .Values.m "a" }}A{{ else if eq .Values.m "b" }}B{{ else }}C{{ end }}', { m: 'b' }, 'B'],
    ['empty values are false: "", 0, [], {}', '{{ if or .Values.s .Values.n .Values.l .Values.m }}T{{ else }}F{{ end }}', { s: '', n: 0, l: [], m: {} }, 'F'],
    ['not and and', '{{ if and .Values.a (not .Values.b) }}T{{ end }}', { a: 1, b: false }, 'T'],
    ['range over a list sets dot', '{{ range .Values.l }}[{{ . }}]{{ end }}', { l: ['x', 'y'] }, '[x][y]'],
    ['range with index and value', '{{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}', { l: ['x', 'y'] }, '0=x;1=y;'],
    ['range over a map goes in key order', '{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}', { m: { b: 2, a: 1 } }, 'a=1;b=2;'],
    ['range else on an empty list', '{{ range .Values.l }}x{{ else }}none{{ end }}', { l: [] }, 'none'],
    ['with skips an empty value and has an else', '{{ with .Values.m }}has{{ else }}empty{{ end }}', { m: {} }, 'empty'],
  ])('%s', (_label, template, values, expected) => {
    expect(render(`a: ${template}`, values)).toBe(`a: ${expected}\n`);
  });

  it('define and include, with the context passed', () => {
    const helpers = '{{- define "demo.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end -}}\n{{- define "demo.value" -}}v={{ .v }}{{- end -}}';
    expect(render('a: {{ include "demo.name" . }}\nb: {{ include "demo.value" .Values }}', { v: 7 }, { helpers })).toBe('a: demo-rel\nb: v=7\n');
  });
});

describe('functions', () => {
  it.each([
    ['toYaml sorts keys, nindent indents every line after a newline', 'm:{{ .Values.m | toYaml | nindent 2 }}', { m: { b: [1, 2], a: 'x' } }, 'm:\n  a: x\n  b:\n    - 1\n    - 2\n'],
    ['toYaml quotes strings YAML 1.1 would read as something else', 'm: {{ toYaml .Values.m }}', { m: 'yes' }, 'm: "yes"\n'],
    ['indent pads the first line too', 'x:\n{{ "a: 1\\nb: 2" | indent 2 }}', {}, 'x:\n  a: 1\n  b: 2\n'],
    ['quote', 'a: {{ .Values.s | quote }} {{ quote .Values.n }}', { s: 'he said "hi"', n: 5 }, 'a: "he said \\"hi\\"" "5"\n'],
    ['default takes over for an empty value only', 'a: {{ .Values.e | default "d" }} {{ .Values.f | default "d" }}', { e: '', f: 'set' }, 'a: d set\n'],
    ['sha256sum', 'a: {{ "abc" | sha256sum }}', {}, 'a: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n'],
    ['trunc and trimSuffix', 'a: {{ "abcdef-" | trimSuffix "-" | trunc 3 }}', {}, 'a: abc\n'],
    ['printf with %s and %d', 'a: {{ printf "%s-%d" .Release.Name 3 }}', {}, 'a: rel-3\n'],
    ['a parenthesised pipeline as an argument', 'a: {{ .Values.x | default (printf "%s-x" .Release.Name) }}', {}, 'a: rel-x\n'],
    ['required passes a value through', 'a: {{ required "need x" .Values.x }}', { x: 'ok' }, 'a: ok\n'],
  ])('%s', (_label, template, values, expected) => {
    expect(render(template, values)).toBe(expected);
  });

  it('.Files.Get reads a chart file without evaluating it', () => {
    expect(render('a: |-\n{{ .Files.Get "files/r.yml" | indent 2 }}', {}, { files: { 'files/r.yml': 'x: {{ $labels.y }}\n' } })).toBe('a: |-\n  x: {{ $labels.y }}\n');
  });
});

describe('documents', () => {
  it('splits a template into documents and drops empty and comment-only ones', () => {
    const dir = chart({
      templates: {
        'a.yaml': '# only a comment\n---\nkind: A\n---\n{{ if false }}kind: Gone{{ end }}\n---\nkind: B\n',
        '_helpers.tpl': '{{ define "x" }}kind: Helper{{ end }}',
        'NOTES.txt': 'Installed {{ .Release.Name }}',
        'README.md': 'kind: NotAManifest',
      },
    });
    const { manifests, notes } = renderChart({ chartDir: dir, releaseName: 'r' });
    expect(manifests.map((manifest) => [manifest.source, manifest.content])).toEqual([
      ['demo/templates/a.yaml', 'kind: A\n'],
      ['demo/templates/a.yaml', 'kind: B\n'],
    ]);
    expect(notes).toBe('Installed r');
  });
});

describe('anything outside the subset fails with file:line', () => {
  it.each([
    ['an unknown function', 'a: 1\nb: {{ .Values.x | upper }}', /demo\/templates\/x\.yaml:2: function "upper" is not in the subset/],
    ['the template action', 'a: 1\n\n{{ template "x" . }}', /x\.yaml:3: the template action is not in the subset; use include/],
    ['block', '{{ block "x" . }}{{ end }}', /x\.yaml:1: block is not in the subset/],
    ['.Capabilities', 'a: {{ .Capabilities.KubeVersion }}', /x\.yaml:1: \.Capabilities is not in the subset/],
    ['an unlisted field of .Chart', 'a: {{ .Chart.Description }}', /x\.yaml:1: \.Chart\.Description is not in the subset/],
    ['.Template', 'a: {{ .Template.BasePath }}', /x\.yaml:1: \.Template is not in the subset/],
    ['a field of a nil value', 'a: 1\nb: {{ .Values.missing.x }}', /x\.yaml:2: nil pointer evaluating \.Values\.missing\.x/],
    ['printing a map without toYaml', 'a: {{ .Values }}', /x\.yaml:1: printing a map directly is not in the subset; pipe it to toYaml/],
    ['an unterminated block', 'a: 1\n{{ if .Values.x }}\nb: 2', /x\.yaml:2: this block has no \{\{ end \}\}/],
    ['a stray end', 'a: 1\n{{ end }}', /x\.yaml:2: unexpected \{\{ end \}\}/],
    ['an unclosed action', 'a: {{ .Values.x', /x\.yaml:1: action is not closed/],
    ['assignment with =', '{{ $x := 1 }}{{ $x = 2 }}', /x\.yaml:1: assigning to a variable/],
    ['an undefined variable', 'a: {{ $nope }}', /x\.yaml:1: undefined variable \$nope/],
    ['include of an unknown template', 'a: {{ include "nope" . }}', /x\.yaml:1: include: no template named "nope"/],
    ['a printf verb outside %s %d %v', 'a: {{ printf "%q" "x" }}', /x\.yaml:1: printf: only %s, %d, %v/],
    ['.Files.Get of a missing file', 'a: {{ .Files.Get "nope.txt" }}', /x\.yaml:1: \.Files\.Get "nope\.txt": no such file/],
    ['.Files.Get outside the chart', 'a: {{ .Files.Get "../Chart.yaml" }}', /x\.yaml:1: \.Files\.Get "\.\.\/Chart\.yaml": only files of the chart/],
    ['else with', '{{ with .Values.a }}{{ else with .Values.b }}{{ end }}', /x\.yaml:1: "else with \.Values\.b" inside with is not in the subset/],
  ])('%s', (_label, template, expected) => {
    expect(renderError(template)).toMatch(expected);
  });

  it('required fails with its message and where', () => {
    expect(renderError('a: 1\nb: {{ required "set .Values.token" .Values.token }}')).toBe(`${'demo/templates/x.yaml'}:2: set .Values.token`);
  });

  it('fail stops the render with its message', () => {
    expect(renderError('{{ if true }}\n{{ fail "not like this" }}\n{{ end }}')).toMatch(/x\.yaml:2: not like this$/);
  });

  it('an error in a define names the helper file and its line', () => {
    expect(renderError('a: {{ include "bad" . }}', {}, { helpers: '{{ define "ok" }}x{{ end }}\n{{ define "bad" }}\n{{ .Values | lower }}\n{{ end }}' })).toMatch(
      /demo\/templates\/_helpers\.tpl:3: function "lower" is not in the subset/,
    );
  });
});
