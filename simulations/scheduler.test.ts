import t from 'tap';
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { createActor, setup } from 'xstate';
import { Scheduler, SIM_EPOCH_MS } from './scheduler.ts';

t.test('events run in (time, seq) order; ties in scheduling order; cancelled ones never', async (t) => {
  const s = new Scheduler();
  const log: string[] = [];
  s.at(10, 'b', () => void log.push('b@10'));
  s.at(5, 'a', () => void log.push('a@5'));
  s.at(10, 'c', () => void log.push('c@10'));
  s.at(7, 'x', () => void log.push('x')).cancel();
  s.at(5, 'd', () => {
    log.push('d@5');
    s.after(0, 'e', () => void log.push(`e@${s.now}`));
  });
  await s.run(100);
  t.same(log, ['a@5', 'd@5', 'e@5', 'b@10', 'c@10']);
  t.equal(s.now, 100, 'time advances to the end of the run');
});

t.test('the run stops at `until` and when stop() says so', async (t) => {
  const s = new Scheduler();
  let n = 0;
  const tick = () => {
    n++;
    s.after(10, 'tick', tick);
  };
  s.at(0, 'tick', tick);
  await s.run(95);
  t.equal(n, 10);
  await s.run(1000, () => n >= 20);
  t.equal(n, 20);
});

t.test('fake timers: setTimeout, setImmediate and Date follow the simulated clock', async (t) => {
  const s = new Scheduler();
  s.installFakeTimers();
  t.teardown(() => s.uninstallFakeTimers());
  const log: string[] = [];
  t.equal(Date.now(), SIM_EPOCH_MS);
  setTimeout(() => log.push(`timeout@${Date.now() - SIM_EPOCH_MS}`), 30);
  s.at(20, 'own', () => {
    log.push(`own@${s.now}`);
    setTimeout(() => log.push(`nested@${Date.now() - SIM_EPOCH_MS}`), 5);
    setImmediate(() => log.push(`immediate@${Date.now() - SIM_EPOCH_MS}`));
  });
  s.at(30, 'own2', () => void log.push(`own2@${s.now}`));
  await s.run(1000);
  t.same(log, ['own@20', 'immediate@20', 'nested@25', 'timeout@30', 'own2@30']);
});

t.test('an XState delayed transition fires on simulated time', async (t) => {
  const s = new Scheduler();
  s.installFakeTimers();
  t.teardown(() => s.uninstallFakeTimers());
  const machine = setup({}).createMachine({ initial: 'waiting', states: { waiting: { after: { 500: 'done' } }, done: {} } });
  const actor = createActor(machine).start();
  await s.run(499);
  t.equal(actor.getSnapshot().value, 'waiting');
  await s.run(500);
  t.equal(actor.getSnapshot().value, 'done');
  actor.stop();
});

t.test("opossum's timeout and reset run on simulated time", async (t) => {
  const s = new Scheduler();
  s.installFakeTimers();
  t.teardown(() => s.uninstallFakeTimers());
  const breaker = new CircuitBreaker(() => new Promise(() => {}), {
    timeout: 100,
    resetTimeout: 1000,
    volumeThreshold: 1,
    errorThresholdPercentage: 1,
    enableSnapshots: false,
    rotateBucketController: new EventEmitter(),
  });
  const states: string[] = [];
  breaker.on('open', () => states.push(`open@${s.now}`));
  breaker.on('halfOpen', () => states.push(`halfOpen@${s.now}`));
  const fired = breaker.fire().catch((e: Error) => `rejected: ${e.message}@${s.now}`);
  await s.run(2000);
  t.equal(await fired, 'rejected: Timed out after 100ms@100');
  t.same(states, ['open@100', 'halfOpen@1100']);
  breaker.shutdown();
});

t.test('an error in a handler goes to onError', async (t) => {
  const s = new Scheduler();
  const errors: unknown[] = [];
  s.onError = (e) => errors.push(e);
  s.at(1, 'sync', () => {
    throw new Error('sync');
  });
  s.at(2, 'async', async () => {
    throw new Error('async');
  });
  await s.run(10);
  t.same(errors.map((e) => (e as Error).message), ['sync', 'async']);
});
