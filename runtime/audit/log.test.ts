import t from 'tap';
import { createHash } from 'node:crypto';
import { createHasher } from './merkle.ts';
import { MemoryTree } from './memory-tree.ts';
import { AuditLog } from './log.ts';
import { nodeKey, type NodeRef } from './tree.ts';
import type { AuditStore } from '../store/audit-store.ts';
import { SqliteAuditStore } from '../store/audit-sqlite.ts';

// Proofs served from the store (batched node reads, per-level cache, fold cache) must equal the
// in-memory reference tree's, for every leaf and several tree sizes, with and without the
// store's optional getNodeList fast path.
const hasher = createHasher((d) => new Uint8Array(createHash('sha256').update(d).digest()));
const SIZE = 300;
const leaf = (i: number) => new TextEncoder().encode(`leaf ${i}`);

async function setup() {
  const store = new SqliteAuditStore({ path: ':memory:', hasher });
  const ref = new MemoryTree(hasher);
  for (let i = 0; i < SIZE; ) {
    const n = Math.min(1 + (i % 37), SIZE - i); // uneven batches
    await store.append(Array.from({ length: n }, (_, j) => leaf(i + j)));
    for (let j = 0; j < n; j++) ref.appendLeaf(leaf(i + j));
    i += n;
  }
  return { store, ref };
}

/** The same store seen through the port without the optional fast path. */
function withoutNodeList(store: AuditStore): AuditStore {
  return new Proxy(store, {
    get: (target, p) => (p === 'getNodeList' ? undefined : Reflect.get(target, p, target)),
  });
}

t.test('inclusion and consistency proofs equal the reference tree', async (t) => {
  const { store, ref } = await setup();
  t.teardown(() => store.close());
  for (const [name, log] of [
    ['getNodeList', new AuditLog(store, hasher)],
    ['getNodes fallback', new AuditLog(withoutNodeList(store), hasher)],
  ] as const) {
    for (const size of [1, 2, 3, 16, 17, 100, 255, 256, 257, SIZE]) {
      for (let i = 0; i < size; i++) t.same(await log.inclusionProof(i, size), ref.inclusionProof(i, size), `${name}: inclusion ${i}/${size}`);
      for (const old of [1, 7, 16, size - 1]) {
        if (old >= 1 && old <= size) t.same(await log.consistencyProof(old, size), ref.consistencyProof(old, size), `${name}: consistency ${old}/${size}`);
      }
      t.same(await log.rootAt(size), ref.rootAt(size), `${name}: root at ${size}`);
    }
  }
});

t.test('sqlite node reads: in order, across batches, null where missing, plain copies', async (t) => {
  const { store, ref } = await setup();
  t.teardown(() => store.close());
  const refs: NodeRef[] = [];
  for (let i = 0; i < 12; i++) refs.push({ level: i % 4, index: 3 * i });
  refs.splice(5, 0, { level: 0, index: SIZE }); // not written yet
  refs.push({ level: 9, index: 0 }, { level: 2, index: 1 });
  const list = await store.getNodeList(refs);
  const map = await store.getNodes(refs);
  t.equal(list.length, refs.length);
  refs.forEach((r, i) => {
    const want = ref.nodes.get(nodeKey(r.level, r.index));
    const got = list[i];
    if (!want) {
      t.equal(got, null, `missing ${r.level}/${r.index}`);
      t.notOk(map.has(nodeKey(r.level, r.index)));
      return;
    }
    t.same(got, want, `node ${r.level}/${r.index}`);
    t.same(map.get(nodeKey(r.level, r.index)), want);
    t.equal(Object.getPrototypeOf(got), Uint8Array.prototype, 'a plain Uint8Array');
    t.equal(got!.buffer.byteLength, 32, 'its own buffer');
  });
  t.ok(list.filter((h) => h === null).length === 2);
});

t.test('a missing stored node is reported as corruption', async (t) => {
  const { store, ref } = await setup();
  t.teardown(() => store.close());
  store.db.prepare('DELETE FROM audit_nodes WHERE level = 1 AND idx = 2').run();
  for (const log of [new AuditLog(store, hasher), new AuditLog(withoutNodeList(store), hasher)]) {
    await t.rejects(log.inclusionProof(6, SIZE), { code: 'store_corrupt', message: /1\/2/ });
    t.same(await log.inclusionProof(298, 299), ref.inclusionProof(298, 299), 'a proof that does not need node 1/2 is still served');
  }
});
