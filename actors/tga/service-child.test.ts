import t from 'tap';
import { startTga } from './index.ts';
import { serviceChild, StopTracker } from './service-child.ts';

// SPEC 10.5: a restarted child's start waits until its predecessor has released what it held,
// even when the predecessor is still inside start() (it holds its resource from the start on).
const flush = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Waits (in real time, up to 5 s) until `done()`: for what happens after a restart's backoff. */
async function until(done: () => boolean): Promise<boolean> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  return done();
}

/** A service holding one exclusive resource (think: a port) from its start until stopped. */
function exclusiveService(stops: StopTracker) {
  const state = { holders: 0, maxHolders: 0, starts: 0, failNext: false };
  const pending: Array<() => void> = []; // each start waits here until the test lets it finish
  const child = serviceChild<{ id: string }>(
    'gateway',
    async () => {
      state.starts++;
      if (state.failNext) {
        state.failNext = false;
        throw Object.assign(new Error('listen failed'), { code: 'EADDRINUSE' });
      }
      state.holders++;
      state.maxHolders = Math.max(state.maxHolders, state.holders);
      await new Promise<void>((resolve) => pending.push(resolve));
      return { stop: async () => void state.holders-- };
    },
    stops,
  );
  return { state, pending, child };
}

/** A TGA supervising one exclusive service, its first start completed. */
async function startedTga() {
  const stops = new StopTracker();
  const svc = exclusiveService(stops);
  const tga = startTga(
    { release: () => {}, children: { gateway: svc.child } },
    { input: { children: [{ id: 'gateway', kind: 'gateway', src: 'gateway', input: { id: 'gateway' }, reportsUp: true }] } },
  );
  const status = () => tga.getSnapshot().context.children.gateway!;
  await flush();
  svc.pending.shift()!();
  await flush();
  /** Stops the TGA and waits until every child has released what it held. */
  const stop = async () => {
    tga.send({ type: 'tga.stop' });
    await stops.drain();
  };
  return { ...svc, tga, status, stop };
}

t.test('two reloads in quick succession: one start at a time, no fault, no restart spent', async (t) => {
  const { state, pending, tga, status, stop } = await startedTga();
  t.equal(status().status, 'up');

  tga.send({ type: 'child.restart', id: 'gateway' });
  await flush();
  t.equal(state.starts, 2, 'the reload started once its predecessor had stopped');
  t.equal(status().status, 'starting');
  tga.send({ type: 'child.restart', id: 'gateway' }); // again, while the second start is under way
  await flush();
  t.equal(state.starts, 2, 'the third start waits: its predecessor is still starting');
  pending.shift()!(); // the second start completes, sees it was replaced, and stops
  await flush();
  t.equal(state.starts, 3, 'then the third starts');
  pending.shift()!();
  await flush();
  t.equal(state.maxHolders, 1, 'never two holders of the resource at once');
  t.same(status(), { kind: 'gateway', status: 'up', restarts: 0 });
  t.same(tga.getSnapshot().context.restartTimes, [], 'reloads spend no restart budget');
  await stop();
  t.equal(state.holders, 0, 'everything released');
});

t.test('a start that fails releases the id: its successor is not kept waiting', async (t) => {
  const { state, pending, tga, status, stop } = await startedTga();
  state.failNext = true;
  tga.send({ type: 'child.restart', id: 'gateway' });
  await flush();
  t.equal(status().restarts, 1, 'the failed start crashed the child: a supervised restart');
  t.ok(await until(() => state.starts === 3), 'after its backoff the restart went ahead');
  pending.shift()!();
  await flush();
  t.equal(status().status, 'up');
  t.equal(state.maxHolders, 1);
  await stop();
  t.equal(state.holders, 0);
});
