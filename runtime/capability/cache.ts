/**
 * A bounded map that evicts (approximately) the least recently used entry. A hit on an entry
 * that is still in the recent half of the map costs one Map lookup and no write: it is moved
 * to the recent end only once it has drifted into the older half. Eviction takes the oldest
 * entry in insertion order. This keeps cached authorization checks allocation-free.
 */
export class BoundedLru<K, V> {
  readonly #map = new Map<K, { value: V; stamp: number }>();
  readonly capacity: number;
  #clock = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError('cache capacity must be a positive integer');
    this.capacity = capacity;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (this.#clock - slot.stamp > this.capacity >> 1) {
      this.#map.delete(key);
      slot.stamp = ++this.#clock;
      this.#map.set(key, slot);
    }
    return slot.value;
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, { value, stamp: ++this.#clock });
    if (this.#map.size > this.capacity) {
      const oldest = this.#map.keys().next().value as K;
      this.#map.delete(oldest);
    }
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  values(): IterableIterator<V> {
    const it = this.#map.values();
    return (function* () {
      for (const slot of it) yield slot.value;
    })();
  }
}
