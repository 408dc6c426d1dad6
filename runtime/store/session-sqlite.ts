import Database from 'better-sqlite3';
import type { MlKemPrekeySecret, SignedPrekeySecrets, X25519PrekeySecret } from '../identity/prekeys.ts';
import { toB64u } from '../encoding/base64url.ts';
import { bytesEqual, utf8, fromUtf8 } from '../encoding/bytes.ts';
import { IdentityError, TalosError } from '../errors.ts';
import { MAX_STORED_ONE_TIME_PREKEYS, MAX_STORED_SIGNED_PREKEYS } from '../identity/prekey-store.ts';
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
/** Failed records named in a rewrap_incomplete message (the error's `failed` lists them all). */
export const REWRAP_FAILURES_NAMED = 10;

/**
 * The store itself failed, not a refused input. Codes: `session_store_unavailable` (the
 * database would not open), `rewrap_incomplete` (a key rotation left records it could not open).
 */
export class SessionStoreError extends TalosError {}

/** rewrapAll went past records it could not open: they still name the old KEK, which must stay. */
export class RewrapIncompleteError extends SessionStoreError {
  constructor(
    /** Each record's context (`session:<sid>`, `spk:<id>`, ...) and the code it failed with. */
    readonly failed: readonly { context: string; code: string }[],
    /** Records rewritten under the primary KEK despite the failures. */
    readonly rewritten: number,
  ) {
    const named = failed.slice(0, REWRAP_FAILURES_NAMED).map((f) => `${f.context} (${f.code})`).join(', ');
    const more = failed.length > REWRAP_FAILURES_NAMED ? ` and ${failed.length - REWRAP_FAILURES_NAMED} more` : '';
    super('rewrap_incomplete', `${failed.length} sealed records could not be re-wrapped: ${named}${more}; ${rewritten} were rewritten`);
  }
}

