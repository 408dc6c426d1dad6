import t from 'tap';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { SPANS, startTelemetry } from '../telemetry/tracing.ts';
import { ManualClock } from './clock.ts';
import { InProcessScheduler } from './in-process.ts';
import { schedulerContract } from './scheduler.contract.ts';
import type { JobRun } from './scheduler.ts';

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
