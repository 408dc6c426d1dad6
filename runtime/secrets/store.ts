import type { SecretRef, WrappedSecret } from './secret-box.ts';

export interface StoredSecret extends SecretRef {
  wrapped: WrappedSecret;
}

/**
 * Where wrapped secrets live. Store-agnostic so the same rotation runs over SQLite, PostgreSQL
 * or memory: the rotation only needs to list records by KEK in a stable order (cursor paging)
 * and to replace a record only when nobody wrote it in between (compare-and-swap).
 */
export interface SecretStore {
  get(ref: SecretRef): Promise<WrappedSecret | undefined>;
  put(ref: SecretRef, wrapped: WrappedSecret): Promise<void>;
  delete(ref: SecretRef): Promise<boolean>;
  /**
   * Up to `limit` records whose DEK is NOT wrapped by `kek`, ordered by (purpose, id), strictly
   * after `after` when given. This is what a rotation still has to re-wrap.
   */
  listNotWrappedBy(kek: string, limit: number, after?: SecretRef): Promise<StoredSecret[]>;
  /** Number of records per KEK id. */
  countByKek(): Promise<Map<string, number>>;
  /** Replaces the record with `next` only if it still holds exactly `expected`. */
  compareAndSwap(ref: SecretRef, expected: WrappedSecret, next: WrappedSecret): Promise<boolean>;
  close?(): Promise<void> | void;
}

/** The same stored record: same KEK, wrapped DEK and ciphertext. */
export const sameWrapped = (a: WrappedSecret, b: WrappedSecret) => a.kek === b.kek && a.dek === b.dek && a.ct === b.ct;
const keyOf = (ref: SecretRef) => JSON.stringify([ref.purpose, ref.id]);
const compareRefs = (a: SecretRef, b: SecretRef) =>
  a.purpose < b.purpose ? -1 : a.purpose > b.purpose ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/** In-memory store: for tests and the simulator. Same contract as the durable stores. */
export class MemorySecretStore implements SecretStore {
  readonly #rows = new Map<string, StoredSecret>();

  async get(ref: SecretRef) {
    return this.#rows.get(keyOf(ref))?.wrapped;
  }
  async put(ref: SecretRef, wrapped: WrappedSecret) {
    this.#rows.set(keyOf(ref), { purpose: ref.purpose, id: ref.id, wrapped: { ...wrapped } });
  }
  async delete(ref: SecretRef) {
    return this.#rows.delete(keyOf(ref));
  }
  async listNotWrappedBy(kek: string, limit: number, after?: SecretRef) {
    return [...this.#rows.values()]
      .filter((r) => r.wrapped.kek !== kek && (!after || compareRefs(r, after) > 0))
      .sort(compareRefs)
      .slice(0, limit)
      .map((r) => ({ ...r, wrapped: { ...r.wrapped } }));
  }
  async countByKek() {
    const counts = new Map<string, number>();
    for (const r of this.#rows.values()) counts.set(r.wrapped.kek, (counts.get(r.wrapped.kek) ?? 0) + 1);
    return counts;
  }
  async compareAndSwap(ref: SecretRef, expected: WrappedSecret, next: WrappedSecret) {
    const row = this.#rows.get(keyOf(ref));
    if (!row || !sameWrapped(row.wrapped, expected)) return false;
    row.wrapped = { ...next };
    return true;
  }
}
