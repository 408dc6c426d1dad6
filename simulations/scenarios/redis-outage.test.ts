import t from 'tap';
import { INVARIANTS } from '../invariants.ts';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';
import { scenarioByName, type Scenario } from './index.ts';

sweepScenarios(t, ['redis-outage']);

t.test('a budget ledger that stays stuck after the outage is caught', async (t) => {
  const base = scenarioByName('redis-outage');
  const stuck: Scenario = {
    ...base,
    async setup(world) {
      const plan = await base.setup(world);
      const redis = plan.sys.redis;
      const budget = redis.budget as unknown as { reserve: (...args: unknown[]) => Promise<unknown> };
      const reserve = budget.reserve.bind(budget);
      // Broken on purpose: once Redis has been out, every reservation is refused for good.
      budget.reserve = async (...args) => (redis.refusedWhileDown > 0 && redis.available ? { ok: false, remaining: 0 } : reserve(...args));
      return plan;
    },
  };
  const r = await runScenario(stuck, 3);
  t.equal(r.violation?.invariant, INVARIANTS.progressAfterHeal, r.violation?.detail ?? 'no violation');
});
