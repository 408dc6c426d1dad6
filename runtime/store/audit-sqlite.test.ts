import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { auditStoreContract, hasher } from './audit-store.contract.ts';

const dir = mkdtempSync(join(tmpdir(), 'talos-audit-sqlite-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

auditStoreContract(t, async () => {
  const path = join(dir, `log-${n++}.db`);
  const store = new SqliteAuditStore({ path, hasher });
  const db = store.db;
  const opened: SqliteAuditStore[] = [store];
  return {
    store,
    spec: `sqlite:${path}`,
    async second() {
      const s = new SqliteAuditStore({ path, hasher });
      opened.push(s);
      return s;
    },
    tamper: {
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
    },
    async cleanup() {
      for (const s of opened) await s.close();
    },
  };
});

t.test('sqlite durability settings', async (t) => {
  const store = new SqliteAuditStore({ path: join(dir, 'pragmas.db'), hasher });
  t.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  t.equal(store.db.pragma('synchronous', { simple: true }), 2, 'synchronous = FULL');
  await store.close();
});
