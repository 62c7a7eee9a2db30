#!/usr/bin/env node
// Bundles the srt-gw command line into dist/bin (run by `npm run build`, after tsc):
// - srt-gw-cli.cjs: the command line and everything it loads at start, one CommonJS file, so that
//   the launcher can compile it through V8's code cache (cli/code-cache.ts). ESM has no code cache
//   on Node 20, and ~150 separate modules cost ~50 ms of resolution and loading.
// - vendor/NAME.cjs: the large dependencies that only some runs load, on first use: undici (the
//   first upstream request), yaml and zod (a policy file), pino (--log), prom-client (--metrics),
//   jose (client tokens: srt-gw token, and a policy with clients:).
//   @redis/client (serve --state only).
//   Outside the main file because every start reads and decodes that file whole (~2.3 MB more).
//   Each is compiled through a code cache of its own (cli/code-cache.ts requireWithCodeCache).
// - srt-gw.js: the launcher (cli/launcher.ts), the package's bin; dist/bin/package.json makes
//   .js files CommonJS here, so node never starts its ESM loader for the command line.
// The library entry (dist/index.js) stays unbundled ESM. bench/jail.mjs measures the start-up.
import { build, transform } from 'esbuild';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist', 'bin');
const VENDORED = ['undici', 'zod', 'yaml', 'pino', 'prom-client', 'jose', '@redis/client'];
/**
 * What a vendored file holds, when not the whole package. The command line uses undici's Pool
 * (with the request API, pool.upgrade) and its error classes, nothing else: its index also loads
 * fetch, WebSocket, the cache and the mocks, three times the code and load time of these.
 */
const VENDOR_ENTRIES = {
  undici: {
    resolveDir: join(root, 'node_modules', 'undici'),
    contents: `const Dispatcher = require('./lib/dispatcher/dispatcher.js');
Object.assign(Dispatcher.prototype, require('./lib/api/index.js'));
module.exports = { Pool: require('./lib/dispatcher/pool.js'), errors: require('./lib/core/errors.js') };`,
  },
};

const common = {
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  legalComments: 'none',
  // The sources are ESM; in a CommonJS file import.meta.url is the file's own URL.
  define: { 'import.meta.url': 'srtGwImportMetaUrl' },
  inject: [join(root, 'scripts', 'import-meta-url.js')],
};

/**
 * Loads the vendored packages from their own files instead of copying them into the main one.
 * Each becomes a small bundled module that requires its file through the code cache, so that a
 * dynamic import() of it (undici) turns into a require as well: an import() left in the bundle
 * would need node's ESM loader, which the code-cached script does not have.
 */
const vendored = {
  name: 'srt-gw-vendored',
  setup(builder) {
    const names = new RegExp(`^(${VENDORED.join('|')})$`);
    builder.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: 'srt-gw-vendored' }));
    builder.onLoad({ filter: /.*/, namespace: 'srt-gw-vendored' }, (args) => ({
      contents: `const { requireWithCodeCache } = require(${JSON.stringify(join(root, 'cli', 'code-cache.ts'))});
module.exports = requireWithCodeCache(require('node:path').join(__dirname, 'vendor', ${JSON.stringify(`${args.path}.cjs`)}));`,
      resolveDir: root,
      loader: 'js',
    }));
  },
};

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
writeFileSync(join(outdir, 'package.json'), '{ "type": "commonjs" }\n');
const [cli] = await Promise.all([
  build({ ...common, entryPoints: [join(root, 'cli', 'main.ts')], outfile: join(outdir, 'srt-gw-cli.cjs'), plugins: [vendored], metafile: true }),
  build({ ...common, entryPoints: [join(root, 'cli', 'launcher.ts')], outfile: join(outdir, 'srt-gw.js') }),
  ...VENDORED.map((name) =>
    build({
      ...common,
      stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root, ...VENDOR_ENTRIES[name], sourcefile: `vendor-${name}.cjs` },
      outfile: join(outdir, 'vendor', `${name}.cjs`),
    }),
  ),
]);

// An import() left in the bundle (of a builtin, say) would throw ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING
// when it runs from the code-cached script: refuse to build such a bundle instead.
const dynamicImports = Object.values(cli.metafile.outputs).flatMap((output) => output.imports.filter((entry) => entry.kind === 'dynamic-import'));
if (dynamicImports.length > 0) {
  throw new Error(`bundle-cli: dynamic import() of ${dynamicImports.map((entry) => entry.path).join(', ')} left in dist/bin/srt-gw-cli.cjs; import it statically, or load it with process.getBuiltinModule / a vendored package`);
}

await Promise.all(bundleFiles(outdir).map(asciiOnly));

/** Every .js and .cjs file under `dir`. */
function bundleFiles(dir) {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.c?js$/.test(name))
    .map((name) => join(dir, name));
}

/**
 * esbuild escapes non-ASCII characters everywhere but in the comments it keeps, and one such
 * character (an em dash, say) makes V8 hold the whole source as a two-byte string: 2 bytes a
 * character for as long as the code is loaded (4.3 MB instead of 2.2 MB for the CLI, undici and
 * zod that serve keeps). Those characters become \u{...} escapes; the file is rewritten only if
 * that changes no code: esbuild must print the same whitespace-minified (comment-free) program
 * for both. A regular expression or a raw template holding such a character fails the build.
 */
async function asciiOnly(file) {
  const code = readFileSync(file, 'utf8');
  if (!/[^\x00-\x7f]/.test(code)) return;
  const ascii = code.replace(/[^\x00-\x7f]/gu, (character) => `\\u{${character.codePointAt(0).toString(16)}}`);
  const minified = async (text) => (await transform(text, { minifyWhitespace: true, legalComments: 'none', charset: 'ascii' })).code;
  if ((await minified(code)) !== (await minified(ascii))) {
    throw new Error(`bundle-cli: ${file} has non-ASCII characters outside comments; V8 would keep it as a two-byte string`);
  }
  writeFileSync(file, ascii);
}
