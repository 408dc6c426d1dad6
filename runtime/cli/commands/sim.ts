import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { optionalString, output, UsageError, type CliCommand, type CliContext, type OptionValues } from '../command.ts';
import { progressBar } from '../progress.ts';
import { runScenario, sweep, type RunResult, type RunVariant } from '../../../simulations/runner.ts';
import { SCENARIOS, scenarioByName } from '../../../simulations/scenarios/index.ts';
import { BROKEN_VARIANTS, type BrokenVariant } from '../../../simulations/world.ts';

/**
 * `talos sim`: the deterministic chaos simulator. `run` replays one scenario from one seed and
 * writes its trace (open it with `talos inspect --trace FILE`); `sweep` runs many seeds and
 * prints, for every failure, the exact command that replays it and the trace file it wrote;
 * `list` names the scenarios.
 */
export const TRACE_DIR = 'sim-traces';
/** Seeds one sweep may ask for (per scenario). */
export const MAX_SWEEP_SEEDS = 1_000_000;
/** Worker threads one sweep may ask for (fewer when the free memory would not hold them). */
export const MAX_SWEEP_JOBS = 256;
/**
 * Memory a sweep thread is counted at: each holds a whole runtime with its TypeScript loaded
 * (130-150 MB measured, with 4 and 8 threads sweeping partition), with a margin.
 */
export const SWEEP_THREAD_BYTES = 192 * 1024 * 1024;
/**
 * Runs a worker thread must get before the default gives it one: a thread spends 1-3 s loading
 * TypeScript before its first run (40-60 runs' worth, measured on 2-core hosts), so smaller
 * sweeps stay on the calling thread.
 */
export const MIN_RUNS_PER_THREAD = 100;

function seedOption(options: OptionValues, name: string, fallback?: number): number {
  const raw = optionalString(options, name);
  if (raw === undefined) {
    if (fallback !== undefined) return fallback;
    throw new UsageError(`--${name} is required`);
  }
  if (!/^(0|[1-9][0-9]*)$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new UsageError(`--${name} must be a non-negative integer`);
  return Number(raw);
}

/**
 * The sweep's thread count from `--jobs` (raw; undefined: the default) for `runs` runs, given
 * the machine's free memory: a count whose threads would not fit is refused, not tried (the
 * process would be killed for it, far into the sweep).
 */
export function sweepJobs(raw: string | undefined, runs: number, freeBytes: number, cores: number = availableParallelism()): number {
  const fit = Math.max(1, Math.floor(freeBytes / SWEEP_THREAD_BYTES));
  if (raw === undefined) return Math.max(1, Math.min(cores, MAX_SWEEP_JOBS, fit, Math.floor(runs / MIN_RUNS_PER_THREAD)));
  if (!/^[1-9][0-9]*$/.test(raw) || Number(raw) > MAX_SWEEP_JOBS) throw new UsageError(`--jobs must be 1..${MAX_SWEEP_JOBS}`);
  const jobs = Number(raw);
  if (jobs > fit) {
    const gb = (bytes: number) => (bytes / 2 ** 30).toFixed(1);
    throw new UsageError(`--jobs ${jobs} needs about ${gb(jobs * SWEEP_THREAD_BYTES)} GB (${SWEEP_THREAD_BYTES / 2 ** 20} MB a thread) and ${gb(freeBytes)} GB is free: at most ${fit} here`);
  }
  return jobs;
}

function brokenOption(options: OptionValues): BrokenVariant | undefined {
  const b = optionalString(options, 'broken');
  if (b === undefined) return undefined;
  if (!(BROKEN_VARIANTS as readonly string[]).includes(b)) throw new UsageError(`--broken must be one of ${BROKEN_VARIANTS.join(', ')}`);
  return b as BrokenVariant;
}

function cryptoOption(options: OptionValues): 'node' | 'noble' | undefined {
  const c = optionalString(options, 'crypto');
  if (c === undefined) return undefined;
  if (c !== 'node' && c !== 'noble') throw new UsageError('--crypto must be node or noble');
  return c;
}

function scenarioArg(positionals: string[]): string {
  const name = positionals[0];
  if (!name) throw new UsageError(`name a scenario (talos sim list): ${SCENARIOS.map((s) => s.name).join(', ')}`);
  if (!SCENARIOS.some((s) => s.name === name)) throw new UsageError(`unknown scenario "${name}"; talos sim list shows them`);
  return name;
}

function variantOptions(options: OptionValues): RunVariant {
  const broken = brokenOption(options);
  const crypto = cryptoOption(options);
  return { ...(broken ? { __broken: broken } : {}), ...(crypto ? { crypto } : {}) };
}

/**
 * Where a run's trace goes by default. A variant is in the name, so a plain run of a seed does
 * not overwrite the trace of its broken run; `--crypto node` is the default provider, no suffix.
 */
export function defaultTracePath(scenario: string, seed: number, variant: RunVariant = {}): string {
  const broken = variant.__broken ? `-broken-${variant.__broken}` : '';
  const crypto = variant.crypto === 'noble' ? '-noble' : '';
  return `${TRACE_DIR}/${scenario}-seed-${seed}${broken}${crypto}.jsonl`;
}

function traceFile(ctx: CliContext, r: RunResult, variant: RunVariant, out?: string): string {
  return resolve(ctx.cwd, out ?? defaultTracePath(r.scenario, r.seed, variant));
}

function writeTrace(ctx: CliContext, r: RunResult, variant: RunVariant, out?: string): string {
  const file = traceFile(ctx, r, variant, out);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, r.trace);
  return file;
}

