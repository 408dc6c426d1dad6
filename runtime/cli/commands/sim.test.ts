import t from 'tap';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeTrace } from '../../inspect/trace.ts';
import type { CliContext } from '../command.ts';
import { runCli } from '../main.ts';
import { defaultTracePath, MAX_SWEEP_JOBS, MIN_RUNS_PER_THREAD, simCommands, SWEEP_THREAD_BYTES, sweepJobs } from './sim.ts';
import { UsageError } from '../command.ts';

function capture(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: {}, cwd, json: false, interactive: false };
  return { ctx, out: () => out.join(''), err: () => err.join('') };
}

const dir = mkdtempSync(join(tmpdir(), 'talos-sim-cli-'));

t.test('sim list names every scenario', async (t) => {
  const io = capture(dir);
  t.equal(await runCli(['sim', 'list', '--json'], io.ctx, simCommands), 0);
  const list = JSON.parse(io.out()) as { name: string }[];
  t.ok(list.length >= 12);
  t.ok(list.some((s) => s.name === 'gateway-crash'));
});

t.test('sim run writes the trace and prints its hash; twice gives the same bytes', async (t) => {
  const io = capture(dir);
  t.equal(await runCli(['sim', 'run', 'partition', '--seed', '5'], io.ctx, simCommands), 0);
  const hash = /sha256 ([0-9a-f]{64})/.exec(io.out())![1];
  const file = join(dir, 'sim-traces', 'partition-seed-5.jsonl');
  const first = readFileSync(file, 'utf8');
  t.equal(decodeTrace(first).header.source, 'sim:partition');
  const io2 = capture(dir);
  t.equal(await runCli(['sim', 'run', 'partition', '--seed', '5', '--out', 'again.jsonl'], io2.ctx, simCommands), 0);
  t.equal(/sha256 ([0-9a-f]{64})/.exec(io2.out())![1], hash);
  t.equal(readFileSync(join(dir, 'again.jsonl'), 'utf8'), first);
});

t.test('sim sweep reports runs and speed; a small sweep stays on the calling thread by default', async (t) => {
  const io = capture(dir);
  t.equal(await runCli(['sim', 'sweep', 'redis-outage', '--seeds', '3', '--json'], io.ctx, simCommands), 0);
  const r = JSON.parse(io.out()) as { runs: number; jobs: number; failures: unknown[]; speedup: number };
  t.equal(r.runs, 3);
  t.equal(r.jobs, 1);
  t.same(r.failures, []);
  t.ok(r.speedup > 0);
});

t.test('sim sweep --jobs 2 runs the seeds on two threads and reports as one thread would', async (t) => {
  // replay-tamper with this broken variant fails at seeds 2 and 4 of 1..4.
  const argv = ['sim', 'sweep', 'replay-tamper', '--seeds', '4', '--broken', 'non-transactional-decrypt'];
  const io = capture(dir);
  t.equal(await runCli([...argv, '--jobs', '2'], io.ctx, simCommands), 1);
  const file = (seed: number) => join(dir, 'sim-traces', `replay-tamper-seed-${seed}-broken-non-transactional-decrypt.jsonl`);
  t.equal(
    io.out().replace(/^.*\n/, ''),
    `  replay: talos sim run replay-tamper --seed 2 --broken non-transactional-decrypt\n  trace: ${file(2)}\n` +
      `  replay: talos sim run replay-tamper --seed 4 --broken non-transactional-decrypt\n  trace: ${file(4)}\n`,
    'each failure: its replay command and its trace file',
  );
  t.match(io.out(), /^4 runs on 2 threads, 2 failed; .* s simulated in .* s \(\d+x real time\)\n/);
  t.equal((io.err().match(/^FAIL replay-tamper seed \d/gm) ?? []).join(), 'FAIL replay-tamper seed 2,FAIL replay-tamper seed 4', 'failures printed in seed order');
  t.match(io.err(), `\n  replay: talos sim run replay-tamper --seed 4 --broken non-transactional-decrypt\n  trace: ${file(4)}\n`, 'the FAIL lines name the trace');
  const trace = readFileSync(file(4), 'utf8');
  t.equal(decodeTrace(trace).header.seed, 4, 'the trace of a failure found on a thread is written');
});

t.test('sim sweep --json gives each failure its trace file', async (t) => {
  const io = capture(dir);
  io.ctx.json = true;
  t.equal(await runCli(['sim', 'sweep', 'replay-tamper', '--seeds', '1', '--from', '2', '--broken', 'non-transactional-decrypt', '--jobs', '1'], io.ctx, simCommands), 1);
  const r = JSON.parse(io.out()) as { failures: { seed: number; trace: string }[] };
  t.same(r.failures.map((f) => f.trace), [join(dir, 'sim-traces', 'replay-tamper-seed-2-broken-non-transactional-decrypt.jsonl')]);
  t.equal(decodeTrace(readFileSync(r.failures[0]!.trace, 'utf8')).header.seed, 2);
  t.equal(io.err(), '', 'no FAIL lines in --json mode');
});

