import t from 'tap';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeTrace } from '../../inspect/trace.ts';
import type { CliContext } from '../command.ts';
import { runCli } from '../main.ts';
import { simCommands } from './sim.ts';

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

t.test('sim sweep reports runs and speed', async (t) => {
  const io = capture(dir);
  t.equal(await runCli(['sim', 'sweep', 'redis-outage', '--seeds', '3', '--json'], io.ctx, simCommands), 0);
  const r = JSON.parse(io.out()) as { runs: number; failures: unknown[]; speedup: number };
  t.equal(r.runs, 3);
  t.same(r.failures, []);
  t.ok(r.speedup > 0);
});

t.test('usage errors exit 2', async (t) => {
  for (const argv of [
    ['sim', 'run', 'partition'],
    ['sim', 'run', 'nope', '--seed', '1'],
    ['sim', 'run', 'partition', '--seed', '-1'],
    ['sim', 'run', 'partition', '--seed', '1', '--broken', 'nothing'],
    ['sim', 'sweep', 'all', '--seeds', '0'],
  ]) {
    const io = capture(dir);
    t.equal(await runCli(argv, io.ctx, simCommands), 2, argv.join(' '));
  }
});
