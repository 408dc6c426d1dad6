import { INVARIANTS } from './invariants.ts';
import { SCENARIOS, scenarioByName, type Scenario } from './scenarios/index.ts';
import { traceHash } from './trace-writer.ts';
import { loadEndsAt } from './system/compose.ts';
import { World, type BrokenVariant } from './world.ts';
import { runOnThreads, runThrew, SweepError } from './sweep-threads.ts';

export { SweepError } from './sweep-threads.ts';

/**
 * Runs one scenario for one seed, and sweeps many seeds (on this thread, or on worker threads:
 * sweep-threads.ts). A run: build the world with fake timers installed, start the workload and
 * the fault plan, run the scheduler until the load has ended and every fault has healed plus
 * PROGRESS_BOUND_MS, checking invariants as it goes; then the final checks (every call settled,
 * the scenario's own checks).
 */
export const PROGRESS_BOUND_MS = 2000;

export interface RunOptions {
  /** Test-only: a deliberately broken variant of the composition. */
  __broken?: BrokenVariant;
  crypto?: 'node' | 'noble';
  /** Called with the run's world before the scenario sets up: for measurement (bench/sim.bench.ts times the crypto provider). */
  observe?: (world: World) => void;
}

export interface RunResult {
  scenario: string;
  seed: number;
  ok: boolean;
  violation?: { invariant: string; detail: string; at: number };
  trace: string;
  traceHash: string;
  simMs: number;
  wallMs: number;
  events: number;
  calls: number;
  settled: number;
  checks: Record<string, number>;
  command: string;
}

/** The options that change what a run does (plain data: they cross to a sweep's worker threads). */
export type RunVariant = Pick<RunOptions, '__broken' | 'crypto'>;

function runVariant(options: RunOptions): RunVariant {
  return { ...(options.__broken ? { __broken: options.__broken } : {}), ...(options.crypto ? { crypto: options.crypto } : {}) };
}

/** The command that replays one run: every option that changes what the run does is carried over. */
export function replayCommand(scenario: string, seed: number, options: RunVariant = {}): string {
  const broken = options.__broken ? ` --broken ${options.__broken}` : '';
  const crypto = options.crypto ? ` --crypto ${options.crypto}` : '';
  return `talos sim run ${scenario} --seed ${seed}${broken}${crypto}`;
}

export async function runScenario(scenario: Scenario | string, seed: number, options: RunOptions = {}): Promise<RunResult> {
  const sc = typeof scenario === 'string' ? scenarioByName(scenario) : scenario;
  const started = performance.now();
  const world = new World({ scenario: sc.name, seed, ...runVariant(options) });
  options.observe?.(world);
  const inv = world.invariants;
  let truth: { calls: Map<string, unknown>; unsettled(): unknown[] } | null = null;
  world.scheduler.installFakeTimers();
  try {
    world.startSupervisor();
    const plan = await sc.setup(world);
    truth = plan.sys.truth;
    plan.sys.startLoad();
    const endAt = Math.max(loadEndsAt(plan.sys.options), world.healedAt) + PROGRESS_BOUND_MS;
    await world.scheduler.run(endAt, () => inv.violation !== null);
    if (!inv.violation) {
      const open = plan.sys.truth.unsettled();
      inv.check(INVARIANTS.progressAfterHeal, open.length === 0, () =>
        `${open.length} call(s) still unanswered ${PROGRESS_BOUND_MS}ms after the last fault healed (first: ${open[0]!.callId}, issued at ${open[0]!.issuedAt}ms)`,
      );
      await plan.final?.();
    }
  } catch (err) {
    world.report(err);
  } finally {
    world.stopSupervisor();
    world.scheduler.uninstallFakeTimers();
  }
  const calls = truth ? truth.calls.size : 0;
  const settled = truth ? calls - truth.unsettled().length : 0;
  const v = inv.violation;
  world.trace.finish(); // the verdict below is kept even when the run filled the trace
  if (v) world.trace.fault('violation', v.invariant, v.detail);
  const trace = world.trace.encode();
  return {
    scenario: sc.name,
    seed,
    ok: v === null,
    ...(v ? { violation: { invariant: v.invariant, detail: v.detail, at: v.at } } : {}),
    trace,
    traceHash: traceHash(trace),
    simMs: world.scheduler.now,
    wallMs: performance.now() - started,
    events: world.scheduler.processed,
    calls,
    settled,
    checks: Object.fromEntries(inv.checks),
    command: replayCommand(sc.name, seed, options),
  };
}

export interface SweepOptions extends RunOptions {
  seeds: number;
  firstSeed?: number;
  /** Stop a scenario's sweep at its first failure (the teeth tests want just one). */
  stopOnFailure?: boolean;
  /**
   * Worker threads (default 1: every run on the calling thread). The result does not depend on
   * it; `observe` works with 1 only (a function cannot cross to a thread).
   */
  jobs?: number;
  /**
   * Called once per reported run, in the sequential sweep's order (scenario, then seed) whatever
   * `jobs`: with jobs > 1 a finished run waits for the runs before it, so progress may lag by the
   * slowest run in flight. `r.trace` is there for failures only.
   */
  onRun?: (done: number, total: number, r: SweptRun) => void;
}

