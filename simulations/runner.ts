import { InvariantViolation, INVARIANTS } from './invariants.ts';
import { SCENARIOS, scenarioByName, type Scenario } from './scenarios/index.ts';
import { traceHash } from './trace-writer.ts';
import { loadEndsAt } from './system/compose.ts';
import { World, type BrokenVariant } from './world.ts';

/**
 * Runs one scenario for one seed, and sweeps many seeds. A run: build the world with fake
 * timers installed, start the workload and the fault plan, run the scheduler until the load
 * has ended and every fault has healed plus PROGRESS_BOUND_MS, checking invariants as it goes;
 * then the final checks (every call settled, the scenario's own checks).
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

/** The command that replays one run: every option that changes what the run does is carried over. */
export function replayCommand(scenario: string, seed: number, options: Pick<RunOptions, '__broken' | 'crypto'> = {}): string {
  const broken = options.__broken ? ` --broken ${options.__broken}` : '';
  const crypto = options.crypto ? ` --crypto ${options.crypto}` : '';
  return `talos sim run ${scenario} --seed ${seed}${broken}${crypto}`;
}

export async function runScenario(scenario: Scenario | string, seed: number, options: RunOptions = {}): Promise<RunResult> {
  const sc = typeof scenario === 'string' ? scenarioByName(scenario) : scenario;
  const started = performance.now();
  const world = new World({ scenario: sc.name, seed, ...(options.__broken ? { __broken: options.__broken } : {}), ...(options.crypto ? { crypto: options.crypto } : {}) });
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
    if (!(err instanceof InvariantViolation)) {
      const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      try {
        inv.fail('crash', `unexpected error: ${msg}`);
      } catch {
        /* recorded */
      }
    }
  } finally {
    world.stopSupervisor();
    world.scheduler.uninstallFakeTimers();
  }
  const calls = truth ? truth.calls.size : 0;
  const settled = truth ? calls - truth.unsettled().length : 0;
  const v = inv.violation;
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
  onRun?: (done: number, total: number, r: RunResult) => void;
}

export interface SweepResult {
  runs: number;
  failures: RunResult[];
  simMs: number;
  wallMs: number;
}

export async function sweep(names: readonly string[] | 'all', options: SweepOptions): Promise<SweepResult> {
  const list = names === 'all' ? SCENARIOS : names.map(scenarioByName);
  const first = options.firstSeed ?? 1;
  const total = list.length * options.seeds;
  const out: SweepResult = { runs: 0, failures: [], simMs: 0, wallMs: 0 };
  const started = performance.now();
  for (const sc of list) {
    for (let s = first; s < first + options.seeds; s++) {
      const r = await runScenario(sc, s, options);
      out.runs++;
      out.simMs += r.simMs;
      options.onRun?.(out.runs, total, r);
      if (!r.ok) {
        out.failures.push(r);
        if (options.stopOnFailure) break;
      }
    }
  }
  out.wallMs = performance.now() - started;
  return out;
}
