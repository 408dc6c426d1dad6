import t from 'tap';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { SPANS, startTelemetry } from '../telemetry/tracing.ts';
import { ManualClock } from './clock.ts';
import { InProcessScheduler } from './in-process.ts';
import { schedulerContract } from './scheduler.contract.ts';
import { MAX_INTERVAL_MS, type JobRun } from './scheduler.ts';

t.test('contract', async (t) => {
  schedulerContract(t, async (options) => new InProcessScheduler(options));
});

t.test('driven by a manual clock: slots on the interval grid, retries after backoff, nothing left armed', async (t) => {
  const clock = new ManualClock(1_000_000);
  const runs: JobRun[] = [];
  let failNext = 0;
  const s = new InProcessScheduler({ clock, backoffMs: 500 });
  s.onJob('rotate', (run) => {
    runs.push(run);
    if (failNext > 0) {
      failNext--;
      throw new Error('transient');
    }
  });
  await s.schedule('rotate', 1000, { kek: 'next' });
  await s.start();
  await clock.advance(0);
  t.same(runs.map((r) => r.slot), [1_000_000], 'first run at once, for the current slot');
  await clock.advance(3000);
  t.same(runs.map((r) => r.slot), [1_000_000, 1_001_000, 1_002_000, 1_003_000]);
  failNext = 1;
  await clock.advance(1000);
  t.same(runs.slice(-1).map((r) => [r.slot, r.attempt]), [[1_004_000, 1]]);
  await clock.advance(499);
  t.equal(runs.length, 5, 'no retry before the backoff');
  await clock.advance(1);
  t.same(runs.slice(-1).map((r) => [r.runId, r.attempt]), [['repeat:rotate:1004000', 2]], 'retried under the same runId');
  // Scheduling again (a restarted runtime declaring its jobs) does not run the current slot twice.
  await s.schedule('rotate', 1000, { kek: 'next' });
  await clock.advance(0);
  t.equal(runs.filter((r) => r.slot === 1_004_000 && r.attempt === 1).length, 1);
  // Missed slots are not replayed: a long pause yields one run, then the grid goes on.
  await s.stop();
  t.equal(clock.pending, 0, 'stop leaves no timer armed');
  const before = runs.length;
  await clock.advance(10_000);
  t.equal(runs.length, before, 'nothing runs while stopped');
  await s.start();
  await clock.advance(0);
  t.same(runs.slice(before).map((r) => r.slot), [1_014_000]);
  await s.stop();
});

t.test('an interval past the longest Node timer: waited out in steps, one run per slot', async (t) => {
  // As Node does: a delay above 2^31-1 ms fires after 1 ms. Arms are capped so a scheduler that
  // re-arms without end stops here instead of looping.
  const NODE_MAX = 2 ** 31 - 1;
  const base = new ManualClock(0);
  let armed = 0;
  const clock = {
    now: () => base.now(),
    setTimeout: (fn: () => void, ms: number) => (++armed > 100 ? undefined : base.setTimeout(fn, ms > NODE_MAX ? 1 : ms)),
    clearTimeout: (handle: unknown) => base.clearTimeout(handle),
  };
  const slots: number[] = [];
  const s = new InProcessScheduler({ clock });
  s.onJob('rotate', (run) => {
    slots.push(run.slot);
  });
  await s.schedule('rotate', MAX_INTERVAL_MS);
  await s.start();
  await base.advance(24 * 3600_000); // one day: the next slot is 29 days away
  t.same(slots, [0], 'only the current slot ran');
  await base.advance(MAX_INTERVAL_MS - 24 * 3600_000 - 1);
  t.same(slots, [0], 'nothing before the next slot');
  await base.advance(1);
  t.same(slots, [0, MAX_INTERVAL_MS], 'the next slot ran at its time');
  t.ok(armed <= 6, `a few timers per slot (${armed})`);
  await s.stop();
});

t.test('each run is a talos.job span naming the job, run id and attempt', async (t) => {
  const exporter = new InMemorySpanExporter();
  const telemetry = startTelemetry({ exporter });
  t.teardown(() => telemetry.shutdown());
  const clock = new ManualClock(0);
  const s = new InProcessScheduler({ clock, backoffMs: 10 });
  let fail = true;
  s.onJob('checkpoint-publish', () => {
    if (fail) {
      fail = false;
      throw new Error('transient');
    }
  });
  await s.start();
  await s.enqueue('checkpoint-publish', null, 'c1');
  await clock.advance(10);
  await s.stop();
  const spans = exporter.getFinishedSpans().filter((x) => x.name === SPANS.job);
  t.same(
    spans.map((x) => [x.attributes['talos.job'], x.attributes['talos.run_id'], x.attributes['talos.attempt'], x.status.code]),
    [
      ['checkpoint-publish', 'once:checkpoint-publish:c1', 1, 2],
      ['checkpoint-publish', 'once:checkpoint-publish:c1', 2, 0],
    ],
    'a failed attempt (status ERROR) then a successful one',
  );
});

t.test('the in-process queue is bounded: enqueue refuses with scheduler_overloaded, nothing else changes', async (t) => {
  const { MAX_PENDING_RUNS } = await import('./in-process.ts');
  const { JobError } = await import('./errors.ts');
  const clock = new ManualClock(0);
  const s = new InProcessScheduler({ clock });
  let release!: () => void;
  const blocked = new Promise<void>((r) => (release = r));
  let runs = 0;
  s.onJob('work', async () => {
    runs++;
    await blocked;
  });
  await s.start();
  for (let i = 0; i < MAX_PENDING_RUNS; i++) await s.enqueue('work', null, `k${i}`);
  let refused: unknown;
  try {
    await s.enqueue('work', null, 'one-too-many');
  } catch (err) {
    refused = err;
  }
  t.ok(refused instanceof JobError && refused.code === 'scheduler_overloaded');
  t.equal((await s.depth()).waiting, MAX_PENDING_RUNS - 1, 'one running, the rest waiting, none added');
  release();
  await clock.advance(0);
  await s.stop();
  t.ok(runs >= 1);
});
