import Database from 'better-sqlite3';
import type { MlKemPrekeySecret, SignedPrekeySecrets, X25519PrekeySecret } from '../identity/prekeys.ts';
import { toB64u } from '../encoding/base64url.ts';
import { utf8, fromUtf8 } from '../encoding/bytes.ts';
import { sessionError } from '../session/errors.ts';
import type { HandshakeFields } from '../session/handshake.ts';
import { noAtRestCipher, type AtRestCipher, type PrekeySecretsWriter, type HandshakeStore, type SessionStore } from '../session/ports.ts';
import type { Consumed, ResponderLookup, Session } from '../session/session.ts';
import { decodeSession, encodeSession } from '../session/state-codec.ts';

/**
 * SQLite (better-sqlite3 12) adapter for SessionStore and PrekeyStore, in one database so a
 * handshake commit (one-time prekeys deleted, EK recorded, session saved) is one transaction.
 * WAL journal, synchronous=FULL: a committed session survives a killed process.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS session (
  sid TEXT PRIMARY KEY,
  self TEXT NOT NULL,
  peer TEXT NOT NULL,
  state BLOB NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS session_peer ON session (self, peer);
CREATE TABLE IF NOT EXISTS prekey_signed (id INTEGER PRIMARY KEY, pub BLOB NOT NULL, secret BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prekey_one_time (id INTEGER PRIMARY KEY, pub BLOB NOT NULL, secret BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prekey_pq (id INTEGER PRIMARY KEY, seed BLOB NOT NULL, one_time INTEGER NOT NULL, spk_id INTEGER);
CREATE TABLE IF NOT EXISTS seen_ek (spk_id INTEGER NOT NULL, ek BLOB NOT NULL, PRIMARY KEY (spk_id, ek)) WITHOUT ROWID;
`;

/** Rows re-wrapped per transaction during a key rotation. */
export const REWRAP_BATCH = 256;

/** Every column that holds a value sealed by the AtRestCipher, with the context it is bound to. */
const SEALED_COLUMNS = [
  { table: 'session', key: 'sid', column: 'state', context: (k: string | number) => `session:${k}` },
  { table: 'prekey_signed', key: 'id', column: 'secret', context: (k: string | number) => `spk:${k}` },
  { table: 'prekey_one_time', key: 'id', column: 'secret', context: (k: string | number) => `opk:${k}` },
  { table: 'prekey_pq', key: 'id', column: 'seed', context: (k: string | number) => `pq:${k}` },
] as const;

export interface SqliteSessionStoreOptions {
  /** File path, or ':memory:'. */
  path: string;
  cipher?: AtRestCipher;
  /** Clock for updated_at (ms). */
  now?: () => number;
}

const bytes = (b: Buffer | Uint8Array) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice();

export class SqliteSessionStore implements SessionStore, HandshakeStore, PrekeySecretsWriter {
  readonly db: Database.Database;
  private readonly cipher: AtRestCipher;
  private readonly now: () => number;
  private readonly stmt;
  private readonly commitTx: (consumed: Consumed, session: Session) => void;
  private readonly commitBatchTx: (writes: ReadonlyMap<string, Session | null>) => void;

