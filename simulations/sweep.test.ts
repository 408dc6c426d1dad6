import t from 'tap';
import { sweep, SweepError, SweepPlan, type SweepOptions, type SweepResult, type SweptRun } from './runner.ts';

/**
 * Sweeps on worker threads report what a sequential sweep reports. Each sweep with jobs 2
 * starts two threads (a few seconds each of loading TypeScript), so these sweeps are small.
 */

/** A sweep's result and its runs as onRun saw them, without the wall-clock times. */
async function observed(names: string[], options: SweepOptions) {
  const runs: string[] = [];
  const r = await sweep(names, { ...options, onRun: (done, total, run) => runs.push(`${done}/${total} ${run.scenario} ${run.seed} ${run.ok} ${run.traceHash}`) });
  return { result: withoutWallTime(r), runs };
}

function withoutWallTime(r: SweepResult) {
  return { ...r, wallMs: 0, failures: r.failures.map((f) => ({ ...f, wallMs: 0 })) };
}

t.test('jobs 2 gives the result of jobs 1, and onRun sees the same runs in the same order', async (t) => {
  const names = ['partition', 'clock-skew'];
  const one = await observed(names, { seeds: 4, jobs: 1 });
  const two = await observed(names, { seeds: 4, jobs: 2 });
  t.equal(one.result.runs, 8);
  t.same(two.result, one.result);
  t.same(two.runs, one.runs, 'every run has the same trace hash');
});

t.test('a broken variant with stopOnFailure: jobs 2 reports the first failing seed and its replay, as jobs 1 does', async (t) => {
  // non-transactional-decrypt fails replay-tamper at seeds 2 and 4 (of 1..5); partition passes.
  const options: SweepOptions = { seeds: 5, stopOnFailure: true, __broken: 'non-transactional-decrypt' };
  const one = await observed(['replay-tamper', 'partition'], { ...options, jobs: 1 });
  const two = await observed(['replay-tamper', 'partition'], { ...options, jobs: 2 });
  t.equal(one.result.runs, 2 + 5, 'replay-tamper up to seed 2, then every partition seed');
  t.same(one.result.failures.map((f) => f.command), ['talos sim run replay-tamper --seed 2 --broken non-transactional-decrypt']);
  t.ok(one.result.failures[0]!.trace.length > 0, 'the failure carries its trace');
  t.same(two.result, one.result, 'same runs, same failure, same trace, same simulated time');
  t.same(two.runs, one.runs);
});

t.test('SweepPlan reports out-of-order results in sequential order and drops seeds after a first failure', async (t) => {
  const reported: string[] = [];
  const plan = new SweepPlan(['a', 'b'], { seeds: 4, firstSeed: 10, stopOnFailure: true, onRun: (d, _t, r) => reported.push(`${d} ${r.scenario}${r.seed}`) });
  const run = (scenario: string, seed: number, ok: boolean) => ({ scenario, seed, ok, simMs: seed, trace: ok ? undefined : 'T' }) as unknown as SweptRun;
  const tasks = [plan.next()!, plan.next()!, plan.next()!];
  t.same(tasks.map((x) => `${x.scenario}${x.seed}`), ['a10', 'a11', 'a12']);
  plan.add(tasks[2]!, run('a', 12, false)); // a later failure comes back first
  t.same(reported, [], 'nothing is reported before the runs ahead of it');
  t.equal(plan.next()!.seed, 10, 'seeds after a known failure are not handed out: next is b10');
  plan.add(tasks[0]!, run('a', 10, true));
  plan.add(tasks[1]!, run('a', 11, false)); // the lowest failing seed of a
  t.same(reported, ['1 a10', '2 a11']);
  t.same(plan.result.failures.map((f) => f.seed), [11], 'only the first failure of a');
  t.equal(plan.result.runs, 2);
});

t.test('a run that throws rejects with SweepError naming the scenario and seed, on threads and off', async (t) => {
  // An unknown provider makes the world's constructor throw, outside the run's own error handling.
  const bogus = { seeds: 2, crypto: 'bogus' as 'node' };
  const inThread = await sweep(['partition'], { ...bogus, jobs: 1 }).catch((e: unknown) => e);
  t.type(inThread, SweepError);
  t.match(inThread, { code: 'sim_run_threw', message: /partition seed 1 threw CryptoError/ });
  const threaded = await sweep(['partition'], { ...bogus, jobs: 2 }).catch((e: unknown) => e);
  t.type(threaded, SweepError);
  t.match(threaded, { code: 'sim_run_threw', message: /partition seed [12] threw CryptoError/ });
});

t.test('bad options are refused before any thread starts', async (t) => {
  await t.rejects(sweep(['partition'], { seeds: 1, jobs: 0 }), { code: 'sim_sweep_bad_options' });
  await t.rejects(sweep(['partition'], { seeds: 1, jobs: 1.5 }), { code: 'sim_sweep_bad_options' });
  await t.rejects(sweep(['partition'], { seeds: 2, jobs: 2, observe: () => {} }), { code: 'sim_sweep_bad_options' });
  await t.rejects(sweep(['nope'], { seeds: 2, jobs: 2 }), { code: 'sim_unknown_scenario' });
});
