import pg from 'pg';
import { AuditError } from '../audit/errors.ts';
import type { Hasher } from '../audit/merkle.ts';
import { Frontier, nodeKey, type NodeRef } from '../audit/tree.ts';
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
 * PostgreSQL adapter (`pg`), for logs shared by several gateways.
 *
 * One transaction per batch. Appenders serialize on a transaction-scoped advisory lock (keyed by
 * the schema name) and then read the head row inside the lock, so indexes never conflict across
 * processes; the head row is also locked FOR UPDATE as a second line of defence. Writes set
 * synchronous_commit=on for their transaction (not trusting the server or role default), so
 * COMMIT returns only after the WAL is flushed: acknowledged is durable.
 * Events and nodes are written with one INSERT … SELECT unnest(…) each (a round trip per table).
 */
const IDENT = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresAuditStoreOptions {
  hasher: Hasher;
  /** A connection string (DATABASE_URL), or an existing pool the caller owns. */
  connectionString?: string;
  pool?: pg.Pool;
  /** Schema holding the tables; created when missing. */
  schema?: string;
  /** Pool size when we create the pool. */
  maxConnections?: number;
  /** Connection timeout when we create the pool (pg's default waits forever). */
  connectionTimeoutMillis?: number;
  /** Open without creating the schema or tables (verify, prove): missing tables are not_found. */
  readonly?: boolean;
}

export class PostgresAuditStore implements AuditStore {
  readonly kind = 'postgres' as const;
  readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly hasher: Hasher;
  readonly schema: string;
  private readonly t: { events: string; nodes: string; head: string; checkpoints: string };
  private readonly lockKey: string;

  private constructor(options: PostgresAuditStoreOptions) {
    this.hasher = options.hasher;
    this.schema = options.schema ?? 'public';
    if (!IDENT.test(this.schema)) throw new AuditError('bad_config', 'schema name must be a lower-case SQL identifier');
    this.ownsPool = !options.pool;
    this.pool = options.pool ?? new pg.Pool({
        connectionString: options.connectionString,
        max: options.maxConnections ?? 4,
        ...(options.connectionTimeoutMillis ? { connectionTimeoutMillis: options.connectionTimeoutMillis } : {}),
      });
    const s = `"${this.schema}"`;
    this.t = { events: `${s}.audit_events`, nodes: `${s}.audit_nodes`, head: `${s}.audit_head`, checkpoints: `${s}.audit_checkpoints` };
    this.lockKey = `talos.audit.${this.schema}`;
  }

  static async open(options: PostgresAuditStoreOptions): Promise<PostgresAuditStore> {
    const store = new PostgresAuditStore(options);
    try {
      if (options.readonly) await store.checkTables();
      else await store.migrate();
    } catch (e) {
      await store.close();
      throw e;
    }
    return store;
  }

