import t from 'tap';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';

sweepScenarios(t, ['token-revoked']);

t.test('the token is revoked while one of its calls is on its way to the upstream, in every seed', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const r = await runScenario('token-revoked', seed);
    t.ok(r.ok, `seed ${seed} passes`);
    t.match(r.trace, /"fault":"revocation"[^\n]*: call agent-0:\S+ of the token's agent is on its way to the upstream/, `seed ${seed}: revoked mid-call`);
  }
});
