import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { auditStoreContract, hasher, type Tamper } from './audit-store.contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'talos-audit-sqlite-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** Raw SQL edits behind the store's back. */
function sqlTamper(store: SqliteAuditStore): Tamper {
  const db = store.db;
  return {
    async setLeaf(index, leaf) {
      db.prepare('INSERT INTO audit_events (idx, leaf) VALUES (?, ?) ON CONFLICT (idx) DO UPDATE SET leaf = excluded.leaf').run(index, leaf);
    },
    async deleteLeaf(index) {
      db.prepare('DELETE FROM audit_events WHERE idx = ?').run(index);
    },
    async moveLeaf(from, to) {
      db.prepare('UPDATE audit_events SET idx = ? WHERE idx = ?').run(to, from);
    },
    async setCheckpointNote(size, note) {
      db.prepare('UPDATE audit_checkpoints SET note = ? WHERE size = ?').run(note, size);
    },
    async wipeTree() {
      db.exec('DELETE FROM audit_events; DELETE FROM audit_nodes; DELETE FROM audit_head;');
    },
  };
}

t.test('sqlite file', async (t) => {
  auditStoreContract(
    t,
    async () => {
      const path = join(dir, `log-${n++}.db`);
      const store = new SqliteAuditStore({ path, hasher });
      const opened: SqliteAuditStore[] = [store];
      const reopen = () => {
        const s = new SqliteAuditStore({ path, hasher });
        opened.push(s);
        return s;
      };
      return {
        store,
        spec: `sqlite:${path}`,
        second: async () => reopen(),
        async restart() {
          await store.close();
          return reopen();
        },
        tamper: sqlTamper(store),
        async cleanup() {
          for (const s of opened) await s.close();
        },
      };
    },
    { durable: true },
  );
});

// `talos audit --store memory`: one handle, gone with the process (no restart case).
t.test('sqlite in memory', async (t) => {
  auditStoreContract(
    t,
    async () => {
      const store = new SqliteAuditStore({ path: ':memory:', hasher });
      return { store, tamper: sqlTamper(store), cleanup: () => store.close() };
    },
    { durable: false },
  );
});

t.test('sqlite durability settings', async (t) => {
  const store = new SqliteAuditStore({ path: join(dir, 'pragmas.db'), hasher });
  t.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(store.db.pragma('synchronous', { simple: true }), 2, 'synchronous = FULL');
  await store.close();
});