  /** Read-only open: the tables must exist already (nothing is created). */
  private async checkTables(): Promise<void> {
    const r = await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1 AND tablename = ANY($2)', [
      this.schema,
      ['audit_events', 'audit_nodes', 'audit_head', 'audit_checkpoints'],
    ]);
    if (r.rows[0]?.n !== 4) throw new AuditError('not_found', `no audit log in schema ${this.schema} (the audit tables are missing)`);
  }

  private async migrate(): Promise<void> {
    const { t } = this;
    await this.inTransaction(async (c) => {
      // Serialize concurrent migrations of the same schema (several gateways starting at once).
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.lockKey]);
      await c.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${t.events} (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL)`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${t.nodes} (level SMALLINT NOT NULL, idx BIGINT NOT NULL, hash BYTEA NOT NULL, PRIMARY KEY (level, idx))`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${t.head} (id SMALLINT PRIMARY KEY CHECK (id = 0), size BIGINT NOT NULL, frontier BYTEA NOT NULL, root BYTEA NOT NULL)`);
      await c.query(`CREATE TABLE IF NOT EXISTS ${t.checkpoints} (id BIGSERIAL PRIMARY KEY, size BIGINT NOT NULL, note TEXT NOT NULL)`);
      await c.query(`CREATE INDEX IF NOT EXISTS audit_checkpoints_size ON ${t.checkpoints} (size)`);
    });
  }

  /**
   * Runs `body` in one transaction on one pooled connection, rolled back if it throws. `durable`:
   * the commit waits for the WAL flush (synchronous_commit on), whatever the server, role or
   * session default says, so that an acknowledged append or checkpoint survives a crash.
   */
  private async inTransaction<T>(body: (c: pg.PoolClient) => Promise<T>, durable = false): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      if (durable) await c.query('SET LOCAL synchronous_commit = on');
      const out = await body(c);
      await c.query('COMMIT');
      return out;
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    } finally {
      c.release();
    }
  }

  async append(leaves: Uint8Array[], precomputed?: readonly Uint8Array[]): Promise<AppendResult> {
    checkBatch(leaves, precomputed);
    const { t } = this;
    try {
      return await this.inTransaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [this.lockKey]);
        const row = await c.query<{ size: string; frontier: Buffer; root: Buffer }>(`SELECT size, frontier, root FROM ${t.head} WHERE id = 0 FOR UPDATE`);
        const h = row.rows[0];
        const frontier = h ? decodeHeadFrontier(this.hasher, Number(h.size), toBytes(h.frontier), toBytes(h.root)) : Frontier.empty(this.hasher);
        const first = frontier.size;
        const { nodes, leafHashes } = hashBatch(this.hasher, frontier, leaves, precomputed);
        await c.query(`INSERT INTO ${t.events} (idx, leaf) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, [
          leaves.map((_, i) => String(first + i)),
          leaves.map((l) => Buffer.from(l.buffer, l.byteOffset, l.byteLength)),
        ]);
        await c.query(`INSERT INTO ${t.nodes} (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`, [
          nodes.map((n) => n.level),
          nodes.map((n) => String(n.index)),
          nodes.map((n) => Buffer.from(n.hash)),
        ]);
        const root = frontier.root();
        await c.query(
          `INSERT INTO ${t.head} (id, size, frontier, root) VALUES (0, $1, $2, $3) ON CONFLICT (id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier, root = excluded.root`,
          [String(frontier.size), Buffer.from(encodeFrontier(frontier)), Buffer.from(root)],
        );
        return { first, size: frontier.size, root, leafHashes };
      }, true);
    } catch (e) {
      if ((e as { code?: string }).code === '23505') throw new AuditError('store_conflict', 'an index or node already exists: the store is inconsistent');
      throw e;
    }
  }

  async head(): Promise<Head> {
    const r = await this.pool.query<{ size: string; root: Buffer }>(`SELECT size, root FROM ${this.t.head} WHERE id = 0`);
    const row = r.rows[0];
    return row ? { size: Number(row.size), root: toBytes(row.root) } : { size: 0, root: this.hasher.emptyRoot() };
  }

  async storedFrontier(): Promise<Uint8Array | null> {
    const r = await this.pool.query<{ frontier: Buffer }>(`SELECT frontier FROM ${this.t.head} WHERE id = 0`);
    return r.rows[0] ? toBytes(r.rows[0].frontier) : null;
  }

  async getNodes(refs: NodeRef[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    if (refs.length === 0) return out;
    const r = await this.pool.query<{ level: number; idx: string; hash: Buffer }>(
      `SELECT n.level, n.idx, n.hash FROM ${this.t.nodes} n JOIN unnest($1::smallint[], $2::bigint[]) AS q(level, idx) ON n.level = q.level AND n.idx = q.idx`,
      [refs.map((x) => x.level), refs.map((x) => String(x.index))],
    );
    for (const row of r.rows) out.set(nodeKey(row.level, Number(row.idx)), toBytes(row.hash));
    return out;
  }

  async readLeaves(from: number, limit: number): Promise<StoredLeaf[]> {
    checkPage(from, limit);
    const r = await this.pool.query<{ idx: string; leaf: Buffer }>(`SELECT idx, leaf FROM ${this.t.events} WHERE idx >= $1 ORDER BY idx LIMIT $2`, [String(from), limit]);
    return r.rows.map((row) => ({ index: Number(row.idx), leaf: toBytes(row.leaf) }));
  }

  async readLeaf(index: number): Promise<Uint8Array | null> {
    const r = await this.pool.query<{ leaf: Buffer }>(`SELECT leaf FROM ${this.t.events} WHERE idx = $1`, [String(index)]);
    return r.rows[0] ? toBytes(r.rows[0].leaf) : null;
  }

  async putCheckpoint(cp: StoredCheckpoint): Promise<void> {
    // A transaction only so that the durable commit applies: a returned signed checkpoint is kept.
    await this.inTransaction(async (c) => {
      await c.query(`INSERT INTO ${this.t.checkpoints} (size, note) VALUES ($1, $2)`, [String(cp.size), cp.note]);
    }, true);
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    const r = await this.pool.query<{ size: string; note: string }>(`SELECT size, note FROM ${this.t.checkpoints} ORDER BY size DESC, id DESC LIMIT 1`);
    return r.rows[0] ? { size: Number(r.rows[0].size), note: r.rows[0].note } : null;
  }

  async listCheckpoints(fromSize: number, limit: number): Promise<StoredCheckpoint[]> {
    checkPage(fromSize, limit);
    const r = await this.pool.query<{ size: string; note: string }>(`SELECT size, note FROM ${this.t.checkpoints} WHERE size >= $1 ORDER BY size, id LIMIT $2`, [String(fromSize), limit]);
    return r.rows.map((row) => ({ size: Number(row.size), note: row.note }));
  }

  async byteSize(): Promise<number> {
    const r = await this.pool.query<{ bytes: string }>(
      `SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS bytes FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`,
      [this.schema],
    );
    return Number(r.rows[0]?.bytes ?? 0);
  }

  private closed = false;

  /** Idempotent; ends the pool only when this store created it. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsPool) await this.pool.end();
  }
}
