import { availableParallelism } from 'node:os';
import { runScenario, sweep } from '../simulations/runner.ts';
import { SCENARIOS } from '../simulations/scenarios/index.ts';
import type { CryptoProvider } from '../runtime/crypto/provider.ts';
import { target, type Benchmark } from './harness.ts';

/**
 * `npm run bench -- sim [sweep-seeds] [seeds-per-scenario] [sweep-scenario]`: the simulator's
 * speed, in the same run as its baseline (real time: 1 simulated second per second).
 *  - <scenario>_x: simulated seconds per wall-clock second over seeds-per-scenario runs
 *    (default DEFAULT_SEEDS) of each standard scenario, taken round-robin (ratio = the same, as
 *    baseline is 1); <scenario>_cpu_x: per CPU-second of this process (all its threads), which
 *    the other users of a shared machine do not change.
 *  - <scenario>_calls_per_sim_s and <scenario>_cpu_ms_per_call: the two factors of its speed
 *    (cpu_x = 1000 / (calls_per_sim_s * cpu_ms_per_call)): how busy its workload is, and what a
 *    call costs in it (its retries, faults and checks included).
 *  - <scenario>_crypto_ceiling_x: simulated time over the time spent in the crypto provider,
 *    the speed the scenario would reach if everything else cost nothing.
 *  - sweep_<n>_wall_s: wall time of an n-seed sweep of one scenario (default 1,000 seeds of
 *    'partition') on this thread, and its CPU seconds; sweep_<n>_threads_wall_s: the same sweep
 *    on one worker thread per core (`talos sim sweep --jobs`, thread start-up included), its
 *    baseline the one-thread sweep (ratio < 1: faster); sweep_<n>_threads_speedup is the inverse.
 * Target: every standard scenario at least 100x real time.
 */
const DEFAULT_SWEEP_SEEDS = 1000;
const DEFAULT_SEEDS = 20;
const WARMUP_PASSES = 5;
const TARGET_SPEEDUP = 100;

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Wraps every method of the provider in place so that the time spent in it adds up in `into.ms`. */
function timeProviderCalls(crypto: CryptoProvider, into: { ms: number }): void {
  const methods = crypto as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(methods)) {
    if (typeof value !== 'function') continue;
    const method = value as (...args: unknown[]) => unknown;
    methods[name] = (...args: unknown[]) => {
      const t0 = performance.now();
      try {
        return method.apply(crypto, args);
      } finally {
        into.ms += performance.now() - t0;
      }
    };
  }
}

