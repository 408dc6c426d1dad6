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
  let quiet: { issuedAt: number; settledAt?: number; outcome?: string }[] = [];
  let limited: number[] = [];
  try {
    const plan = await scenarioByName('load-spike').setup(world);
    plan.sys.startLoad();
    await world.scheduler.run(loadEndsAt(plan.sys.options) + 2000);
    reasons = (await plan.sys.auditor.store.readLeaves(0, 10_000)).map((l) => (JSON.parse(fromUtf8(l.leaf)) as { reason?: string }).reason ?? '');
    const calls = [...plan.sys.truth.calls.values()];
    quiet = calls.filter((c) => c.agent.startsWith('quiet-'));
    limited = calls.filter((c) => c.reason === 'rate_limited' || c.reason === 'budget_exhausted').map((c) => c.settledAt!);
  } finally {
    world.scheduler.uninstallFakeTimers();
  }
  t.ok(reasons.includes('rate_limited'), 'rate_limited decisions');
  t.ok(reasons.includes('budget_exhausted'), 'budget_exhausted decisions');
  t.ok(reasons.includes('granted'), 'granted decisions');
  t.equal(quiet.length, 6, 'two quiet agents make three calls each');
  // Isolation is only tested if a quiet call is answered while the busy agents are being refused.
  const amid = quiet.filter((c) => c.outcome === 'ok' && limited.some((at) => at < c.issuedAt) && limited.some((at) => at > c.settledAt!));
  t.ok(amid.length > 0, `${amid.length} quiet call(s) answered with a result between two limit refusals of busy agents`);
});
