import t from 'tap';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';
import type { RpcResponse } from '../../runtime/mcp/jsonrpc.ts';
import type { SimSystem } from '../system/compose.ts';
import { BREAKER_RESET_MS } from '../system/gateway.ts';
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

t.test('the circuit refuses at once, and an open one tells the agent when it lets a trial call through', async (t) => {
  const base = scenarioByName('flapping-upstream');
  const talos: Record<string, unknown>[] = [];
  const watched: Scenario = {
    ...base,
    async setup(world) {
      const plan = await base.setup(world);
      // A spy on the gateway's answers (the agent reads them only after decryption).
      const gateway = plan.sys.gateway as unknown as { finish(callId: string, c: unknown, response: RpcResponse): void };
      const finish = gateway.finish.bind(gateway);
      gateway.finish = (callId, c, response) => {
        const data = 'error' in response ? (response.error.data as { talos?: Record<string, unknown> } | undefined)?.talos : undefined;
        if (data?.reason === 'upstream_unavailable') talos.push(data);
        finish(callId, c, response);
      };
      return plan;
    },
  };
  const r = await runScenario(watched, 2);
  t.ok(r.ok, r.violation?.detail ?? 'passes');
  const circuit = talos.filter((d) => d.breaker === 'open');
  const open = circuit.filter((d) => d.retryAfterMs !== undefined); // the rest: half-open, its trial call in flight
  t.ok(open.length > 0 && circuit.length < talos.length, `${circuit.length} of ${talos.length} upstream_unavailable refusals come from the circuit, ${open.length} while it is open`);
  t.ok(open.every((d) => Number.isInteger(d.retryAfterMs) && (d.retryAfterMs as number) >= 1 && (d.retryAfterMs as number) <= BREAKER_RESET_MS), 'an open circuit says when to come back, within the reset timeout');
  t.ok(talos.every((d) => d.breaker === 'open' || d.retryAfterMs === undefined), 'a timeout or an upstream error gives no hint');
});
