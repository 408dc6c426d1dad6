import type { Test } from 'tap';
import { sweep } from './runner.ts';

/** Seeds every scenario must pass in the test suite (long sweeps are `talos sim sweep`). */
export const SUITE_SEEDS = 50;

/** Runs SUITE_SEEDS seeds of each named scenario; a failure names the command that replays it. */
export function sweepScenarios(t: Test, names: string[]): void {
  for (const name of names) {
    t.test(`${name}: ${SUITE_SEEDS} seeds, every invariant holds`, async (t) => {
      const checks = new Map<string, number>();
      let calls = 0;
      const r = await sweep([name], {
        seeds: SUITE_SEEDS,
        onRun: (_d, _t, run) => {
          calls += run.calls;
          for (const [k, v] of Object.entries(run.checks)) checks.set(k, (checks.get(k) ?? 0) + v);
        },
      });
      t.equal(r.runs, SUITE_SEEDS);
      const f = r.failures[0];
      t.equal(r.failures.length, 0, f ? `replay: ${f.command} (${f.violation!.invariant}: ${f.violation!.detail})` : 'no failure');
      t.ok(calls > SUITE_SEEDS * 5, `${calls} calls made`);
      for (const inv of ['audit-before-forward', 'oracle-agrees', 'checkpoints-consistent', 'delivered-once', 'no-secrets-leak', 'progress-after-heal']) {
        t.ok((checks.get(inv) ?? 0) > 0, `${inv} was checked ${checks.get(inv) ?? 0} times`);
      }
    });
  }
}