const bench: Benchmark = async (args) => {
  const sweepSeeds = Number(args[0] ?? DEFAULT_SWEEP_SEEDS);
  const seeds = Number(args[1] ?? DEFAULT_SEEDS);
  const sweepScenario = args[2] ?? 'partition';
  const metrics: Record<string, number> = {};
  const baseline: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  const targets: Record<string, ReturnType<typeof target>> = {};
  // Warm-up: WARMUP_PASSES runs of EVERY scenario (seeds 0, -1, ...; measured seeds start at
  // 1), so that the figures are the steady state a sweep runs at: module loading and V8's
  // optimizing tiers (which take a few dozen runs to settle) are not counted against whichever
  // scenario comes first in the list.
  for (let pass = 0; pass < WARMUP_PASSES; pass++) for (const sc of SCENARIOS) await runScenario(sc, -pass);

  // Seeds round-robin over the scenarios (seed 1 of each, then seed 2 of each, ...), so that a
  // host whose speed drifts during the bench moves every scenario's figure alike.
  const totals = new Map(SCENARIOS.map((sc) => [sc.name, { sim: 0, wall: 0, cpu: 0, calls: 0 }]));
  for (let s = 1; s <= seeds; s++) {
    for (const sc of SCENARIOS) {
      const wall0 = performance.now();
      const cpu0 = cpuMs();
      const r = await runScenario(sc, s);
      const total = totals.get(sc.name)!;
      total.wall += performance.now() - wall0;
      total.cpu += cpuMs() - cpu0;
      total.sim += r.simMs;
      total.calls += r.calls;
    }
  }
  let allSim = 0;
  let allWall = 0;
  let allCpu = 0;
  let allCalls = 0;
  for (const sc of SCENARIOS) {
    const { sim, wall, cpu, calls } = totals.get(sc.name)!;
    allSim += sim;
    allWall += wall;
    allCpu += cpu;
    allCalls += calls;
    const x = sim / wall;
    metrics[`${sc.name}_x`] = Number(x.toFixed(1));
    metrics[`${sc.name}_cpu_x`] = Number((sim / cpu).toFixed(1));
    metrics[`${sc.name}_calls_per_sim_s`] = Number(((calls * 1000) / sim).toFixed(1));
    metrics[`${sc.name}_cpu_ms_per_call`] = Number((cpu / Math.max(1, calls)).toFixed(2));
    baseline[`${sc.name}_x`] = 1;
    ratios[`${sc.name}_x`] = Number(x.toFixed(1));
    targets[`${sc.name}_x`] = target(x, '>=', TARGET_SPEEDUP);
  }
  metrics.all_x = Number((allSim / allWall).toFixed(1));
  metrics.all_cpu_x = Number((allSim / allCpu).toFixed(1));
  metrics.ms_per_run = Number((allWall / (seeds * SCENARIOS.length)).toFixed(1));
  // CPU per simulated call (its crypto, audit and checks): what bounds the ratio of a busy scenario.
  metrics.cpu_ms_per_call = Number((allCpu / Math.max(1, allCalls)).toFixed(2));
  baseline.all_x = 1;
  ratios.all_x = metrics.all_x;

  // The ceiling the real crypto sets: one more run of each scenario (seed 1, not counted above)
  // with every provider call timed. simulated ms / crypto ms is the speed the scenario would
  // reach if the simulator and the rest of the runtime cost nothing.
  for (const sc of SCENARIOS) {
    const timed = { ms: 0 };
    const r = await runScenario(sc, 1, { observe: (world) => timeProviderCalls(world.crypto, timed) });
    metrics[`${sc.name}_crypto_ceiling_x`] = Number((r.simMs / timed.ms).toFixed(1));
  }

  const cpu0 = cpuMs();
  const r = await sweep([sweepScenario], { seeds: sweepSeeds });
  const sweepKey = `sweep_${sweepSeeds}`;
  metrics[`${sweepKey}_wall_s`] = Number((r.wallMs / 1000).toFixed(1));
  metrics[`${sweepKey}_cpu_s`] = Number(((cpuMs() - cpu0) / 1000).toFixed(1));
  metrics[`${sweepKey}_failures`] = r.failures.length;
  // Baseline for the sweep: the simulated time it covers, at real time.
  baseline[`${sweepKey}_wall_s`] = Number((r.simMs / 1000).toFixed(1));
  ratios[`${sweepKey}_wall_s`] = Number((r.simMs / r.wallMs).toFixed(1));

  // The same sweep on a worker thread per core (thread start-up included), against the one above.
  const jobs = availableParallelism();
  const threaded = await sweep([sweepScenario], { seeds: sweepSeeds, jobs });
  metrics[`${sweepKey}_threads`] = jobs;
  metrics[`${sweepKey}_threads_wall_s`] = Number((threaded.wallMs / 1000).toFixed(1));
  metrics[`${sweepKey}_threads_x`] = Number((threaded.simMs / threaded.wallMs).toFixed(1));
  metrics[`${sweepKey}_threads_failures`] = threaded.failures.length;
  metrics[`${sweepKey}_threads_speedup`] = Number((r.wallMs / threaded.wallMs).toFixed(2));
  baseline[`${sweepKey}_threads_wall_s`] = Number((r.wallMs / 1000).toFixed(1));
  ratios[`${sweepKey}_threads_wall_s`] = Number((threaded.wallMs / r.wallMs).toFixed(2));

  return {
    metrics,
    baseline,
    ratios,
    targets,
    notes: [
      `${seeds} seeds per scenario, round-robin over the scenarios; sweep of ${sweepSeeds} seeds of ${sweepScenario}, on this thread and on ${jobs} worker thread${jobs === 1 ? '' : 's'}`,
      'x = simulated seconds per wall-clock second; cpu_x = per CPU-second of this process, all its threads (V8\'s helpers and the key-pair helper thread, simulations/key-pairs-ahead.ts, included; other processes do not count; the host\'s own speed, which drifts on a shared machine, does: see env.host)',
      'every call runs the real crypto (X3DH, Double Ratchet, Ed25519 tokens and checkpoints), so speed is bounded by crypto per simulated call',
      '<scenario>_crypto_ceiling_x: simulated time over the time spent inside the crypto provider (one more run, seed 1, every provider call timed): the speed the scenario would reach if the simulator and the rest of the runtime cost nothing. Every call is at least one DH ratchet step both ways (6 X25519 scalar multiplications: the 2 that make the new key pairs\' public keys are mostly done ahead on the helper thread, and of the 4 DHs each side computes, 2 are the other side\'s answers, given again: simulations/provider-memos.ts), so a scenario\'s ceiling falls as its calls (and retries) per simulated second rise',
    ],
  };
};

export default bench;