t.test('sim run names its default trace by variant: a plain run does not overwrite a broken one', async (t) => {
  const d = mkdtempSync(join(tmpdir(), 'talos-sim-cli-'));
  const traces = join(d, 'sim-traces');
  t.equal(await runCli(['sim', 'run', 'replay-tamper', '--seed', '2', '--broken', 'non-transactional-decrypt'], capture(d).ctx, simCommands), 1);
  t.equal(await runCli(['sim', 'run', 'replay-tamper', '--seed', '2', '--crypto', 'noble'], capture(d).ctx, simCommands), 0);
  t.equal(await runCli(['sim', 'run', 'replay-tamper', '--seed', '2'], capture(d).ctx, simCommands), 0);
  const broken = readFileSync(join(traces, 'replay-tamper-seed-2-broken-non-transactional-decrypt.jsonl'), 'utf8');
  t.ok(decodeTrace(broken).events.some((e) => e.kind === 'fault' && e.fault === 'violation'), "the broken run's failure is still there");
  t.ok(existsSync(join(traces, 'replay-tamper-seed-2-noble.jsonl')));
  t.ok(existsSync(join(traces, 'replay-tamper-seed-2.jsonl')), 'a plain run keeps its name');
  t.equal(defaultTracePath('partition', 3, { crypto: 'node' }), 'sim-traces/partition-seed-3.jsonl', 'node is the default provider');
  t.equal(defaultTracePath('partition', 3, { __broken: 'skip-sub-check', crypto: 'noble' }), 'sim-traces/partition-seed-3-broken-skip-sub-check-noble.jsonl');
});

t.test('sim sweep may end at the largest seed sim run accepts, not past it', async (t) => {
  const io = capture(dir);
  io.ctx.json = true;
  const last = Number.MAX_SAFE_INTEGER;
  t.equal(await runCli(['sim', 'sweep', 'partition', '--seeds', '2', '--from', String(last - 1), '--jobs', '1'], io.ctx, simCommands), 0);
  t.equal((JSON.parse(io.out()) as { runs: number }).runs, 2);
  t.equal(await runCli(['sim', 'run', 'partition', '--seed', String(last), '--out', 'last.jsonl'], capture(dir).ctx, simCommands), 0, 'its last seed replays');
});

t.test('usage errors exit 2', async (t) => {
  for (const argv of [
    ['sim', 'run', 'partition'],
    ['sim', 'run', 'nope', '--seed', '1'],
    ['sim', 'run', 'partition', '--seed', '-1'],
    ['sim', 'run', 'partition', '--seed', '1', '--broken', 'nothing'],
    ['sim', 'sweep', 'all', '--seeds', '0'],
    ['sim', 'sweep', 'all', '--jobs', '0'],
    ['sim', 'sweep', 'all', '--jobs', '257'],
    ['sim', 'sweep', 'all', '--jobs', '1.5'],
    ['sim', 'sweep', 'all', '--jobs', 'many'],
    ['sim', 'sweep', 'partition', '--seeds', '2', '--from', String(Number.MAX_SAFE_INTEGER)],
    ['sim', 'sweep', 'partition', '--seeds', '1000000', '--from', String(Number.MAX_SAFE_INTEGER - 999_998)],
  ]) {
    const io = capture(dir);
    t.equal(await runCli(argv, io.ctx, simCommands), 2, argv.join(' '));
  }
});

t.test('--jobs: no more threads than the free memory holds, whether asked for or by default', async (t) => {
  const runs = 100 * MIN_RUNS_PER_THREAD;
  const free = 10.5 * SWEEP_THREAD_BYTES; // room for 10 threads
  t.equal(sweepJobs('10', runs, free, 64), 10, 'as many as fit');
  t.throws(() => sweepJobs('11', runs, free, 64), { name: 'UsageError', message: /--jobs 11 needs about 2\.1 GB \(192 MB a thread\) and 2\.0 GB is free: at most 10 here/ }, 'one more is refused, with the arithmetic');
  t.equal(sweepJobs(undefined, runs, free, 64), 10, 'the default stays within memory on a machine with more cores');
  t.equal(sweepJobs(undefined, runs, 0, 64), 1, 'and falls back to one thread without any');
  t.equal(sweepJobs('1', runs, 0, 64), 1, 'one thread is always allowed');
  t.equal(sweepJobs(undefined, runs, 1e15, 4), 4, 'with memory to spare: one per core');
  t.equal(sweepJobs(undefined, MIN_RUNS_PER_THREAD, 1e15, 4), 1, 'and one per MIN_RUNS_PER_THREAD runs');
  t.throws(() => sweepJobs(String(MAX_SWEEP_JOBS + 1), runs, 1e15, 4), UsageError, 'never past MAX_SWEEP_JOBS');
});

