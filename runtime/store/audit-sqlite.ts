import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { AuditError } from '../audit/errors.ts';
import { HASH_SIZE, type Hasher } from '../audit/merkle.ts';
import { Frontier, nodeKey, type NodeRef } from '../audit/tree.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import {
  checkBatch,
  checkPage,
  decodeHeadFrontier,
  encodeFrontier,
  hashBatch,
  toBytes,
  type AppendResult,
  type AuditStore,
  type Head,
  type StoredCheckpoint,
  type StoredLeaf,
} from './audit-store.ts';

/**
 * SQLite adapter (better-sqlite3 12), the embedded default.
 *
 * Durability choice: WAL journal with synchronous=FULL. Every commit fsyncs the WAL, so an
 * acknowledged batch survives a killed process AND a power loss. (WAL with synchronous=NORMAL
 * survives a killed process but may lose the last commits on power loss; we do not take that
 * trade: group commit in the auditor amortizes the fsync instead.)
 * A batch is one IMMEDIATE transaction: the write lock is taken first, so two processes on the
 * same file serialize and read the head inside the lock.
 */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS audit_events (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, frontier BLOB NOT NULL, root BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints (id INTEGER PRIMARY KEY AUTOINCREMENT, size INTEGER NOT NULL, note TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_checkpoints_size ON audit_checkpoints (size);
`;
/** Busy timeout: another process holding the write lock makes us wait this long, then fail. */
const BUSY_TIMEOUT_MS = 10_000;
/** Reads go through a memory map (no read syscall per page): proofs read random nodes. */
const MMAP_BYTES = 1 << 30;
/** Page cache per connection, in KiB (negative pragma value). */
const CACHE_KIB = 64 * 1024;
/**
 * Node reads are batched: one statement returns up to this many hashes concatenated into one
 * blob (a statement costs more than each lookup in it, and so does each value handed back to
 * JS; a proof's uncached nodes are a handful). `||` concatenates the stored bytes as they are
 * (the database encoding is UTF-8, SQLite's default, so no conversion happens) and CAST makes
 * the result a blob again; a missing node makes it NULL, and then the nodes are read as one
 * row with one column each, which tells which ones exist.
 */
const NODES_PER_READ = 8;

export interface SqliteAuditStoreOptions {
  path: string;
  hasher: Hasher;
  /** Opens an existing file without creating tables (verify/read-only tools). */
  readonly?: boolean;
}

const AUDIT_TABLES = ['audit_events', 'audit_nodes', 'audit_head', 'audit_checkpoints'];

/**
 * Opens the file, turning SQLite's open errors into typed refusals. Read-only opens (verify,
 * prove) must leave the file as they found it: no tables created, no switch to WAL, so a file
 * without the audit tables (a missing or empty one, too) is refused as not_found.
 */
function openDatabase(path: string, readonly: boolean): Database.Database {
  let db: Database.Database | undefined;
  // SQLite opens a directory read-only and fails later with an I/O error: refuse it here.
  if (path !== ':memory:' && statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new AuditError('not_found', `no audit log at ${path} (it is a directory)`);
  try {
    db = new Database(path, { readonly, fileMustExist: readonly });
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma(`mmap_size = ${MMAP_BYTES}`);
    db.pragma(`cache_size = -${CACHE_KIB}`);
    if (readonly) {
      const found = db.prepare<string[], string>(`SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (${AUDIT_TABLES.map(() => '?').join(', ')})`).pluck().all(...AUDIT_TABLES);
      if (found.length !== AUDIT_TABLES.length) throw new AuditError('not_found', `no audit log in ${path} (the audit tables are missing)`);
    } else {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
    }
    return db;
  } catch (e) {
    if (db?.open) db.close();
    if (e instanceof AuditError) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'SQLITE_NOTADB') throw new AuditError('bad_config', `${path} is not an SQLite database`, { cause: e });
    if (code === 'SQLITE_CANTOPEN') throw new AuditError('not_found', `cannot open an audit log at ${path} (missing, a directory, or not readable)`, { cause: e });
    if (code === 'SQLITE_CORRUPT') throw new AuditError('store_corrupt', `${path} is a damaged SQLite database`, { cause: e });
    throw e;
  }
}

export class SqliteAuditStore implements AuditStore {
  readonly kind = 'sqlite' as const;
  readonly db: Database.Database;
  private readonly hasher: Hasher;
  private readonly path: string;
  private readonly stmt;
  private readonly appendTx: (leaves: Uint8Array[], leafHashes?: readonly Uint8Array[]) => AppendResult;
  /**
   * The head as this handle last wrote it, so an append need not decode the stored frontier
   * again: used only while the stored head still has the same size and root (another writer
   * or a rewrite behind this handle's back changes them).
   */
  private frontier: { frontier: Frontier; root: Uint8Array } | undefined;
  /** nodesRead[n]: the statement reading n nodes at once (prepared on first use). */
  private readonly nodesRead: Database.Statement<number[], Buffer | null>[] = [];
  /** nodesReadRow[n]: the same nodes as one row of n columns (null where missing). */
  private readonly nodesReadRow: Database.Statement<number[], (Buffer | null)[]>[] = [];

  constructor(options: SqliteAuditStoreOptions) {
    this.hasher = options.hasher;
    this.path = options.path;
    this.db = openDatabase(options.path, options.readonly ?? false);
    const db = this.db;
    this.stmt = {
      head: db.prepare<[], { size: number; frontier: Buffer; root: Buffer }>('SELECT size, frontier, root FROM audit_head WHERE id = 0'),
      headSizeRoot: db.prepare<[], { size: number; root: Buffer }>('SELECT size, root FROM audit_head WHERE id = 0'),
      putHead: db.prepare('INSERT INTO audit_head (id, size, frontier, root) VALUES (0, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier, root = excluded.root'),
      putEvent: db.prepare('INSERT INTO audit_events (idx, leaf) VALUES (?, ?)'),
      putNode: db.prepare('INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)'),
      getNode: db.prepare<[number, number], Buffer>('SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?').pluck(),
      leaves: db.prepare<[number, number], { idx: number; leaf: Buffer }>('SELECT idx, leaf FROM audit_events WHERE idx >= ? ORDER BY idx LIMIT ?'),
      leaf: db.prepare<[number], Buffer>('SELECT leaf FROM audit_events WHERE idx = ?').pluck(),
      putCheckpoint: db.prepare('INSERT INTO audit_checkpoints (size, note) VALUES (?, ?)'),
      latest: db.prepare<[], { size: number; note: string }>('SELECT size, note FROM audit_checkpoints ORDER BY size DESC, id DESC LIMIT 1'),
      list: db.prepare<[number, number], { size: number; note: string }>('SELECT size, note FROM audit_checkpoints WHERE size >= ? ORDER BY size, id LIMIT ?'),
    };
    this.appendTx = db
      .transaction((leaves: Uint8Array[], precomputed?: readonly Uint8Array[]): AppendResult => {
        const frontier = this.headFrontier();
        const first = frontier.size;
        const { nodes, leafHashes } = hashBatch(this.hasher, frontier, leaves, precomputed);
        leaves.forEach((leaf, i) => this.stmt.putEvent.run(first + i, leaf));
        for (const n of nodes) this.stmt.putNode.run(n.level, n.index, n.hash);
        const root = frontier.root();
        this.stmt.putHead.run(frontier.size, encodeFrontier(frontier), root);
        this.frontier = { frontier, root };
        return { first, size: frontier.size, root, leafHashes };
      })
      .immediate as unknown as (leaves: Uint8Array[], leafHashes?: readonly Uint8Array[]) => AppendResult;
  }

  /** The frontier to append to, inside the append transaction (a copy: a rollback leaves the cache as it was). */
  private headFrontier(): Frontier {
    const cached = this.frontier;
    if (cached) {
      const row = this.stmt.headSizeRoot.get();
      if (row && row.size === cached.frontier.size && bytesEqual(row.root, cached.root)) return cached.frontier.clone();
    }
    return this.readFrontier();
  }

  private readFrontier(): Frontier {
    const row = this.stmt.head.get();
    if (!row) return Frontier.empty(this.hasher);
    return decodeHeadFrontier(this.hasher, row.size, toBytes(row.frontier), toBytes(row.root));
  }

  async append(leaves: Uint8Array[], leafHashes?: readonly Uint8Array[]): Promise<AppendResult> {
    checkBatch(leaves, leafHashes);
    try {
      return this.appendTx(leaves, leafHashes);
    } catch (e) {
      this.frontier = undefined; // rolled back: the next append starts from the stored head
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new AuditError('store_conflict', 'an index or node already exists: the store is inconsistent');
      throw e;
    }
  }

  async head(): Promise<Head> {
    const row = this.stmt.head.get();
    return row ? { size: row.size, root: toBytes(row.root) } : { size: 0, root: this.hasher.emptyRoot() };
  }

  async storedFrontier(): Promise<Uint8Array | null> {
    const row = this.stmt.head.get();
    return row ? toBytes(row.frontier) : null;
  }

  async getNodes(refs: NodeRef[]): Promise<Map<string, Uint8Array>> {
    return this.getNodesSync(refs);
  }

  async getNodeList(refs: NodeRef[]): Promise<(Uint8Array | null)[]> {
    return this.getNodeListSync(refs);
  }

  /** Synchronous read for hot loops (proof generation in-process). */
  getNodesSync(refs: NodeRef[]): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    this.getNodeListSync(refs).forEach((h, i) => {
      if (h) out.set(nodeKey(refs[i]!.level, refs[i]!.index), h);
    });
    return out;
  }

  /** The nodes in the order of `refs`, null where missing. */
  getNodeListSync(refs: NodeRef[]): (Uint8Array | null)[] {
    const out: (Uint8Array | null)[] = [];
    for (let at = 0; at < refs.length; at += NODES_PER_READ) {
      const n = Math.min(NODES_PER_READ, refs.length - at);
      const params: number[] = [];
      for (let i = at; i < at + n; i++) params.push(refs[i]!.level, refs[i]!.index);
      const joined = this.nodesStatement(this.nodesRead, n, true).get(...params);
      if (joined instanceof Uint8Array && joined.length === n * HASH_SIZE) {
        const all = toBytes(joined);
        for (let i = 0; i < n; i++) out.push(all.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE));
        continue;
      }
      for (const h of this.nodesStatement(this.nodesReadRow, n, false).get(...params)!) out.push(h ? toBytes(h) : null);
    }
    return out;
  }

  /** The statement selecting n nodes, joined into one blob or as n columns (prepared once). */
  private nodesStatement<T>(cache: Database.Statement<number[], T>[], n: number, joined: boolean): Database.Statement<number[], T> {
    let stmt = cache[n];
    if (!stmt) {
      const one = Array.from({ length: n }, () => '(SELECT hash FROM audit_nodes WHERE level = ? AND idx = ?)');
      stmt = joined ? this.db.prepare<number[], T>(`SELECT CAST(${one.join(' || ')} AS BLOB)`).pluck() : this.db.prepare<number[], T>(`SELECT ${one.join(', ')}`).raw();
      cache[n] = stmt;
    }
    return stmt;
  }

  async readLeaves(from: number, limit: number): Promise<StoredLeaf[]> {
    checkPage(from, limit);
    return this.stmt.leaves.all(from, limit).map((r) => ({ index: r.idx, leaf: toBytes(r.leaf) }));
  }

  async readLeaf(index: number): Promise<Uint8Array | null> {
    const b = this.stmt.leaf.get(index);
    return b ? toBytes(b) : null;
  }

  async putCheckpoint(cp: StoredCheckpoint): Promise<void> {
    this.stmt.putCheckpoint.run(cp.size, cp.note);
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    return this.stmt.latest.get() ?? null;
  }

  async listCheckpoints(fromSize: number, limit: number): Promise<StoredCheckpoint[]> {
    checkPage(fromSize, limit);
    return this.stmt.list.all(fromSize, limit);
  }

  async byteSize(): Promise<number> {
    if (this.path === ':memory:') return 0;
    this.db.pragma('wal_checkpoint(TRUNCATE)');
    return statSync(this.path).size;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