/** Better-sqlite3's code for a primary key that is already taken. */
const DUPLICATE_KEY = 'SQLITE_CONSTRAINT_PRIMARYKEY';

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
    this.db = openDatabase(options.path);
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
      delOldestOpk: db.prepare('DELETE FROM prekey_one_time WHERE id IN (SELECT id FROM prekey_one_time ORDER BY id LIMIT ?)'),
      delPq: db.prepare('DELETE FROM prekey_pq WHERE id = ? AND one_time = 1'),
      // Plain INSERTs: a stored (maybe published) prekey is never replaced (SPEC 4.6).
      putSpk: db.prepare('INSERT INTO prekey_signed (id, pub, secret) VALUES (?, ?, ?)'),
      putOpk: db.prepare('INSERT INTO prekey_one_time (id, pub, secret) VALUES (?, ?, ?)'),
      putPq: db.prepare('INSERT INTO prekey_pq (id, seed, one_time, spk_id) VALUES (?, ?, ?, ?)'),
      countSpk: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM prekey_signed'),
      countOpk: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM prekey_one_time'),
      countPqOpk: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM prekey_pq WHERE one_time = 1'),
      delSpk: db.prepare('DELETE FROM prekey_signed WHERE id = ?'),
      delSpkPq: db.prepare('DELETE FROM prekey_pq WHERE spk_id = ? AND one_time = 0'),
      delSeen: db.prepare('DELETE FROM seen_ek WHERE spk_id = ?'),
    };
    // Every write transaction is IMMEDIATE (takes the write lock first): a deferred one that
    // reads and then writes cannot upgrade its lock in WAL mode when another process wrote
    // meanwhile, and fails with SQLITE_BUSY(_SNAPSHOT) at once, without the busy timeout.
    const commitTx = db.transaction((consumed: Consumed, session: Session) => {
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
    this.commitTx = commitTx.immediate;
    this.commitBatchTx = db.transaction((writes: ReadonlyMap<string, Session | null>) => {
      for (const [sid, session] of writes) {
        if (session) this.writeSession(session);
        else this.stmt.del.run(sid);
      }
    }).immediate;
  }

  /** Runs `fn` in one IMMEDIATE transaction (see the constructor). */
  private write<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
    this.db.transaction(fn).immediate(...args);
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
    const plain = this.cipher.open(bytes(row.state), `session:${id}`);
    let text: string;
    try {
      text = fromUtf8(plain);
    } catch (err) {
      throw sessionError('state_corrupt', `the stored state of session ${id} is not UTF-8`, err);
    }
    return decodeSession(text);
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

  // SPEC 4.6, as runtime/identity/prekey-store.ts: a stored id is refused (prekey_duplicate_id),
  // the limits are checked after the inserts (prekey_store_full), and a refused batch rolls
  // back whole.
  async putSignedPrekey(secrets: SignedPrekeySecrets): Promise<void> {
    this.write(() => {
      const { spk, pqspk } = secrets;
      insertOnce(() => this.stmt.putSpk.run(spk.id, spk.publicKey, this.cipher.seal(spk.secretKey, `spk:${spk.id}`)), 'signed prekey', spk.id);
      // One id space for every ML-KEM key: the wire's pq_id must name exactly one.
      if (pqspk) insertOnce(() => this.stmt.putPq.run(pqspk.id, this.cipher.seal(pqspk.seed, `pq:${pqspk.id}`), 0, spk.id), 'ML-KEM prekey', pqspk.id);
      checkLimit(this.stmt.countSpk.get()!.n, MAX_STORED_SIGNED_PREKEYS, 'signed prekey');
    });
  }

  async putOneTimePrekeys(secrets: readonly X25519PrekeySecret[]): Promise<void> {
    this.write(() => {
      for (const k of secrets) insertOnce(() => this.stmt.putOpk.run(k.id, k.publicKey, this.cipher.seal(k.secretKey, `opk:${k.id}`)), 'one-time prekey', k.id);
      checkLimit(this.stmt.countOpk.get()!.n, MAX_STORED_ONE_TIME_PREKEYS, 'one-time prekey');
    });
  }

  async putPqOneTimePrekeys(secrets: readonly MlKemPrekeySecret[]): Promise<void> {
    this.write(() => {
      for (const k of secrets) insertOnce(() => this.stmt.putPq.run(k.id, this.cipher.seal(k.seed, `pq:${k.id}`), 1, null), 'ML-KEM prekey', k.id);
      checkLimit(this.stmt.countPqOpk.get()!.n, MAX_STORED_ONE_TIME_PREKEYS, 'one-time ML-KEM prekey');
    });
  }

  async deleteOldestOneTimePrekeys(count: number): Promise<void> {
    this.write(() => void this.stmt.delOldestOpk.run(count));
  }

  async deleteSignedPrekey(id: number): Promise<void> {
    this.write(() => {
      this.stmt.delSpk.run(id);
      this.stmt.delSpkPq.run(id);
      this.stmt.delSeen.run(id);
    });
  }

  /**
   * Key rotation for secrets at rest: passes every sealed value (session states and prekey
   * secrets) through `rewrap` (which re-wraps its data key under the primary KEK, data
   * untouched) and writes it back only if nobody changed it meanwhile, in batches of
   * REWRAP_BATCH rows per transaction, so sessions keep working during the rotation.
   * A value `rewrap` returns unchanged (already under the primary) is not written again.
   * Returns how many values were rewritten. A value that does not open is passed over and
   * the rest still re-wrapped; then RewrapIncompleteError names every one of them (SPEC 10.1:
   * reported, and the old KEK must stay).
   */
  rewrapAll(rewrap: (sealed: Uint8Array, context: string) => Uint8Array): number {
    let rewritten = 0;
    const failed: { context: string; code: string }[] = [];
    for (const { table, key, column, context } of SEALED_COLUMNS) {
      const page = this.db.prepare<[string | number], { k: string | number; v: Buffer }>(
        `SELECT ${key} AS k, ${column} AS v FROM ${table} WHERE ${key} > ? ORDER BY ${key} LIMIT ${REWRAP_BATCH}`,
      );
      const swap = this.db.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${key} = ? AND ${column} = ?`);
      const batch = this.db.transaction((rows: { k: string | number; v: Buffer }[]) => {
        for (const row of rows) {
          const sealed = bytes(row.v);
          let next: Uint8Array;
          try {
            next = rewrap(sealed, context(row.k));
          } catch (err) {
            // Only the context and the code: never the sealed bytes.
            failed.push({ context: context(row.k), code: err instanceof TalosError ? err.code : 'error' });
            continue;
          }
          if (!bytesEqual(next, sealed)) rewritten += swap.run(next, row.k, row.v).changes;
        }
      }).immediate;
      // Keyset pagination from below the smallest key: '' for text keys, -1 for ids (u32).
      let after: string | number = key === 'sid' ? '' : -1;
      for (;;) {
        const rows = page.all(after);
        if (rows.length === 0) break;
        batch(rows);
        after = rows[rows.length - 1]!.k;
      }
    }
    if (failed.length > 0) throw new RewrapIncompleteError(failed, rewritten);
    return rewritten;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

/** Opens (creating if needed) the database, or says which path would not open and why. */
function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA);
    return db;
  } catch (err) {
    db?.close();
    const why = (err as { code?: unknown }).code ?? (err as Error).message;
    throw new SessionStoreError('session_store_unavailable', `the session store ${path} cannot be opened: ${String(why)}`, { cause: err });
  }
}

/** Runs one INSERT, turning a taken id into prekey_duplicate_id (the transaction rolls back). */
function insertOnce(insert: () => unknown, what: string, id: number): void {
  try {
    insert();
  } catch (err) {
    if ((err as { code?: unknown }).code === DUPLICATE_KEY) throw new IdentityError('prekey_duplicate_id', `${what} id ${id} is already stored`);
    throw err;
  }
}

function checkLimit(stored: number, limit: number, what: string): void {
  if (stored > limit) throw new IdentityError('prekey_store_full', `at most ${limit} ${what}s are stored`);
}
