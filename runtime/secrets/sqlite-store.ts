import Database from 'better-sqlite3';
import { SecretsError } from './errors.ts';
import { wrappedFromBytes, wrappedToBytes, type SecretRef, type WrappedSecret } from './secret-box.ts';
import type { SecretStore, StoredSecret } from './store.ts';

/** Largest page a rotation asks for at once (bounds memory per batch). */
export const MAX_LIST_LIMIT = 10_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS talos_secrets (
  purpose TEXT NOT NULL,
  id      TEXT NOT NULL,
  kek     TEXT NOT NULL,
  blob    BLOB NOT NULL,
  PRIMARY KEY (purpose, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS talos_secrets_by_kek ON talos_secrets (kek, purpose, id);
`;

interface Row {
  purpose: string;
  id: string;
  blob: Buffer;
}

/**
 * SQLite (better-sqlite3) secret store. Records are kept in the compact byte form with the KEK
 * id in its own indexed column, so a rotation finds what is left to re-wrap without decoding.
 */
export class SqliteSecretStore implements SecretStore {
  readonly db: Database.Database;
  readonly #owned: boolean;
  readonly #get: Database.Statement<[string, string], Row>;
  readonly #put: Database.Statement<[string, string, string, Buffer]>;
  readonly #delete: Database.Statement<[string, string]>;
  readonly #listFirst: Database.Statement<[string, number], Row>;
  readonly #listAfter: Database.Statement<[string, string, string, string, number], Row>;
  readonly #count: Database.Statement<[], { kek: string; n: number }>;
  readonly #cas: Database.Statement<[string, Buffer, string, string, Buffer]>;

  /** `target` is a file path (':memory:' for tests) or an open database shared with other stores. */
  constructor(target: string | Database.Database = ':memory:') {
    this.#owned = typeof target === 'string';
    this.db = typeof target === 'string' ? new Database(target) : target;
    if (this.#owned) this.db.pragma('journal_mode = WAL');
    this.db.exec(SCHEMA);
    this.#get = this.db.prepare('SELECT purpose, id, blob FROM talos_secrets WHERE purpose = ? AND id = ?');
    this.#put = this.db.prepare(
      'INSERT INTO talos_secrets (purpose, id, kek, blob) VALUES (?, ?, ?, ?) ' +
        'ON CONFLICT (purpose, id) DO UPDATE SET kek = excluded.kek, blob = excluded.blob',
    );
    this.#delete = this.db.prepare('DELETE FROM talos_secrets WHERE purpose = ? AND id = ?');
    this.#listFirst = this.db.prepare(
      'SELECT purpose, id, blob FROM talos_secrets WHERE kek <> ? ORDER BY purpose, id LIMIT ?',
    );
    this.#listAfter = this.db.prepare(
      'SELECT purpose, id, blob FROM talos_secrets WHERE kek <> ? AND (purpose > ? OR (purpose = ? AND id > ?)) ' +
        'ORDER BY purpose, id LIMIT ?',
    );
    this.#count = this.db.prepare('SELECT kek, COUNT(*) AS n FROM talos_secrets GROUP BY kek');
    this.#cas = this.db.prepare(
      'UPDATE talos_secrets SET kek = ?, blob = ? WHERE purpose = ? AND id = ? AND blob = ?',
    );
  }

  async get(ref: SecretRef) {
    const row = this.#get.get(ref.purpose, ref.id);
    return row ? wrappedFromBytes(row.blob) : undefined;
  }

  async put(ref: SecretRef, wrapped: WrappedSecret) {
    this.#put.run(ref.purpose, ref.id, wrapped.kek, Buffer.from(wrappedToBytes(wrapped)));
  }

  async delete(ref: SecretRef) {
    return this.#delete.run(ref.purpose, ref.id).changes > 0;
  }

  async listNotWrappedBy(kek: string, limit: number, after?: SecretRef): Promise<StoredSecret[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new SecretsError('secret_bad_record', `list limit must be 1..${MAX_LIST_LIMIT}`);
    }
    const rows = after
      ? this.#listAfter.all(kek, after.purpose, after.purpose, after.id, limit)
      : this.#listFirst.all(kek, limit);
    return rows.map((r) => ({ purpose: r.purpose, id: r.id, wrapped: wrappedFromBytes(r.blob) }));
  }

  async countByKek() {
    return new Map(this.#count.all().map((r) => [r.kek, r.n] as const));
  }

  async compareAndSwap(ref: SecretRef, expected: WrappedSecret, next: WrappedSecret) {
    const result = this.#cas.run(
      next.kek,
      Buffer.from(wrappedToBytes(next)),
      ref.purpose,
      ref.id,
      Buffer.from(wrappedToBytes(expected)),
    );
    return result.changes > 0;
  }

  close() {
    if (this.#owned) this.db.close();
  }
}