  constructor(options: SqliteSessionStoreOptions) {
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(SCHEMA);
    this.cipher = options.cipher ?? noAtRestCipher;
    this.now = options.now ?? Date.now;
    const db = this.db;
    this.stmt = {
      load: db.prepare<[string], { state: Buffer }>('SELECT state FROM session WHERE sid = ?'),
      save: db.prepare(
        'INSERT INTO session (sid, self, peer, state, updated_at) VALUES (?, ?, ?, ?, ?) ' +
          'ON CONFLICT (sid) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
      ),
      // The same row from the state's JSON text: SQLite stores its UTF-8 bytes as the blob.
      saveText: db.prepare(
        'INSERT INTO session (sid, self, peer, state, updated_at) VALUES (?, ?, ?, CAST(? AS BLOB), ?) ' +
          'ON CONFLICT (sid) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
      ),
      del: db.prepare('DELETE FROM session WHERE sid = ?'),
      prune: db.prepare('DELETE FROM session WHERE updated_at < ?'),
      maxSpk: db.prepare<[], { n: number }>('SELECT coalesce(max(id), 0) AS n FROM prekey_signed'),
      maxOpk: db.prepare<[], { n: number }>('SELECT coalesce(max(id), 0) AS n FROM prekey_one_time'),
      spk: db.prepare<[number], { pub: Buffer; secret: Buffer }>('SELECT pub, secret FROM prekey_signed WHERE id = ?'),
      opk: db.prepare<[number], { pub: Buffer; secret: Buffer }>('SELECT pub, secret FROM prekey_one_time WHERE id = ?'),
      pq: db.prepare<[number], { seed: Buffer; one_time: number }>('SELECT seed, one_time FROM prekey_pq WHERE id = ?'),
      lastResortPq: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM prekey_pq WHERE one_time = 0'),
      ekSeen: db.prepare<[number, Uint8Array], { n: number }>('SELECT count(*) AS n FROM seen_ek WHERE spk_id = ? AND ek = ?'),
      recordEk: db.prepare('INSERT INTO seen_ek (spk_id, ek) VALUES (?, ?)'),
      delOpk: db.prepare('DELETE FROM prekey_one_time WHERE id = ?'),
      delPq: db.prepare('DELETE FROM prekey_pq WHERE id = ? AND one_time = 1'),
      putSpk: db.prepare('INSERT OR REPLACE INTO prekey_signed (id, pub, secret) VALUES (?, ?, ?)'),
      putOpk: db.prepare('INSERT OR REPLACE INTO prekey_one_time (id, pub, secret) VALUES (?, ?, ?)'),
      putPq: db.prepare('INSERT INTO prekey_pq (id, seed, one_time, spk_id) VALUES (?, ?, ?, ?)'),
      delSpk: db.prepare('DELETE FROM prekey_signed WHERE id = ?'),
      delSpkPq: db.prepare('DELETE FROM prekey_pq WHERE spk_id = ? AND one_time = 0'),
      delSeen: db.prepare('DELETE FROM seen_ek WHERE spk_id = ?'),
    };
    this.commitTx = db.transaction((consumed: Consumed, session: Session) => {
      // Re-checked inside the transaction: two first messages racing cannot both succeed.
      if (this.stmt.ekSeen.get(consumed.spkId, consumed.ek)!.n > 0) {
        throw sessionError('handshake_replay', 'this ephemeral key was already used with this signed prekey');
      }
      if (consumed.opkId !== undefined && this.stmt.delOpk.run(consumed.opkId).changes !== 1) {
        throw sessionError('unknown_prekey', 'one-time prekey already used');
      }
      if (consumed.pqOneTimeId !== undefined && this.stmt.delPq.run(consumed.pqOneTimeId).changes !== 1) {
        throw sessionError('unknown_prekey', 'one-time ML-KEM prekey already used');
      }
      this.stmt.recordEk.run(consumed.spkId, consumed.ek);
      this.writeSession(session);
    });
    this.commitBatchTx = db.transaction((writes: ReadonlyMap<string, Session | null>) => {
      for (const [sid, session] of writes) {
        if (session) this.writeSession(session);
        else this.stmt.del.run(sid);
      }
    });
  }

  private writeSession(session: Session): void {
    const sid = toB64u(session.sid);
    const json = encodeSession(session);
    // Without an at-rest cipher the text goes in as it is: no UTF-8 copy off the V8 heap per
    // write (the tunnel journals two states per call).
    if (this.cipher === noAtRestCipher) this.stmt.saveText.run(sid, session.self, session.peer, json, this.now());
    else this.stmt.save.run(sid, session.self, session.peer, this.cipher.seal(utf8(json), `session:${sid}`), this.now());
  }

  async load(sid: Uint8Array): Promise<Session | undefined> {
    const id = toB64u(sid);
    const row = this.stmt.load.get(id);
    if (!row) return undefined;
    return decodeSession(fromUtf8(this.cipher.open(bytes(row.state), `session:${id}`)));
  }

  async save(session: Session): Promise<void> {
    this.writeSession(session); // one statement: atomic by itself
  }

  async delete(sid: Uint8Array): Promise<void> {
    this.stmt.del.run(toB64u(sid));
  }

  /**
   * Writes (or, for null, deletes) many sessions, by sid, in one transaction: the tunnel's
   * write-ahead journal commits every session changed in one event-loop turn at once.
   */
  commitSessions(writes: ReadonlyMap<string, Session | null>): void {
    this.commitBatchTx(writes);
  }

  /** Sessions not written for `olderThanMs` are removed (abandoned, no longer resumable). Returns how many. */
  pruneSessions(olderThanMs: number): number {
    return this.stmt.prune.run(this.now() - olderThanMs).changes;
  }

  /** The highest signed and one-time prekey ids stored (0 when none): a restarted responder continues after them. */
  lastPrekeyIds(): { spk: number; opk: number } {
    return { spk: this.stmt.maxSpk.get()!.n, opk: this.stmt.maxOpk.get()!.n };
  }

