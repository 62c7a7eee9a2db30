// The one size-capped table srt-gw keeps wherever keys come from clients (host names, connection
// ids, resolver answers, upstream origins): a Map that, once full, evicts its oldest entry to make
// room for a new one, so no client can grow it. Oldest is by insertion, or by last use when
// `refreshOnGet` is set (least recently used).

export interface BoundedMapOptions<K, V> {
  /** Most entries held at once; a positive integer. */
  readonly capacity: number;
  /**
   * get() makes the entry the youngest: the least recently used is evicted first. Otherwise
   * entries age by insertion (first in, first out). set() on a present key always makes it the youngest.
   */
  readonly refreshOnGet?: boolean;
  /** Called with each entry evicted to make room; not for entries deleted, cleared or replaced by set(). */
  readonly onEvict?: (key: K, value: V) => void;
}

interface Slot<K, V> {
  readonly key: K;
  value: V;
  older: Slot<K, V> | null;
  younger: Slot<K, V> | null;
}

/**
 * A Map bounded to `capacity` entries. The age order is a doubly linked list beside the Map, so
 * refreshing an entry on use costs a few pointer writes rather than a Map delete and set.
 */
export class BoundedMap<K, V> implements Iterable<[K, V]> {
  readonly capacity: number;
  readonly #slots = new Map<K, Slot<K, V>>();
  readonly #refreshOnGet: boolean;
  readonly #onEvict: ((key: K, value: V) => void) | undefined;
  #oldest: Slot<K, V> | null = null;
  #youngest: Slot<K, V> | null = null;

  constructor(options: BoundedMapOptions<K, V>) {
    if (!Number.isSafeInteger(options.capacity) || options.capacity < 1) {
      throw new RangeError(`BoundedMap capacity must be a positive integer (got ${String(options.capacity)})`);
    }
    this.capacity = options.capacity;
    this.#refreshOnGet = options.refreshOnGet === true;
    this.#onEvict = options.onEvict;
  }

  get size(): number {
    return this.#slots.size;
  }

  has(key: K): boolean {
    return this.#slots.has(key);
  }

  /** The value for `key`; with `refreshOnGet`, the entry becomes the youngest. */
  get(key: K): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined) return undefined;
    if (this.#refreshOnGet) this.#makeYoungest(slot);
    return slot.value;
  }

  /** The value for `key`, leaving its age alone. */
  peek(key: K): V | undefined {
    return this.#slots.get(key)?.value;
  }

  /** Sets `key` as the youngest entry; a new key first evicts the oldest entries while the map is full. */
  set(key: K, value: V): this {
    const present = this.#slots.get(key);
    if (present !== undefined) {
      present.value = value;
      this.#makeYoungest(present);
      return this;
    }
    while (this.#slots.size >= this.capacity) this.#evictOldest();
    const slot: Slot<K, V> = { key, value, older: this.#youngest, younger: null };
    if (this.#youngest === null) this.#oldest = slot;
    else this.#youngest.younger = slot;
    this.#youngest = slot;
    this.#slots.set(key, slot);
    return this;
  }

  delete(key: K): boolean {
    const slot = this.#slots.get(key);
    if (slot === undefined) return false;
    this.#slots.delete(key);
    this.#unlink(slot);
    return true;
  }

  clear(): void {
    this.#slots.clear();
    this.#oldest = null;
    this.#youngest = null;
  }

  /** Entries from the oldest to the youngest. Deleting the entry just yielded is safe. */
  *entries(): IterableIterator<[K, V]> {
    for (let slot = this.#oldest; slot !== null; ) {
      const next = slot.younger;
      yield [slot.key, slot.value];
      slot = next;
    }
  }

  *keys(): IterableIterator<K> {
    for (const [key] of this.entries()) yield key;
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  #evictOldest(): void {
    const oldest = this.#oldest!;
    this.#slots.delete(oldest.key);
    this.#unlink(oldest);
    this.#onEvict?.(oldest.key, oldest.value);
  }

  #makeYoungest(slot: Slot<K, V>): void {
    if (slot === this.#youngest) return;
    this.#unlink(slot);
    slot.older = this.#youngest;
    slot.younger = null;
    this.#youngest!.younger = slot;
    this.#youngest = slot;
  }

  #unlink(slot: Slot<K, V>): void {
    if (slot.older === null) this.#oldest = slot.younger;
    else slot.older.younger = slot.younger;
    if (slot.younger === null) this.#youngest = slot.older;
    else slot.younger.older = slot.older;
    slot.older = null;
    slot.younger = null;
  }
}
