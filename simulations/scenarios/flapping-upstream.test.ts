import t from 'tap';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import type { RpcResponse } from '../../runtime/mcp/jsonrpc.ts';
import type { SimSystem } from '../system/compose.ts';
import { BREAKER_RESET_MS } from '../system/gateway.ts';
import { scenarioByName, type Scenario } from './index.ts';

sweepScenarios(t, ['flapping-upstream']);

/** Runs flapping-upstream at seed 2, handing its system to `watch` before the load starts. */
function runWatched(watch: (sys: SimSystem) => void) {
  const base = scenarioByName('flapping-upstream');
  const watched: Scenario = {
    ...base,
    async setup(world) {
      const plan = await base.setup(world);
      watch(plan.sys);
      return plan;
    },
  };
  return runScenario(watched, 2);
}

t.test("the gateway breaker's rolling window turns on simulated time", async (t) => {
  let sys: SimSystem | undefined;
  const r = await runWatched((s) => (sys = s));
  t.ok(r.ok, r.violation?.detail ?? 'passes');
  const stats = sys!.gateway.breaker.stats;
  t.ok(sys!.truth.forwards >= 10, `${sys!.truth.forwards} calls forwarded over ${r.simMs} ms`);
  // Nothing is forwarded in the run's last second (the load has ended): a window that turns
  // holds no fire by then; one that never turns holds the whole run's.
  t.equal(stats.fires, 0, `the window holds ${stats.fires} fires at the end`);
});

t.test('the circuit refuses at once, with one audit entry, and an open one says when it lets a trial call through', async (t) => {
  const refusals: { msgHash: string; talos: Record<string, unknown> }[] = [];
  let sys: SimSystem | undefined;
  const r = await runWatched((s) => {
    sys = s;
    // A spy on the gateway's answers (the agent reads them only after decryption).
    const gateway = s.gateway as unknown as { finish(callId: string, c: { msgHash: string }, response: RpcResponse): void };
    const finish = gateway.finish.bind(gateway);
    gateway.finish = (callId, c, response) => {
      const talos = 'error' in response ? (response.error.data as { talos?: Record<string, unknown> } | undefined)?.talos : undefined;
      if (talos?.reason === 'upstream_unavailable') refusals.push({ msgHash: c.msgHash, talos });
      finish(callId, c, response);
    };
  });
  t.ok(r.ok, r.violation?.detail ?? 'passes');
  const open = refusals.filter((x) => x.talos.retryAfterMs !== undefined);
  const behindTrial = refusals.filter((x) => x.talos.breaker === 'open' && x.talos.retryAfterMs === undefined);
  t.ok(open.length > 0 && open.length + behindTrial.length < refusals.length, `${refusals.length} upstream_unavailable refusals: ${open.length} by the open circuit, ${behindTrial.length} behind a half-open trial, the rest timeouts and upstream errors`);
  t.ok(open.every((x) => x.talos.breaker === 'open' && Number.isInteger(x.talos.retryAfterMs) && (x.talos.retryAfterMs as number) >= 1 && (x.talos.retryAfterMs as number) <= BREAKER_RESET_MS), 'an open circuit says when to come back, within the reset timeout');
  t.ok(refusals.every((x) => x.talos.breaker === 'open' || x.talos.retryAfterMs === undefined), 'a timeout or an upstream error gives no hint');
  const leaves = (await sys!.auditor.store.readLeaves(0, 10_000)).map((l) => JSON.parse(fromUtf8(l.leaf)) as { kind: string; msg_hash: string; decision?: string; reason: string });
  const entries = (h: string) => leaves.filter((e) => e.msg_hash === h).map((e) => `${e.kind}:${e.decision ?? ''}:${e.reason}`);
  // Refused at once by the circuit: a deny entry and nothing else. The others were admitted,
  // and refused at fire() by a circuit that opened while they were on their way.
  const atOnce = open.filter((x) => entries(x.msgHash).includes('request:deny:upstream_unavailable'));
  t.ok(atOnce.length > open.length / 2, `${atOnce.length} of ${open.length} refused at once`);
  t.ok(atOnce.every((x) => entries(x.msgHash).every((e) => e === 'request:deny:upstream_unavailable')), 'refused at once: a deny entry (or its re-sent copy), never an allow');
  t.ok(behindTrial.length > 0 && behindTrial.every((x) => entries(x.msgHash).every((e) => e === 'request:deny:upstream_unavailable')), 'refused behind a half-open trial: at once too');
});
