import t from 'tap';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';
import type { SimSystem } from '../system/compose.ts';
import { scenarioByName, type Scenario } from './index.ts';

sweepScenarios(t, ['flapping-upstream']);

t.test("the gateway breaker's rolling window turns on simulated time", async (t) => {
  const base = scenarioByName('flapping-upstream');
  let sys: SimSystem | undefined;
  const watched: Scenario = {
    ...base,
    async setup(world) {
      const plan = await base.setup(world);
      sys = plan.sys;
      return plan;
    },
  };
  const r = await runScenario(watched, 2);
  t.ok(r.ok, r.violation?.detail ?? 'passes');
  const stats = sys!.gateway.breaker.stats;
  t.ok(sys!.truth.forwards >= 10, `${sys!.truth.forwards} calls forwarded over ${r.simMs} ms`);
  // Nothing is forwarded in the run's last second (the load has ended): a window that turns
  // holds no fire by then; one that never turns holds the whole run's.
  t.equal(stats.fires, 0, `the window holds ${stats.fires} fires at the end`);
});
