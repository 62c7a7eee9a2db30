// Maps a path inside a parsed YAML document (["rules", 0, "paths", 1]) to the line and column
// where it was written, so every policy error can point at what to fix.
import { isMap, isNode, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';

export interface Position {
  /** 1-based. */
  readonly line: number;
  /** 1-based. */
  readonly column: number;
}

export class YamlPositions {
  constructor(
    private readonly document: Document,
    private readonly lineCounter: LineCounter,
  ) {}

  /** The position of a character offset in the source text. */
  ofOffset(offset: number): Position {
    const { line, col } = this.lineCounter.linePos(offset);
    return { line, column: col };
  }

  /**
   * Where the value at `path` starts; with `at: 'key'`, where its key starts. When the path
   * does not exist (a missing key), the nearest enclosing node that does; an empty document is 1:1.
   */
  of(path: readonly PropertyKey[], at: 'value' | 'key' = 'value'): Position {
    let node: unknown = this.document.contents;
    if (!isNode(node)) return { line: 1, column: 1 };
    let offset = startOf(node);
    for (let i = 0; i < path.length; i++) {
      const segment = path[i];
      const isLast = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (pair === undefined || !isNode(pair.key)) break;
        const keyOffset = startOf(pair.key);
        if (isLast && at === 'key') return this.ofOffset(keyOffset);
        // An empty value ("port:") has no text of its own: point at its key.
        if (!isNode(pair.value) || isEmptyScalar(pair.value)) return this.ofOffset(keyOffset);
        node = pair.value;
        offset = startOf(pair.value);
      } else if (isSeq(node) && typeof segment === 'number') {
        const item: unknown = node.items[segment];
        if (!isNode(item)) break;
        node = item;
        offset = startOf(item);
      } else {
        break;
      }
    }
    return this.ofOffset(offset);
  }
}

function startOf(node: Node): number {
  return node.range?.[0] ?? 0;
}

function isEmptyScalar(node: Node): boolean {
  return isScalar(node) && node.value === null && node.range != null && node.range[0] === node.range[1];
}
