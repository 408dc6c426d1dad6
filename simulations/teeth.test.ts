import t from 'tap';
import type { CliContext } from '../runtime/cli/command.ts';
import { simCommands } from '../runtime/cli/commands/sim.ts';
import { runCli } from '../runtime/cli/main.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runScenario } from './runner.ts';
import type { BrokenVariant } from './world.ts';

/**
 * Teeth: each deliberately broken variant must be found by a sweep within 200 seeds, and the
 * printed command must replay the same failure.
 */
export const TEETH_SEEDS = 200;

const cases: { broken: BrokenVariant; scenario: string; invariant: string }[] = [
  { broken: 'forward-before-audit', scenario: 'audit-store-crash', invariant: 'audit-before-forward' },
  { broken: 'skip-sub-check', scenario: 'swarm', invariant: 'oracle-agrees' },
  { broken: 'non-transactional-decrypt', scenario: 'replay-tamper', invariant: 'progress-after-heal' },
  { broken: 'plaintext-frames', scenario: 'partition', invariant: 'no-secrets-leak' },
  { broken: 'shared-limits', scenario: 'load-spike', invariant: 'limits-isolated' },
  { broken: 'resend-after-restart', scenario: 'gateway-crash', invariant: 'delivered-once' },
  { broken: 'limits-fail-open', scenario: 'redis-outage', invariant: 'limits-fail-closed' },
];

function capture(cwd: string) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: {}, cwd, json: false, interactive: false };
  return { ctx, out: () => out.join(''), err: () => err.join('') };
}

for (const c of cases) {
  t.test(`${c.broken}: the ${c.scenario} sweep finds it and the replay reproduces it`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'talos-sim-'));
    const io = capture(dir);
    // One thread: the suite runs test files in parallel already (sweep.test.ts covers --jobs).
    const code = await runCli(['sim', 'sweep', c.scenario, '--seeds', String(TEETH_SEEDS), '--first-failure', '--broken', c.broken, '--jobs', '1'], io.ctx, simCommands);
    t.equal(code, 1, 'the sweep fails');
    const replay = /replay: (talos sim run \S+ --seed \d+ --broken \S+)/.exec(io.err());
    t.ok(replay, 'a replay command is printed');
    const argv = replay![1]!.split(' ').slice(1);
    const seed = Number(argv[argv.indexOf('--seed') + 1]);
    t.ok(seed >= 1 && seed <= TEETH_SEEDS, `found at seed ${seed}`);
    t.comment(`${c.broken}: ${replay![1]}`);

    const again = capture(dir);
    t.equal(await runCli([...argv, '--json'], again.ctx, simCommands), 1, 'the replay fails too');
    const result = JSON.parse(again.out()) as { violation: { invariant: string }; traceHash: string; trace: string };
    t.equal(result.violation.invariant, c.invariant);
    const direct = await runScenario(c.scenario, seed, { __broken: c.broken });
    t.equal(direct.traceHash, result.traceHash, 'same failure, same trace');
    t.equal(readFileSync(result.trace, 'utf8'), direct.trace, 'the trace file holds the run');

    const fixed = await runScenario(c.scenario, seed);
    t.ok(fixed.ok, 'the same seed passes with the real composition');
  });
}
