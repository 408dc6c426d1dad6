import t from 'tap';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import { sweepScenarios } from '../sweep-check.ts';
import { loadEndsAt } from '../system/compose.ts';
import { World } from '../world.ts';
import { scenarioByName } from './index.ts';

sweepScenarios(t, ['load-spike']);

t.test('the spike really hits both the rate limit and the budget', async (t) => {
  const world = new World({ scenario: 'load-spike', seed: 1 });
  world.scheduler.installFakeTimers();
  let reasons: string[] = [];
  let quiet: { issuedAt: number; outcome?: string }[] = [];
  let spikeEnds = 0;
  try {
    const plan = await scenarioByName('load-spike').setup(world);
    plan.sys.startLoad();
    spikeEnds = plan.sys.options.loadUntil;
    await world.scheduler.run(loadEndsAt(plan.sys.options) + 2000);
    reasons = (await plan.sys.auditor.store.readLeaves(0, 10_000)).map((l) => (JSON.parse(fromUtf8(l.leaf)) as { reason?: string }).reason ?? '');
    quiet = [...plan.sys.truth.calls.values()].filter((c) => c.agent.startsWith('quiet-'));
  } finally {
    world.scheduler.uninstallFakeTimers();
  }
  t.ok(reasons.includes('rate_limited'), 'rate_limited decisions');
  t.ok(reasons.includes('budget_exhausted'), 'budget_exhausted decisions');
  t.ok(reasons.includes('granted'), 'granted decisions');
  t.equal(quiet.length, 8, 'two quiet agents make four calls each');
  t.ok(quiet.some((c) => c.issuedAt < spikeEnds), 'a quiet agent calls during the spike');
  t.ok(quiet.some((c) => c.outcome === 'ok'), 'quiet agents get results');
});
