import type { Test } from 'tap';
import { JobError } from './errors.ts';
import { JOB_ATTEMPTS, type JobRun, type Scheduler, type SchedulerEvents } from './scheduler.ts';

/**
 * The contract every Scheduler adapter passes (run by in-process.test.ts and bullmq.test.ts).
 * Real time, short intervals; waits are liveness bounds, not timing assertions.
 */
export type SchedulerFactory = (options: SchedulerEvents & { backoffMs: number }) => Promise<Scheduler>;

export const INTERVAL_MS = 200;
const WAIT_LIMIT_MS = 20_000;

export async function waitUntil(what: string, condition: () => boolean, limitMs = WAIT_LIMIT_MS): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function refusal(t: Test, promise: Promise<unknown>, code: string, what: string) {
  try {
    await promise;
    t.fail(`${what}: accepted`);
  } catch (err) {
    t.ok(err instanceof JobError && err.code === code, `${what}: ${code}`);
  }
}

export function schedulerContract(t: Test, make: SchedulerFactory): void {
  t.test('a scheduled job runs again and again, one run per slot, with its data', async (t) => {
    const runs: JobRun[] = [];
    const s = await make({ backoffMs: 50 });
    t.teardown(() => s.stop());
    s.onJob('tick', (run) => {
      runs.push(run);
    });
    await s.schedule('tick', INTERVAL_MS, { what: 'tick' });
    await s.start();
    await s.schedule('tick', INTERVAL_MS, { what: 'tick' }); // upsert: still one schedule
    await waitUntil('4 runs', () => runs.length >= 4);
    await s.stop();
    const ids = runs.map((r) => r.runId);
    t.equal(new Set(ids).size, ids.length, 'every runId is distinct');
    const slots = runs.map((r) => r.slot);
    t.equal(new Set(slots).size, slots.length, 'never two runs of one slot (schedule is an upsert)');
    for (const r of runs) {
      t.equal(r.name, 'tick');
      t.same(r.data, { what: 'tick' });
      t.equal(r.runId, `repeat:tick:${r.slot}`);
      t.equal(r.attempt, 1);
    }
    t.ok(slots.slice(1).every((slot, i) => slot > slots[i]!), 'slots move forward');
  });

  t.test('enqueue is idempotent by key; different keys are different runs', async (t) => {
    const seen: string[] = [];
    const s = await make({ backoffMs: 50 });
    t.teardown(() => s.stop());
    s.onJob('publish', (run) => {
      seen.push(`${run.runId}|${JSON.stringify(run.data)}`);
    });
    await s.start();
    await s.enqueue('publish', { n: 1 }, 'k1');
    await s.enqueue('publish', { n: 1 }, 'k1');
    await s.enqueue('publish', { n: 2 }, 'k2');
    await waitUntil('two runs', () => seen.length >= 2);
    await s.enqueue('publish', { n: 1 }, 'k1'); // after completion: still the same run
    await sleep(3 * INTERVAL_MS);
    t.same(seen.sort(), ['once:publish:k1|{"n":1}', 'once:publish:k2|{"n":2}']);
  });

  t.test('a failing run is retried under the same runId, then fails for good', async (t) => {
    const attempts: string[] = [];
    const settled: { runId: string; ok: boolean; final: boolean; attempt: number }[] = [];
    const s = await make({
      backoffMs: 50,
      onRunSettled: (run, o) => settled.push({ runId: run.runId, ok: o.ok, final: o.final, attempt: run.attempt }),
    });
    t.teardown(() => s.stop());
    s.onJob('flaky', (run) => {
      attempts.push(`${run.runId}#${run.attempt}`);
      if (run.attempt < 2) throw new Error('transient');
    });
    s.onJob('broken', (run) => {
      attempts.push(`${run.runId}#${run.attempt}`);
      throw new Error('always');
    });
    await s.start();
    await s.enqueue('flaky', null, 'a');
    await s.enqueue('broken', null, 'b');
    await s.enqueue('nobody-handles-this', null, 'c');
    await waitUntil('all settled', () => settled.filter((x) => x.final).length >= 3);
    t.same(attempts.filter((a) => a.startsWith('once:flaky')), ['once:flaky:a#1', 'once:flaky:a#2']);
    t.same(
      attempts.filter((a) => a.startsWith('once:broken')),
      Array.from({ length: JOB_ATTEMPTS }, (_, i) => `once:broken:b#${i + 1}`),
    );
    const finals = settled.filter((x) => x.final).sort((a, b) => a.runId.localeCompare(b.runId));
    t.same(
      finals.map((f) => [f.runId, f.ok]),
      [
        ['once:broken:b', false],
        ['once:flaky:a', true],
        ['once:nobody-handles-this:c', false],
      ],
    );
    t.equal((await s.depth()).failed, 2, 'two runs failed for good');
  });

  t.test('a one-off run that failed for good runs again when its key is enqueued again', async (t) => {
    const finals: boolean[] = [];
    let attempts = 0;
    let fail = true;
    const s = await make({ backoffMs: 10, onRunSettled: (_run, o) => void (o.final && finals.push(o.ok)) });
    t.teardown(() => s.stop());
    s.onJob('publish', () => {
      attempts++;
      if (fail) throw new Error('upstream down');
    });
    await s.start();
    await s.enqueue('publish', null, 'k1');
    await waitUntil('the run failed for good', () => finals.length >= 1);
    t.same(finals, [false]);
    fail = false;
    // Neither pending, running nor completed: SPEC 10.2 queues it again.
    await s.enqueue('publish', null, 'k1');
    await waitUntil('the run enqueued again settled', () => finals.length >= 2);
    t.same(finals, [false, true], 'the second enqueue ran and succeeded');
    t.equal(attempts, JOB_ATTEMPTS + 1);
  });

  t.test('unschedule and stop end the runs; refusals are typed', async (t) => {
    let runs = 0;
    const s = await make({ backoffMs: 50 });
    t.teardown(() => s.stop());
    s.onJob('tick', () => {
      runs++;
    });
    await refusal(t, s.enqueue('tick', null, 'early'), 'scheduler_stopped', 'enqueue before start');
    await refusal(t, s.schedule('Bad Name', INTERVAL_MS), 'job_bad_name', 'bad name');
    await refusal(t, s.schedule('tick', 5), 'job_bad_interval', 'too short');
    await refusal(t, s.schedule('tick', INTERVAL_MS + 0.5), 'job_bad_interval', 'not an integer');
    await refusal(t, s.schedule('tick', INTERVAL_MS, { big: 'x'.repeat(70_000) }), 'job_bad_data', 'oversize data');
    await s.start();
    await refusal(t, s.enqueue('tick', null, 'has:colon'), 'job_bad_name', 'bad key');
    await s.schedule('tick', INTERVAL_MS);
    await waitUntil('a run', () => runs >= 1);
    t.equal(await s.unschedule('tick'), true);
    t.equal(await s.unschedule('tick'), false, 'unscheduling twice');
    // A run already taken may still finish: wait until nothing is pending, then watch.
    for (let i = 0; i < 500; i++) {
      const d = await s.depth();
      if (d.waiting + d.active + d.delayed === 0) break;
      await sleep(20);
    }
    await sleep(INTERVAL_MS);
    const after = runs;
    await sleep(3 * INTERVAL_MS);
    t.equal(runs, after, 'no run after unschedule');
    const depth = await s.depth();
    for (const k of ['waiting', 'active', 'delayed', 'failed'] as const) t.type(depth[k], 'number');
    t.equal(s.isHealthy(), true);
    await s.stop();
    await refusal(t, s.enqueue('tick', null, 'late'), 'scheduler_stopped', 'enqueue after stop');
  });
}
