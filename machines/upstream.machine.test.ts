import t from 'tap';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { BASE_BACKOFF_MS, MAX_BACKOFF_MS, MAX_CONNECT_ATTEMPTS, backoffDelay, upstreamMachine } from './upstream.machine.ts';

const flush = () => new Promise((r) => setImmediate(r));

function run(connectResults: boolean[]) {
  const clock = new SimulatedClock();
  const faults: string[] = [];
  let calls = 0;
  const machine = upstreamMachine.provide({
    actors: {
      connect: fromPromise(async () => {
        const ok = connectResults[Math.min(calls++, connectResults.length - 1)];
        if (!ok) throw new Error('spawn failed');
      }),
    },
    actions: { reportFault: (_, p) => void faults.push(p.code) },
  });
  const actor = createActor(machine, { input: { name: 'u' }, clock });
  actor.start();
  return { actor, clock, faults, calls: () => calls };
}

t.test('backoff doubles up to its cap', async (t) => {
  t.equal(backoffDelay(1), BASE_BACKOFF_MS);
  t.equal(backoffDelay(2), BASE_BACKOFF_MS * 2);
  t.equal(backoffDelay(50), MAX_BACKOFF_MS);
});

t.test('connects, and after a close waits then reconnects', async (t) => {
  const { actor, clock, calls } = run([true]);
  await flush();
  t.equal(actor.getSnapshot().value, 'ready');
  actor.send({ type: 'upstream.closed' });
  t.equal(actor.getSnapshot().value, 'backoff');
  clock.increment(BASE_BACKOFF_MS - 1);
  t.equal(actor.getSnapshot().value, 'backoff', 'not before the delay');
  clock.increment(1);
  await flush();
  t.equal(actor.getSnapshot().value, 'ready');
  t.equal(calls(), 2);
  t.equal(actor.getSnapshot().context.connects, 2);
  actor.stop();
});

t.test('fails after MAX_CONNECT_ATTEMPTS consecutive failures and reports a fault', async (t) => {
  const { actor, clock, faults, calls } = run([false]);
  for (let i = 0; i < MAX_CONNECT_ATTEMPTS + 2; i++) {
    await flush();
    clock.increment(MAX_BACKOFF_MS);
  }
  await flush();
  t.equal(actor.getSnapshot().value, 'failed');
  t.equal(calls(), MAX_CONNECT_ATTEMPTS);
  t.same(faults, ['upstream_failed']);
  actor.send({ type: 'upstream.retry' });
  t.equal(actor.getSnapshot().value, 'connecting');
  actor.stop();
});

t.test('drift reports are recorded; stop ends the machine', async (t) => {
  const { actor } = run([true]);
  await flush();
  actor.send({ type: 'upstream.drift', tool: 'lookup', pinned: 'a', seen: 'b' });
  t.same(actor.getSnapshot().context.drift, [{ tool: 'lookup', pinned: 'a', seen: 'b' }]);
  actor.send({ type: 'upstream.stop' });
  await flush();
  t.equal(actor.getSnapshot().status, 'done');
});
