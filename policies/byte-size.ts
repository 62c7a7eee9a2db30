// Byte sizes as people write them in a policy ("10MiB", "1.5 GB", 1048576) and as messages show them.

/** "10MiB", "1.5 GB", "512 KiB", "1000": what a byte size may be written as. */
const BYTE_SIZE_PATTERN = /^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|kB|KB|MB|GB|KiB|MiB|GiB)?\s*$/;
const BYTE_UNITS: Readonly<Record<string, number>> = { B: 1, kB: 1e3, KB: 1e3, MB: 1e6, GB: 1e9, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** Bytes for a size written as a whole number or a string like "10MiB"; otherwise a phrase for an error message. */
export function parseByteSize(value: number | string): { bytes: number } | { error: string } {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? { bytes: value } : { error: 'must be a whole number of bytes, or a size such as "10MiB"' };
  }
  const match = BYTE_SIZE_PATTERN.exec(value);
  if (match === null) {
    return {
      error: 'must be a size such as "512KiB", "10MiB", "1GB" or a whole number of bytes (KiB, MiB, GiB are powers of 1024; KB, MB, GB powers of 1000)',
    };
  }
  const bytes = Math.floor(Number(match[1]) * (BYTE_UNITS[match[2] ?? 'B'] ?? 1));
  return Number.isSafeInteger(bytes) ? { bytes } : { error: 'is too large' };
}

/** 1048576 → "1 MiB", 1500 → "1500 bytes", 1536 → "1.5 KiB". */
export function formatByteSize(bytes: number): string {
  const units: [string, number][] = [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ];
  for (const [unit, size] of units) {
    if (bytes >= size && (bytes * 10) % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} ${bytes === 1 ? 'byte' : 'bytes'}`;
}
