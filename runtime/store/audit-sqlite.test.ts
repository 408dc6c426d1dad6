import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { auditStoreContract, crypto, hasher, type Tamper } from './audit-store.contract.ts';
import { AuditLog } from '../audit/log.ts';
import { verifyStoredLog } from '../audit/verify.ts';
import { sampleEvent } from '../audit/testing.ts';

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

// Stored interior nodes and the head frontier are what proofs and the next append are built
// from; a change to either (events and root untouched) must show in verify and stop appends.
t.test('verify and append catch a changed interior node or head frontier', async (t) => {
  const origin = 'talos.test/tamper';
  const seed = new Uint8Array(32).fill(7);
  const publicKey = crypto.ed25519PublicKey(seed);
  const setup = async (name: string) => {
    const path = join(dir, name);
    const store = new SqliteAuditStore({ path, hasher });
    const log = new AuditLog(store, hasher);
    await log.appendEvents(Array.from({ length: 10 }, (_, i) => sampleEvent(i)));
    await log.checkpoint(crypto, { origin, seed });
    t.ok((await verifyStoredLog(store, { crypto, hasher, origin, publicKey })).ok, 'clean log verifies');
    return { path, store };
  };

  const a = await setup('tamper-node.db');
  a.store.db.prepare('UPDATE audit_nodes SET hash = ? WHERE level = 1 AND idx = 0').run(Buffer.alloc(32, 0xaa));
  const ra = await verifyStoredLog(a.store, { crypto, hasher, origin, publicKey });
  t.notOk(ra.ok);
  t.match(ra.problems, [{ index: null, what: /tree node 1\/0 \(events \[0, 2\)\) does not match/ }]);
  await a.store.close();

  const b = await setup('tamper-frontier.db');
  const row = b.store.db.prepare('SELECT frontier FROM audit_head').get() as { frontier: Buffer };
  const f = Buffer.from(row.frontier);
  f.fill(0xbb, 0, 32);
  b.store.db.prepare('UPDATE audit_head SET frontier = ?').run(f);
  await b.store.close();
  // A fresh handle (no cached frontier) reads the tampered blob.
  const store = new SqliteAuditStore({ path: b.path, hasher });
  t.teardown(() => store.close());
  const rb = await verifyStoredLog(store, { crypto, hasher, origin, publicKey });
  t.notOk(rb.ok);
  t.match(rb.problems, [{ what: /head frontier does not match the events/ }]);
  const before = (await store.head()).size;
  await t.rejects(new AuditLog(store, hasher).appendEvents([sampleEvent(10)]), { name: 'AuditError', code: 'store_corrupt' });
  t.equal((await store.head()).size, before, 'nothing appended');
  t.equal(await store.readLeaf(10), null);
});
