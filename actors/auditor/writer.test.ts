import t from 'tap';
import type { AppendResult } from '../../runtime/store/audit-store.ts';
import { GroupCommitWriter } from './writer.ts';

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** A store whose commits are held until the test releases them, so batching is observable. */
function harness(limits: { maxBatch: number; maxQueue: number }, opts: { failCommit?: boolean } = {}) {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const commits: number[] = [];
  let size = 0;
  const writer = new GroupCommitWriter(
    (leaves) =>
      new Promise<AppendResult>((resolve, reject) => {
        batches.push(leaves.map((l) => l[0]!));
        releases.push(() => {
          if (opts.failCommit) return reject(new Error('disk full'));
          const first = size;
          size += leaves.length;
          resolve({ first, size, root: new Uint8Array(32), leafHashes: leaves });
        });
      }),
    limits,
    (n) => commits.push(n),
  );
  const acked: number[] = [];
  const refused: { id: number; code: string }[] = [];
  const failed: number[] = [];
  let id = 0;
  const append = () => {
    const i = id++;
    writer.append(new Uint8Array([i])).then(
      (a) => {
        if (a.index !== acked.length) throw new Error(`index ${a.index} out of order`);
        acked.push(i);
      },
      (e: { code?: string }) => (e.code ? refused.push({ id: i, code: e.code }) : failed.push(i)),
    );
    return i;
  };
  const releaseAll = async () => {
    await flush();
    while (releases.length > 0) {
      releases.shift()!();
      await flush();
    }
  };
  return { writer, batches, commits, acked, refused, failed, append, releaseAll };
}

t.test('group commit: appends that arrive during a write form the next batch', async (t) => {
  const h = harness({ maxBatch: 3, maxQueue: 100 });
  h.append();
  await flush(); // the first write starts alone
  for (let i = 0; i < 5; i++) h.append();
  t.same(h.batches, [[0]], 'first write holds only the first event');
  await h.releaseAll();
  t.same(h.batches, [[0], [1, 2, 3], [4, 5]], 'then batches of at most maxBatch, in order');
  t.same(h.acked, [0, 1, 2, 3, 4, 5], 'every request acknowledged once, in order, with its index');
  t.same(h.commits, [1, 3, 2], 'each commit reported with its size');
  t.equal(h.writer.committed, 6);
});

t.test('appends of one turn share one transaction', async (t) => {
  const h = harness({ maxBatch: 100, maxQueue: 100 });
  for (let i = 0; i < 10; i++) h.append();
  await h.releaseAll();
  t.same(h.batches, [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]);
});

t.test('bounded queue: refuses with audit_backpressure, never drops silently', async (t) => {
  const h = harness({ maxBatch: 2, maxQueue: 3 });
  h.append();
  await flush(); // [0] is being written: it no longer counts against the queue
  for (let i = 0; i < 7; i++) h.append();
  await flush();
  t.same(h.refused.map((r) => r.id), [4, 5, 6, 7]);
  t.ok(h.refused.every((r) => r.code === 'audit_backpressure'));
  await h.releaseAll();
  t.same(h.acked, [0, 1, 2, 3]);
  t.equal(h.acked.length + h.refused.length, 8, 'every request has an outcome');
});

t.test('a failed commit rejects exactly its batch, and the writer carries on', async (t) => {
  const h = harness({ maxBatch: 10, maxQueue: 100 }, { failCommit: true });
  h.append();
  h.append();
  await h.releaseAll();
  t.same(h.failed, [0, 1]);
  t.same(h.commits, [], 'a failed commit is not reported as committed');
  h.append();
  await h.releaseAll();
  t.same(h.failed, [0, 1, 2], 'later appends are still written (and here fail again)');
});

t.test('close waits for everything queued, then refuses', async (t) => {
  const h = harness({ maxBatch: 2, maxQueue: 100 });
  for (let i = 0; i < 5; i++) h.append();
  let closed = false;
  const closing = h.writer.close().then(() => (closed = true));
  h.append();
  await flush();
  t.same(h.refused, [{ id: 5, code: 'audit_closed' }]);
  t.notOk(closed, 'not closed while writes are pending');
  await h.releaseAll();
  await closing;
  t.same(h.acked, [0, 1, 2, 3, 4], 'queued requests are still committed');
  t.ok(closed);
  await h.writer.close(); // closing twice, idle: resolves at once
});