export interface SweepResult {
  /**
   * Runs reported: every (scenario, seed), or with stopOnFailure each scenario's seeds up to its
   * first failure. Runs of later seeds that were already in flight on other threads when a
   * failure came back are dropped, so the count equals a sequential sweep's.
   */
  runs: number;
  /** In scenario order, then seed order. */
  failures: RunResult[];
  simMs: number;
  wallMs: number;
}

/** What a sweep keeps of a run, and all that crosses back from a worker thread: the trace only for a failure. */
export type SweptRun = (RunResult & { ok: false }) | (Omit<RunResult, 'trace'> & { ok: true });

export function sweptRun(r: RunResult): SweptRun {
  if (!r.ok) return { ...r, ok: false };
  const { trace: _passed, ...kept } = r;
  return { ...kept, ok: true };
}

/** One (scenario, seed) of a sweep; `index` is its place in the sequential order. */
export interface SweepTask {
  index: number;
  scenario: string;
  seed: number;
}

/**
 * The bookkeeping of a sweep, whichever thread runs it: hands out tasks in sequential order and
 * reports results in that order, whatever order they come back in. With stopOnFailure, the
 * seeds after a scenario's lowest known failure are no longer handed out, and results for them
 * are dropped; so the report is exactly that of a sequential sweep.
 */
export class SweepPlan {
  readonly total: number;
  readonly result: SweepResult = { runs: 0, failures: [], simMs: 0, wallMs: 0 };
  readonly #scenarios: readonly string[];
  readonly #firstSeed: number;
  readonly #seeds: number;
  readonly #stopOnFailure: boolean;
  readonly #onRun: SweepOptions['onRun'];
  /** Lowest failing seed seen so far per scenario (stopOnFailure only). */
  readonly #firstFailure: number[];
  #nextToHandOut = 0;
  #nextToReport = 0;
  readonly #waiting = new Map<number, SweptRun>();

  constructor(scenarios: readonly string[], options: Pick<SweepOptions, 'seeds' | 'firstSeed' | 'stopOnFailure' | 'onRun'>) {
    this.#scenarios = scenarios;
    this.#firstSeed = options.firstSeed ?? 1;
    this.#seeds = options.seeds;
    this.#stopOnFailure = options.stopOnFailure === true;
    this.#onRun = options.onRun;
    this.#firstFailure = scenarios.map(() => Infinity);
    this.total = scenarios.length * options.seeds;
  }

  /** The next task to run, or undefined when none is left (tasks are never added back). */
  next(): SweepTask | undefined {
    while (this.#nextToHandOut < this.total) {
      const task = this.#task(this.#nextToHandOut++);
      if (task.seed <= this.#firstFailure[Math.floor(task.index / this.#seeds)]!) return task;
    }
    return undefined;
  }

  /** Takes the result of a task handed out by next(), in any order. */
  add(task: SweepTask, run: SweptRun): void {
    const sc = Math.floor(task.index / this.#seeds);
    if (!run.ok && this.#stopOnFailure) this.#firstFailure[sc] = Math.min(this.#firstFailure[sc]!, task.seed);
    if (task.index >= this.#nextToReport) this.#waiting.set(task.index, run);
    for (let r = this.#waiting.get(this.#nextToReport); r !== undefined; r = this.#waiting.get(this.#nextToReport)) {
      this.#waiting.delete(this.#nextToReport);
      this.#report(r);
      if (!r.ok && this.#stopOnFailure) {
        // Skip to the next scenario; drop what came back early for the seeds skipped.
        this.#nextToReport = (Math.floor(this.#nextToReport / this.#seeds) + 1) * this.#seeds;
        for (const i of this.#waiting.keys()) if (i < this.#nextToReport) this.#waiting.delete(i);
      } else {
        this.#nextToReport++;
      }
    }
  }

  #task(index: number): SweepTask {
    return { index, scenario: this.#scenarios[Math.floor(index / this.#seeds)]!, seed: this.#firstSeed + (index % this.#seeds) };
  }

  #report(r: SweptRun): void {
    const out = this.result;
    out.runs++;
    out.simMs += r.simMs;
    this.#onRun?.(out.runs, this.total, r);
    if (!r.ok) out.failures.push(r);
  }
}

export async function sweep(names: readonly string[] | 'all', options: SweepOptions): Promise<SweepResult> {
  const list = names === 'all' ? SCENARIOS : names.map(scenarioByName);
  const jobs = options.jobs ?? 1;
  if (!Number.isInteger(jobs) || jobs < 1) throw new SweepError('sim_sweep_bad_options', 'jobs must be a positive integer');
  if (jobs > 1 && options.observe) throw new SweepError('sim_sweep_bad_options', 'observe runs on the calling thread: use jobs 1');
  const plan = new SweepPlan(list.map((sc) => sc.name), options);
  const threads = Math.min(jobs, plan.total);
  const started = performance.now();
  if (threads <= 1) {
    for (let task = plan.next(); task; task = plan.next()) {
      let r: RunResult;
      try {
        r = await runScenario(task.scenario, task.seed, options);
      } catch (err) {
        throw runThrew(task, err);
      }
      plan.add(task, sweptRun(r));
    }
  } else {
    await runOnThreads(plan, runVariant(options), threads);
  }
  plan.result.wallMs = performance.now() - started;
  return plan.result;
}
