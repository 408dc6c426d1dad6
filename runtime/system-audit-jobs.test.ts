import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordingTransport } from '../actors/gateway/test-kit.ts';
import { createCryptoProvider } from './crypto/index.ts';
import { generateIdentity } from './identity/index.ts';
import { RPC_ERRORS } from './mcp/errors.ts';
import { createRuntime } from './index.ts';
import { auditEvents, connectAgent, eventually, getJson, refusal, text, tunnelConfig } from './system-test-kit.ts';

// The audit store's breaker and the job runner, through the whole runtime: a failing audit
// store refuses calls (never forwarded unaudited) and the TGA restarts the auditor, which
// reopens the store; the TGA's scheduled jobs (in-process without Redis) publish checkpoints and
// reset budget windows.
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-audit-jobs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const issuer = generateIdentity(crypto);
const sent: string[] = [];
const config = tunnelConfig(issuer, {
  audit: { store: `sqlite:${join(dir, 'audit.sqlite')}` },
  breaker: { volumeThreshold: 2, resetTimeoutMs: 300, errorThresholdPercentage: 50, timeoutMs: 5000 },
  limits: { rate: { capacity: 1000, refillPerSecond: 1000 }, budget: { perAgent: 2, windowSeconds: 1 } },
});
const runtime = await createRuntime({
  talos: config,
  crypto,
  health: { port: 0 },
  transports: { everything: recordingTransport(config.upstreams[0]!, sent) },
  jobs: { everyMs: { checkpointPublish: 200, signedPrekeyRotation: 200 } },
});
t.teardown(() => runtime.stop());
const { client } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
t.teardown(() => client.close());
const forwardedCalls = () => sent.filter((m) => m.includes('"tools/call"')).length;

t.test('jobs run under the TGA: checkpoints are published, budget windows reset', async (t) => {
  t.equal(runtime.scheduler?.kind, 'in-process', 'no Redis: the in-process scheduler');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'a' } })), 'Echo: a');
  const cp = await eventually(() => runtime.audit()!.auditor.latestCheckpoint() ?? undefined);
  t.ok(cp, 'the checkpoint job signed a checkpoint of the log');
  // Spend the budget (2), then wait for the window reset job.
  for (let i = 0; i < 5; i++) {
    try {
      await client.callTool({ name: 'echo', arguments: { message: 'spend' } });
    } catch (err) {
      t.equal((await refusal(Promise.reject(err))).reason, 'budget_exhausted');
      break;
    }
  }
  const again = await eventually(async () => {
    try {
      return text(await client.callTool({ name: 'echo', arguments: { message: 'new window' } }));
    } catch {
      return undefined;
    }
  }, 100, 100);
  t.equal(again, 'Echo: new window', 'a new budget window after the reset job ran');
});

t.test('the signed prekey is rotated by its job; sessions open across the rotation', async (t) => {
  const offerUrl = new URL('/.well-known/talos/offer', runtime.gatewayUrl!.replace('ws:', 'http:'));
  const spkId = async () => ((await (await fetch(offerUrl)).json()) as { bundle: { spk: { id: number } } }).bundle.spk.id;
  const first = await spkId();
  const later = await eventually(async () => {
    const id = await spkId();
    return id > first ? id : undefined;
  });
  t.ok(later !== undefined && later > first, `a newer signed prekey is offered (${first} -> ${later})`);
  const { client: c } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.equal(text(await c.callTool({ name: 'echo', arguments: { message: 'rotated' } })), 'Echo: rotated');
  await c.close();
});

t.test('the audit store fails: refused with audit_unavailable, nothing forwarded; the TGA restarts the auditor', async (t) => {
  const auditorBefore = runtime.audit()!;
  const forwardedBefore = forwardedCalls();
  await auditorBefore.store.close(); // the store goes away under the running auditor
  const reasons: string[] = [];
  // The breaker opens once failures pass 50% of its rolling window (10 s), which still counts
  // the successful appends of the tests before: how many failures that takes varies.
  for (let i = 0; i < 500 && runtime.tga.getSnapshot().context.children.auditor!.restarts === 0; i++) {
    const r = await refusal(client.callTool({ name: 'echo', arguments: { message: 'unaudited?' } }));
    t.equal(r.code, RPC_ERRORS.audit_unavailable);
    reasons.push(r.reason);
  }
  t.ok(reasons.length > 0 && reasons.every((r) => r === 'audit_unavailable'), `refused: ${reasons.join(', ')}`);
  t.equal(forwardedCalls(), forwardedBefore, 'no call went upstream unaudited');
  const restarted = await eventually(() => (runtime.tga.getSnapshot().context.children.auditor!.status === 'up' && runtime.audit() !== auditorBefore ? true : undefined));
  t.ok(restarted, 'the audit breaker opened and the TGA restarted the auditor');
  t.equal(runtime.tga.getSnapshot().context.children.auditor!.lastFault, 'audit_store_failed');
  const echoed = await eventually(async () => {
    try {
      return text(await client.callTool({ name: 'echo', arguments: { message: 'audited again' } }));
    } catch {
      return undefined;
    }
  }, 100, 100);
  t.equal(echoed, 'Echo: audited again', 'the half-open breaker let a trial through and closed');
  t.equal(runtime.tga.getSnapshot().context.breakers.audit, 'closed');
  const events = await auditEvents(runtime);
  t.ok(events.some((e) => e.kind === 'response' && e.reason === 'ok'), 'calls after recovery are in the reopened log');
  t.equal((await getJson(`${runtime.healthUrl}/readyz`)).status, 200);
});
