import t from 'tap';
import pg from 'pg';
import { PostgresAuditStore } from './audit-postgres.ts';
import { auditStoreContract, hasher } from './audit-store.contract.ts';

/** Real PostgreSQL: DATABASE_URL, else the local server (trust auth, user postgres, db test). */
const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const admin = new pg.Pool({ connectionString: url, max: 2 });
const run = `audit_t${process.pid}_${Date.now().toString(36)}`;
let n = 0;
const schemas: string[] = [];
t.teardown(async () => {
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await admin.end();
});

auditStoreContract(t, async () => {
  const schema = `${run}_${n++}`;
  schemas.push(schema);
  const store = await PostgresAuditStore.open({ connectionString: url, schema, hasher });
  const opened: PostgresAuditStore[] = [store];
  const reopen = async () => {
    const s = await PostgresAuditStore.open({ connectionString: url, schema, hasher });
    opened.push(s);
    return s;
  };
  const q = (sql: string, params: unknown[]) => admin.query(sql, params);
  const tb = (name: string) => `"${schema}".${name}`;
  return {
    store,
    spec: `${url}${url.includes('?') ? '&' : '?'}schema=${schema}`,
    second: reopen,
    async restart() {
      await store.close();
      return reopen();
    },
    tamper: {
      async setLeaf(index, leaf) {
        await q(`INSERT INTO ${tb('audit_events')} (idx, leaf) VALUES ($1, $2) ON CONFLICT (idx) DO UPDATE SET leaf = excluded.leaf`, [index, Buffer.from(leaf)]);
      },
      async deleteLeaf(index) {
        await q(`DELETE FROM ${tb('audit_events')} WHERE idx = $1`, [index]);
      },
      async moveLeaf(from, to) {
        await q(`UPDATE ${tb('audit_events')} SET idx = $1 WHERE idx = $2`, [to, from]);
      },
      async setCheckpointNote(size, note) {
        await q(`UPDATE ${tb('audit_checkpoints')} SET note = $1 WHERE size = $2`, [note, size]);
      },
      async wipeTree() {
        await admin.query(`DELETE FROM ${tb('audit_events')}; DELETE FROM ${tb('audit_nodes')}; DELETE FROM ${tb('audit_head')};`);
      },
    },
    async cleanup() {
      for (const s of opened) await s.close();
    },
  };
}, { durable: true });