function summary(r: RunResult) {
  return {
    scenario: r.scenario,
    seed: r.seed,
    ok: r.ok,
    ...(r.violation ? { violation: r.violation } : {}),
    traceHash: r.traceHash,
    simulatedMs: r.simMs,
    wallMs: Math.round(r.wallMs),
    calls: r.calls,
    settled: r.settled,
    command: r.command,
  };
}

const SHARED_OPTIONS = [
  { name: 'crypto', type: 'string' as const, description: 'crypto provider for the run: node or noble (same bytes)' },
  { name: 'broken', type: 'string' as const, description: `TEST ONLY: a deliberately broken variant (${BROKEN_VARIANTS.join(', ')})` },
];

export const simCommands: CliCommand[] = [
  {
    name: 'sim list',
    summary: 'list the chaos scenarios',
    usage: 'talos sim list',
    examples: ['talos sim list', 'talos sim list --json'],
    options: [],
    async run(_args, ctx) {
      output(ctx, SCENARIOS.map((s) => ({ name: s.name, summary: s.summary })), () => {
        const w = Math.max(...SCENARIOS.map((s) => s.name.length));
        return SCENARIOS.map((s) => `${s.name.padEnd(w)}  ${s.summary}`).join('\n');
      });
      return 0;
    },
  },
  {
    name: 'sim run',
    summary: 'run one scenario from one seed; writes its trace (byte-identical for the same seed)',
    usage: 'talos sim run <scenario> --seed N [--out FILE]',
    positionals: ['scenario'],
    examples: ['talos sim run gateway-crash --seed 7', 'talos sim run partition --seed 42 --out /tmp/p.jsonl && talos inspect --trace /tmp/p.jsonl'],
    options: [
      { name: 'seed', type: 'string', description: 'the seed (a non-negative integer)' },
      { name: 'out', type: 'string', description: `trace file (default ${TRACE_DIR}/<scenario>-seed-<N>.jsonl, with -broken-<variant> and -noble before .jsonl for those options)` },
      ...SHARED_OPTIONS,
    ],
    async run({ options, positionals }, ctx) {
      const name = scenarioArg(positionals);
      const seed = seedOption(options, 'seed');
      const variant = variantOptions(options);
      const r = await runScenario(scenarioByName(name), seed, variant);
      const file = writeTrace(ctx, r, variant, optionalString(options, 'out'));
      output(ctx, { ...summary(r), trace: file }, () =>
        [
          `${r.ok ? 'PASS' : 'FAIL'} ${r.scenario} seed ${r.seed}: ${r.settled}/${r.calls} calls answered, ${r.simMs} ms simulated in ${Math.round(r.wallMs)} ms`,
          ...(r.violation ? [`  invariant ${r.violation.invariant} violated at t=${r.violation.at}ms: ${r.violation.detail}`] : []),
          `  trace ${file}`,
          `  sha256 ${r.traceHash}`,
        ].join('\n'),
      );
      return r.ok ? 0 : 1;
    },
  },
  {
    name: 'sim sweep',
    summary: 'run a scenario (or all) over many seeds; prints the replay command and trace file of every failure',
    usage: 'talos sim sweep <scenario|all> --seeds K [--from N] [--first-failure] [--jobs N]',
    positionals: ['scenario'],
    examples: ['talos sim sweep all --seeds 100', 'talos sim sweep swarm --seeds 1000 --from 5000', 'talos sim sweep all --seeds 1000 --jobs 8'],
    options: [
      { name: 'seeds', type: 'string', description: 'seeds per scenario', default: '100' },
      { name: 'from', type: 'string', description: 'first seed', default: '1' },
      { name: 'first-failure', type: 'boolean', description: "stop each scenario's sweep at its first failure" },
      { name: 'jobs', type: 'string', description: `worker threads, 1..${MAX_SWEEP_JOBS}, as many as the free memory holds at ${SWEEP_THREAD_BYTES / 2 ** 20} MB each (default: the machine's parallelism, at most one per ${MIN_RUNS_PER_THREAD} runs); results do not depend on it` },
      ...SHARED_OPTIONS,
    ],
    async run({ options, positionals }, ctx) {
      const target = positionals[0] === 'all' ? 'all' : scenarioArg(positionals);
      const seeds = seedOption(options, 'seeds', 100);
      if (seeds < 1 || seeds > MAX_SWEEP_SEEDS) throw new UsageError(`--seeds must be 1..${MAX_SWEEP_SEEDS}`);
      const from = seedOption(options, 'from', 1);
      // Every seed swept must be one `sim run --seed` accepts, or its replay command would be refused.
      if (from > Number.MAX_SAFE_INTEGER - (seeds - 1)) throw new UsageError(`--from ${from} with --seeds ${seeds} goes past seed ${Number.MAX_SAFE_INTEGER}, the largest sim run accepts`);
      const variant = variantOptions(options);
      const total = (target === 'all' ? SCENARIOS.length : 1) * seeds;
      // More threads than runs would only start idle threads.
      const jobs = Math.min(sweepJobs(optionalString(options, 'jobs'), total, freemem()), total);
      const bar = progressBar(ctx, 'sim sweep', total);
      const r = await sweep(target === 'all' ? 'all' : [target], {
        seeds,
        firstSeed: from,
        stopOnFailure: options['first-failure'] === true,
        jobs,
        ...variant,
        // Runs come back in sequential order whatever --jobs: the FAIL lines are the final failures.
        onRun: (done, _total, run) => {
          bar.update(done);
          if (run.ok) return;
          // Written as it is reported, so the path printed is already there to open.
          const file = writeTrace(ctx, run, variant);
          if (!ctx.json) {
            ctx.stderr(`${ctx.interactive ? '\n' : ''}FAIL ${run.scenario} seed ${run.seed}: ${run.violation!.invariant}: ${run.violation!.detail}\n  replay: ${run.command}\n  trace: ${file}\n`);
          }
        },
      });
      bar.finish();
      const failures = r.failures;
      const speed = r.wallMs > 0 ? r.simMs / r.wallMs : 0;
      output(
        ctx,
        { runs: r.runs, jobs, failures: failures.map((f) => ({ ...summary(f), trace: traceFile(ctx, f, variant) })), simulatedMs: r.simMs, wallMs: Math.round(r.wallMs), speedup: Number(speed.toFixed(1)) },
        () =>
          [
            `${r.runs} runs on ${jobs} ${jobs === 1 ? 'thread' : 'threads'}, ${failures.length} failed; ${(r.simMs / 1000).toFixed(1)} s simulated in ${(r.wallMs / 1000).toFixed(1)} s (${speed.toFixed(0)}x real time)`,
            ...failures.flatMap((f) => [`  replay: ${f.command}`, `  trace: ${traceFile(ctx, f, variant)}`]),
          ].join('\n'),
      );
      return failures.length === 0 ? 0 : 1;
    },
  },
];