  async lookup(fields: HandshakeFields): Promise<ResponderLookup> {
    const out: ResponderLookup = {
      requiresPq: this.stmt.lastResortPq.get()!.n > 0,
      ekSeen: this.stmt.ekSeen.get(fields.spkId, fields.ek)!.n > 0,
    };
    const spk = this.stmt.spk.get(fields.spkId);
    if (spk) out.spk = { publicKey: bytes(spk.pub), secretKey: this.cipher.open(bytes(spk.secret), `spk:${fields.spkId}`) };
    if (fields.opkId !== undefined) {
      const opk = this.stmt.opk.get(fields.opkId);
      if (opk) out.opk = { publicKey: bytes(opk.pub), secretKey: this.cipher.open(bytes(opk.secret), `opk:${fields.opkId}`) };
    }
    if (fields.pqId !== undefined) {
      const pq = this.stmt.pq.get(fields.pqId);
      if (pq) out.pq = { seed: this.cipher.open(bytes(pq.seed), `pq:${fields.pqId}`), oneTime: pq.one_time === 1 };
    }
    return out;
  }

  async commitHandshake(consumed: Consumed, session: Session): Promise<void> {
    this.commitTx(consumed, session);
  }

  async putSignedPrekey(secrets: SignedPrekeySecrets): Promise<void> {
    this.db.transaction(() => {
      const { spk, pqspk } = secrets;
      this.stmt.putSpk.run(spk.id, spk.publicKey, this.cipher.seal(spk.secretKey, `spk:${spk.id}`));
      if (pqspk) this.putPq(pqspk.id, pqspk.seed, false, spk.id);
    })();
  }

  async putOneTimePrekeys(secrets: readonly X25519PrekeySecret[]): Promise<void> {
    this.db.transaction(() => {
      for (const k of secrets) this.stmt.putOpk.run(k.id, k.publicKey, this.cipher.seal(k.secretKey, `opk:${k.id}`));
    })();
  }

  async putPqOneTimePrekeys(secrets: readonly MlKemPrekeySecret[]): Promise<void> {
    this.db.transaction(() => {
      for (const k of secrets) this.putPq(k.id, k.seed, true, null);
    })();
  }

  private putPq(id: number, seed: Uint8Array, oneTime: boolean, spkId: number | null): void {
    try {
      this.stmt.putPq.run(id, this.cipher.seal(seed, `pq:${id}`), oneTime ? 1 : 0, spkId);
    } catch (err) {
      // One id space for every ML-KEM key: the wire's pq_id must name exactly one.
      throw sessionError('unknown_prekey', `ML-KEM prekey id ${id} is already in use`, err);
    }
  }

  async deleteSignedPrekey(id: number): Promise<void> {
    this.db.transaction(() => {
      this.stmt.delSpk.run(id);
      this.stmt.delSpkPq.run(id);
      this.stmt.delSeen.run(id);
    })();
  }

  /**
   * Key rotation for secrets at rest: passes every sealed value (session states and prekey
   * secrets) through `rewrap` (which re-wraps its data key under the primary KEK, data
   * untouched) and writes it back only if nobody changed it meanwhile, in batches of
   * REWRAP_BATCH rows per transaction, so sessions keep working during the rotation.
   * Returns how many values were rewritten.
   */
  rewrapAll(rewrap: (sealed: Uint8Array, context: string) => Uint8Array): number {
    let rewritten = 0;
    for (const { table, key, column, context } of SEALED_COLUMNS) {
      const page = this.db.prepare<[string | number], { k: string | number; v: Buffer }>(
        `SELECT ${key} AS k, ${column} AS v FROM ${table} WHERE ${key} > ? ORDER BY ${key} LIMIT ${REWRAP_BATCH}`,
      );
      const swap = this.db.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${key} = ? AND ${column} = ?`);
      const batch = this.db.transaction((rows: { k: string | number; v: Buffer }[]) => {
        for (const row of rows) {
          const next = rewrap(bytes(row.v), context(row.k));
          rewritten += swap.run(next, row.k, row.v).changes;
        }
      });
      // Keyset pagination from below the smallest key: '' for text keys, -1 for ids (u32).
      let after: string | number = key === 'sid' ? '' : -1;
      for (;;) {
        const rows = page.all(after);
        if (rows.length === 0) break;
        batch(rows);
        after = rows[rows.length - 1]!.k;
      }
    }
    return rewritten;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
