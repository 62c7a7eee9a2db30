// Injected by scripts/bundle-cli.mjs into the CommonJS bundles: what import.meta.url means in
// the ESM sources (the running file's URL). Injected rather than a banner, which would sit above
// "use strict" and leave the bundle in sloppy mode.
export const srtGwImportMetaUrl = require('node:url').pathToFileURL(__filename).href;
