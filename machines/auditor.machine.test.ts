import t from 'tap';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { auditorMachine, type AuditorConfig } from './auditor.machine.ts';

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

/** The machine alone: the test plays the writer (commits, drain) and records the effects. */
function harness(config: Partial<AuditorConfig>, opts: { failSign?: boolean; holdDrain?: boolean } = {}) {
  const clock = new SimulatedClock();
  let size = 0;
  const signed: number[] = [];
  const errors: string[] = [];
  let starts = 0;
  let releaseDrain: () => void = () => {};
  const machine = auditorMachine.provide({
    actors: {
      signCheckpoint: fromPromise<{ size: number }, void>(async () => {
        if (opts.failSign) throw new Error('no key');
        signed.push(size);
        return { size };
      }),
      drainWriter: fromPromise<void, void>(() => (opts.holdDrain ? new Promise<void>((r) => (releaseDrain = r)) : Promise.resolve())),
    },
    actions: {
      checkpointStarted: () => void starts++,
      reportError: (_, p) => void errors.push(p.what),
    },
  });
  const actor = createActor(machine, { input: { config }, clock });
  actor.start();
  /** A commit of n events, reported as the binding does (committed once per checkpoint cycle). */
  const commit = (n: number) => {
    size += n;
    actor.send({ type: 'auditor.committed' });
  };
  return { actor, clock, signed, errors, commit, starts: () => starts, releaseDrain: () => releaseDrain() };
}

t.test('a checkpoint is signed an interval after the first commit it covers', async (t) => {
  const h = harness({ checkpointEveryMs: 1000 });
  h.clock.increment(5000);
  await flush();
  t.same(h.signed, [], 'nothing committed: no checkpoint');
  t.ok(h.actor.getSnapshot().matches('clean'));
  h.commit(1);
  h.clock.increment(999);
  await flush();
  t.same(h.signed, [], 'not before the interval');
  h.commit(2);
  h.clock.increment(1);
  await flush();
  t.same(h.signed, [3], 'one checkpoint covering both commits');
  t.ok(h.actor.getSnapshot().matches('clean'));
  t.equal(h.actor.getSnapshot().context.checkpoints, 1);
  t.equal(h.actor.getSnapshot().context.checkpointSize, 3);
});

t.test('due and explicit requests sign at once; an explicit request with nothing new does not', async (t) => {
  const h = harness({ checkpointEveryMs: 60_000 });
  h.commit(5);
  h.actor.send({ type: 'auditor.due' });
  await flush();
  t.same(h.signed, [5], 'due: signed without waiting');
  h.actor.send({ type: 'auditor.checkpoint' });
  await flush();
  t.same(h.signed, [5], 'clean: no checkpoint');
  h.commit(1);
  h.actor.send({ type: 'auditor.checkpoint' });
  await flush();
  t.same(h.signed, [5, 6]);
  t.equal(h.starts(), 2, 'the writer was told each time a checkpoint started');
});

t.test('commits during a signing are covered by the next checkpoint', async (t) => {
  const h = harness({ checkpointEveryMs: 1000 });
  h.commit(1);
  h.actor.send({ type: 'auditor.checkpoint' });
  t.ok(h.actor.getSnapshot().matches('signing'));
  h.commit(1); // arrives while signing
  await flush();
  t.ok(h.actor.getSnapshot().matches('dirty'), 'still uncovered commits after the signature');
  h.clock.increment(1000);
  await flush();
  t.equal(h.signed.length, 2);
});

t.test('a failing signer is reported, retried on the interval only, and does not block closing', async (t) => {
  const h = harness({ checkpointEveryMs: 1000 }, { failSign: true });
  h.commit(1);
  h.actor.send({ type: 'auditor.checkpoint' });
  await flush();
  t.same(h.errors, ['checkpoint']);
  h.actor.send({ type: 'auditor.due' });
  await flush();
  t.same(h.errors, ['checkpoint'], 'due does not retry a failed signing at once');
  h.clock.increment(1000);
  await flush();
  t.same(h.errors, ['checkpoint', 'checkpoint'], 'the interval does');
  h.actor.send({ type: 'auditor.close' });
  await flush();
  t.equal(h.actor.getSnapshot().status, 'done');
});

t.test('close drains the writer, then signs a final checkpoint if anything is uncovered', async (t) => {
  const h = harness({ checkpointEveryMs: 60_000 }, { holdDrain: true });
  h.commit(2);
  h.actor.send({ type: 'auditor.close' });
  await flush();
  t.ok(h.actor.getSnapshot().matches('draining'));
  h.commit(3); // the writer finishes what was queued
  h.actor.send({ type: 'auditor.close' }); // a second close changes nothing
  h.releaseDrain();
  await flush();
  t.same(h.signed, [5], 'one final checkpoint covering everything');
  t.equal(h.actor.getSnapshot().status, 'done');
});

t.test('close with everything covered stops without signing', async (t) => {
  const h = harness({ checkpointEveryMs: 60_000 });
  h.commit(1);
  h.actor.send({ type: 'auditor.checkpoint' });
  await flush();
  h.actor.send({ type: 'auditor.close' });
  await flush();
  t.same(h.signed, [1]);
  t.equal(h.actor.getSnapshot().status, 'done');
});
