import t from 'tap';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';
import { scenarioByName, type Scenario } from './index.ts';

sweepScenarios(t, ['clock-skew']);

t.test('the skew shows: tokens expire mid-run in most seeds, and a gateway clock behind the issuer refuses them as not yet valid', async (t) => {
  const base = scenarioByName('clock-skew');
  const seeds = 20;
  const seen = { expired: 0, not_yet_valid: 0, ok: 0 };
  for (let seed = 1; seed <= seeds; seed++) {
    const outcomes = new Set<string>();
    const recording: Scenario = {
      ...base,
      async setup(world) {
        const plan = await base.setup(world);
        return {
          ...plan,
          async final() {
            await plan.final?.();
            for (const c of plan.sys.truth.calls.values()) outcomes.add(c.reason ?? c.outcome ?? '');
          },
        };
      },
    };
    t.ok((await runScenario(recording, seed)).ok, `seed ${seed} passes`);
    for (const k of Object.keys(seen) as (keyof typeof seen)[]) if (outcomes.has(k)) seen[k]++;
  }
  t.ok(seen.expired >= seeds * 0.75, `calls refused as expired in ${seen.expired} of ${seeds} seeds`);
  t.ok(seen.not_yet_valid >= seeds * 0.25, `calls refused as not yet valid in ${seen.not_yet_valid} of ${seeds} seeds`);
  t.ok(seen.ok >= seeds * 0.75, `calls answered in ${seen.ok} of ${seeds} seeds`);
});
