import t from 'tap';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { auditorMachine, type AuditorConfig, type CommitResult } from './auditor.machine.ts';

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** Commits are held until the test releases them, so batching is observable. */
function harness(config: Partial<AuditorConfig>, opts: { failCommit?: boolean; failSign?: boolean } = {}) {
  const clock = new SimulatedClock();
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const acked: number[] = [];
  const refused: { id: number; code: string }[] = [];
  const failed: number[] = [];
  const signed: number[] = [];
  const errors: string[] = [];
  let size = 0;
  const machine = auditorMachine.provide({
    actors: {
      commitBatch: fromPromise<CommitResult, { leaves: Uint8Array[] }>(
        ({ input }) =>
          new Promise((resolve, reject) => {
            batches.push(input.leaves.map((l) => l[0]!));
            releases.push(() => {
              if (opts.failCommit) return reject(new Error('disk full'));
              const first = size;
              size += input.leaves.length;
              resolve({ first, size, leafHashes: input.leaves });
            });
          }),
      ),
      signCheckpoint: fromPromise<{ size: number }, void>(async () => {
        if (opts.failSign) throw new Error('no key');
        signed.push(size);
        return { size };
      }),
    },
    actions: {
      acknowledge: (_, p) => void acked.push(...p.ids),
      refuse: (_, p) => void refused.push(...p.ids.map((id) => ({ id, code: p.code }))),
      fail: (_, p) => void failed.push(...p.ids),
      reportError: (_, p) => void errors.push(p.what),
    },
  });
  const actor = createActor(machine, { input: { config }, clock });
  actor.start();
  let id = 0;
  const append = () => {
    const i = id++;
    actor.send({ type: 'auditor.append', items: [{ id: i, leaf: new Uint8Array([i]) }] });
    return i;
  };
  const releaseAll = async () => {
    while (releases.length > 0) {
      releases.shift()!();
      await flush();
    }
  };
  return { actor, clock, batches, acked, refused, failed, signed, errors, append, releaseAll };
}

t.test('group commit: appends that arrive during a write form the next batch', async (t) => {
  const h = harness({ maxBatch: 3, checkpointEveryMs: 1000, checkpointEveryEvents: 1000 });
  h.append(); // starts a write alone
  for (let i = 0; i < 5; i++) h.append();
  await flush();
  t.same(h.batches, [[0]], 'first write holds only the first event');
  await h.releaseAll();
  t.same(h.batches, [[0], [1, 2, 3], [4, 5]], 'then batches of at most maxBatch, in order');
  t.same(h.acked, [0, 1, 2, 3, 4, 5], 'every request acknowledged once, in order');
});

t.test('bounded queue: refuses with audit_backpressure, never drops silently', async (t) => {
  const h = harness({ maxBatch: 2, maxQueue: 3, checkpointEveryMs: 1000, checkpointEveryEvents: 1000 });
  for (let i = 0; i < 8; i++) h.append();
  // 2 in flight... no: the first append starts a batch of 1; 3 more queue; the rest are refused.
  t.same(h.refused.map((r) => r.code), ['audit_backpressure', 'audit_backpressure', 'audit_backpressure', 'audit_backpressure']);
  t.same(h.refused.map((r) => r.id), [4, 5, 6, 7]);
  await h.releaseAll();
  t.same(h.acked, [0, 1, 2, 3]);
  t.equal(h.acked.length + h.refused.length, 8, 'every request has an outcome');
});

t.test('a multi-request event is admitted up to the room left, the rest refused in order', async (t) => {
  const h = harness({ maxBatch: 2, maxQueue: 3, checkpointEveryMs: 1000, checkpointEveryEvents: 1000 });
  h.actor.send({ type: 'auditor.append', items: [10, 11, 12, 13, 14].map((id) => ({ id, leaf: new Uint8Array([id]) })) });
  t.same(h.refused, [{ id: 13, code: 'audit_backpressure' }, { id: 14, code: 'audit_backpressure' }]);
  await h.releaseAll();
  t.same(h.acked, [10, 11, 12]);
});

t.test('a failed commit rejects exactly its batch, and the auditor carries on', async (t) => {
  const h = harness({ maxBatch: 10, checkpointEveryMs: 1000, checkpointEveryEvents: 1000 }, { failCommit: true });
  h.append();
  h.append();
  await h.releaseAll();
  t.same(h.failed, [0, 1]);
  t.equal(h.actor.getSnapshot().status, 'active');
});

t.test('checkpoint every N ms when dirty, and every M events', async (t) => {
  const h = harness({ maxBatch: 100, checkpointEveryMs: 1000, checkpointEveryEvents: 5 });
  h.clock.increment(1000);
  await flush();
  t.same(h.signed, [], 'nothing appended: no checkpoint');
  h.append();
  await h.releaseAll();
  h.clock.increment(999);
  await flush();
  t.same(h.signed, [], 'not before the interval');
  h.clock.increment(1);
  await flush();
  t.same(h.signed, [1], 'signed after the interval');
  for (let i = 0; i < 6; i++) h.append();
  await h.releaseAll();
  t.same(h.signed, [1, 7], 'M events committed: signed without waiting');
  h.actor.send({ type: 'auditor.checkpoint' });
  await flush();
  t.same(h.signed, [1, 7], 'explicit request with nothing new: no checkpoint');
});

t.test('close drains the queue, signs a final checkpoint, refuses later appends', async (t) => {
  const h = harness({ maxBatch: 2, checkpointEveryMs: 60_000, checkpointEveryEvents: 1000 });
  for (let i = 0; i < 5; i++) h.append();
  h.actor.send({ type: 'auditor.close' });
  h.append();
  t.same(h.refused, [{ id: 5, code: 'audit_closed' }]);
  await h.releaseAll();
  await flush();
  t.same(h.acked, [0, 1, 2, 3, 4], 'queued requests are still committed');
  t.same(h.signed, [5], 'final checkpoint');
  t.equal(h.actor.getSnapshot().status, 'done');
});

t.test('a failing signer is reported and does not block closing', async (t) => {
  const h = harness({ maxBatch: 2, checkpointEveryMs: 60_000, checkpointEveryEvents: 1 }, { failSign: true });
  h.append();
  await h.releaseAll();
  t.ok(h.errors.includes('checkpoint'));
  h.actor.send({ type: 'auditor.close' });
  await flush();
  t.equal(h.actor.getSnapshot().status, 'done');
});
