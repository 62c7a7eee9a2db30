// Makes Jazzer.js's prebuilt libFuzzer addon load on Debian 12 (glibc 2.36, GCC 12's libstdc++);
// the prebuilt is linked against glibc 2.38 and GCC 13. It needs exactly three newer symbols:
// - __isoc23_strtol / __isoc23_strtoul (GLIBC_2.38): the C23 strtol/strtoul that also accept a
//   "0b" prefix. Rewritten to strtol/strtoul@GLIBC_2.2.5; libFuzzer parses its numeric flags with
//   them, where a binary prefix never occurs.
// - std::ios_base_library_init() (GLIBCXX_3.4.32): GCC 13's <iostream> only names it to pull in
//   libstdc++'s stream setup; no relocation refers to it, so it is never resolved. Only its version
//   requirement has to go (rewritten to the base GLIBCXX_3.4).
// Idempotent: a binary that already loads is left untouched.
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync, existsSync, copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

export function jazzerAddonPath() {
  const fuzzerDir = dirname(require.resolve('@jazzer.js/fuzzer/package.json'));
  return join(fuzzerDir, 'prebuilds', `fuzzer-${process.platform}-${process.arch}.node`);
}

function tryLoad(path) {
  try {
    require(path);
    return undefined;
  } catch (error) {
    return error;
  }
}

function elfHash(name) {
  let h = 0;
  for (const ch of Buffer.from(name, 'latin1')) {
    h = ((h << 4) + ch) >>> 0;
    const g = h & 0xf0000000;
    if (g !== 0) h ^= g >>> 24;
    h &= ~g >>> 0;
    h >>>= 0;
  }
  return h >>> 0;
}

function cString(buf, offset) {
  const end = buf.indexOf(0, offset);
  return buf.toString('latin1', offset, end);
}

/** Rewrites the GLIBC_2.38 imports of an ELF64 little-endian shared object; returns the count rewritten. */
export function downgradeIsoc23Imports(elf) {
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) {
    throw new Error('not an ELF64 little-endian file');
  }
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    sections.push({
      type: elf.readUInt32LE(at + 4),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
      link: elf.readUInt32LE(at + 0x28),
      info: elf.readUInt32LE(at + 0x2c),
    });
  }
  const SHT_DYNSYM = 11;
  const SHT_GNU_VERNEED = 0x6ffffffe;
  const dynsym = sections.find((s) => s.type === SHT_DYNSYM);
  const verneed = sections.find((s) => s.type === SHT_GNU_VERNEED);
  if (!dynsym || !verneed) throw new Error('no .dynsym or .gnu.version_r section');
  const dynstr = sections[dynsym.link];
  const strAt = (off) => cString(elf, dynstr.offset + off);

  // The base versions' names are already in .dynstr (the binary imports other symbols at them).
  const dynstrBytes = elf.subarray(dynstr.offset, dynstr.offset + dynstr.size);
  const stringOffset = (text) => {
    const at = dynstrBytes.indexOf(Buffer.from(`\0${text}\0`, 'latin1'));
    if (at < 0) throw new Error(`${text} not referenced by the binary`);
    return at + 1;
  };
  const replacements = new Map([
    ['GLIBC_2.38', 'GLIBC_2.2.5'],
    ['GLIBCXX_3.4.32', 'GLIBCXX_3.4'],
  ]);

  let rewritten = 0;
  let need = verneed.offset;
  for (let n = 0; n < verneed.info; n++) {
    const count = elf.readUInt16LE(need + 2);
    let aux = need + elf.readUInt32LE(need + 8);
    for (let a = 0; a < count; a++) {
      const replacement = replacements.get(strAt(elf.readUInt32LE(aux + 8)));
      if (replacement !== undefined) {
        elf.writeUInt32LE(elfHash(replacement), aux);
        elf.writeUInt32LE(stringOffset(replacement), aux + 8);
        rewritten++;
      }
      aux += elf.readUInt32LE(aux + 12);
    }
    need += elf.readUInt32LE(need + 12);
  }
  const prefix = '__isoc23_';
  for (let at = dynsym.offset; at < dynsym.offset + dynsym.size; at += 24) {
    const nameOffset = elf.readUInt32LE(at);
    const name = strAt(nameOffset);
    if (name === '__isoc23_strtol' || name === '__isoc23_strtoul') {
      // "__isoc23_strtol" ends in "strtol": point the import at that tail of the same string.
      elf.writeUInt32LE(nameOffset + prefix.length, at);
      rewritten++;
    }
  }
  return rewritten;
}

/** Ensures the Jazzer.js addon loads here; patches it once if it needs a newer glibc. */
export function ensureJazzerAddonLoads() {
  const path = jazzerAddonPath();
  if (!existsSync(path)) throw new Error(`Jazzer.js addon missing at ${path}: run npm ci`);
  const first = tryLoad(path);
  if (!first) return { path, patched: false };
  if (!/GLIBC_2\.38|GLIBCXX_3\.4\.32/.test(String(first.message))) throw first;
  const elf = readFileSync(path);
  const rewritten = downgradeIsoc23Imports(elf);
  if (rewritten === 0) throw first;
  if (!existsSync(`${path}.orig`)) copyFileSync(path, `${path}.orig`);
  writeFileSync(path, elf);
  // require() caches failures per path only for successes, so loading again sees the new file.
  const second = tryLoad(path);
  if (second) throw new Error(`Jazzer.js addon still fails to load after the glibc patch: ${second.message}`);
  return { path, patched: true };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { path, patched } = ensureJazzerAddonLoads();
  console.log(`${patched ? 'patched' : 'loads as is'}: ${path}`);
}
