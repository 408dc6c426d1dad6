import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTestRedis } from '../redis/test-server.ts';
import { BullmqScheduler } from './bullmq.ts';
import { INTERVAL_MS, schedulerContract, waitUntil } from './scheduler.contract.ts';
import type { JobRun } from './scheduler.ts';

const redis = await startTestRedis({ appendonly: true, owned: true });
t.teardown(() => redis.stop());
let queues = 0;
const queueName = () => `test-${process.pid}-${++queues}`;

t.test('contract', async (t) => {
  schedulerContract(t, async (options) => new BullmqScheduler({ url: redis.url, queueName: queueName(), ...options }));
});

t.test('two runtime processes scheduling the same job share one schedule', async (t) => {
  const q = queueName();
  const runs: JobRun[] = [];
  const a = new BullmqScheduler({ url: redis.url, queueName: q });
  const b = new BullmqScheduler({ url: redis.url, queueName: q });
  t.teardown(async () => {
    await a.stop();
    await b.stop();
  });
  for (const s of [a, b]) {
    s.onJob('budget-reset', (run) => {
      runs.push(run);
    });
    await s.schedule('budget-reset', INTERVAL_MS);
    await s.start();
  }
  await waitUntil('6 runs', () => runs.length >= 6);
  const slots = runs.map((r) => r.slot);
  t.equal(new Set(slots).size, slots.length, 'each slot ran once across both processes');
});

t.test('Redis killed and restarted: no job lost, schedules resume, runIds stay unique', async (t) => {
  const ticks: JobRun[] = [];
  const work = new Map<string, number>();
  const s = new BullmqScheduler({ url: redis.url, queueName: queueName(), backoffMs: 100, lockDurationMs: 1000 });
  t.teardown(() => s.stop());
  s.onJob('tick', (run) => {
    ticks.push(run);
  });
  s.onJob('work', async (run) => {
    await new Promise((r) => setTimeout(r, 10));
    work.set(run.runId, (work.get(run.runId) ?? 0) + 1);
  });
  await s.schedule('tick', INTERVAL_MS);
  await s.start();
  const keys = Array.from({ length: 60 }, (_, i) => `w${i}`);
  for (const key of keys.slice(0, 40)) await s.enqueue('work', { key }, key);
  await waitUntil('some work done and two ticks', () => work.size >= 5 && ticks.length >= 2);

  await redis.kill(true); // SIGKILL: no clean shutdown; AOF with fsync always keeps what was acknowledged
  await waitUntil('the scheduler notices', () => !s.isHealthy());
  // Work submitted during the outage waits in the client and is stored once Redis is back.
  const duringOutage = keys.slice(40).map((key) => s.enqueue('work', { key }, key));
  await new Promise((r) => setTimeout(r, 500));
  t.equal(s.isHealthy(), false, 'not healthy while Redis is down');
  const ticksBeforeRestart = ticks.length;

  await redis.restart();
  await Promise.all(duringOutage);
  await waitUntil('all work done', () => keys.every((k) => work.has(`once:work:${k}`)), 30_000);
  await waitUntil('ticks resume', () => ticks.length >= ticksBeforeRestart + 3, 30_000);
  t.equal(s.isHealthy(), true, 'healthy again');

  t.same([...work.keys()].sort(), keys.map((k) => `once:work:${k}`).sort(), 'every job ran: none lost');
  const repeats = [...work.values()].filter((n) => n > 1).length;
  t.ok(repeats <= 1, `at most the run in flight at the kill is delivered again (${repeats})`);
  const tickSlots = ticks.map((r) => r.slot);
  t.equal(new Set(ticks.map((r) => r.runId)).size, new Set(tickSlots).size, 'one runId per slot');
});

t.test('a runtime killed in the middle of a run: the run is re-delivered, same runId', async (t) => {
  const q = queueName();
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./testdata/crash-worker.ts', import.meta.url)), redis.url, q], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => child.once('exit', r));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await waitUntil('the child takes the run', () => out.includes('started once:checkpoint:cp-42'), 30_000);
  child.kill('SIGKILL');
  await exited;

  // The restarted runtime: its stall check finds the run whose lock lapsed and runs it.
  const runs: JobRun[] = [];
  const restarted = new BullmqScheduler({ url: redis.url, queueName: q, lockDurationMs: 1000 });
  t.teardown(() => restarted.stop());
  restarted.onJob('checkpoint', (run) => {
    runs.push(run);
  });
  await restarted.start();
  await waitUntil('the run is re-delivered', () => runs.length >= 1, 30_000);
  t.equal(runs[0]!.runId, 'once:checkpoint:cp-42', 'same runId: the handler can tell it is the same run');
  t.same(runs[0]!.data, { size: 42 });
});

t.test('a Redis restarted without persistence gets the declared schedules back', async (t) => {
  const volatile = await startTestRedis({ appendonly: false, owned: true });
  t.teardown(() => volatile.stop());
  const ticks: JobRun[] = [];
  const s = new BullmqScheduler({ url: volatile.url, queueName: queueName(), lockDurationMs: 1000 });
  t.teardown(() => s.stop());
  s.onJob('checkpoint-publish', (run) => {
    ticks.push(run);
  });
  await s.schedule('checkpoint-publish', INTERVAL_MS);
  await s.start();
  await waitUntil('two runs', () => ticks.length >= 2);
  await volatile.kill(true);
  await waitUntil('the scheduler notices', () => !s.isHealthy());
  await volatile.restart(); // empty: no AOF, no RDB
  const before = ticks.length;
  await waitUntil('runs resume on the empty Redis', () => ticks.length >= before + 3, 30_000);
  t.equal(new Set(ticks.map((r) => r.runId)).size, new Set(ticks.map((r) => r.slot)).size, 'one runId per slot');
});

t.test('stop() returns while Redis is down (forced close; nothing left running)', async (t) => {
  const down = await startTestRedis({ owned: true });
  t.teardown(async () => {
    await down.restart(); // the harness stops a running server only
    await down.stop();
  });
  const s = new BullmqScheduler({ url: down.url, queueName: queueName() });
  s.onJob('tick', () => {});
  await s.schedule('tick', INTERVAL_MS);
  await s.start();
  await down.kill(true);
  await waitUntil('the scheduler notices', () => !s.isHealthy());
  let stopped = false;
  const stopping = s.stop().then(() => (stopped = true));
  await waitUntil('stop returns', () => stopped, 10_000);
  await stopping;
  t.equal(s.isHealthy(), false);
});
