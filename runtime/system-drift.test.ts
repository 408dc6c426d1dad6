import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_DRIFT_INTERVAL_MS } from '../actors/tga/index.ts';
import { loadConfig } from './config/config.ts';
import { createCryptoProvider } from './crypto/index.ts';
import { configDigest } from './drift/index.ts';
import { generateIdentity } from './identity/index.ts';
import { RPC_ERRORS } from './mcp/errors.ts';
import { createRuntime } from './index.ts';
import { auditEvents, connectAgent, eventually, everythingUpstream, memoryUpstream, refusal, text } from './system-test-kit.ts';

// Drift through the whole runtime: the declared configuration is a talos.config.json on disk,
// re-read at every check; the pinned tool definitions are a pins file. A tool whose definition
// no longer matches its pin and a changed configuration are each detected and reported; with
// the reconcile policy, what can change while running is brought in line.
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-drift-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const issuer = generateIdentity(crypto);
const newIssuer = generateIdentity(crypto);
const configFile = join(dir, 'talos.config.json');
const pinsFile = join(dir, 'pins.json');
const declared = {
  v: 1,
  gateway: { listen: { port: 0 }, name: 'talos.test/drift' },
  trustedIssuers: [issuer.did],
  upstreams: [everythingUpstream()],
  limits: { rate: { capacity: 1000, refillPerSecond: 1000 } },
  pins: { file: pinsFile },
};
writeFileSync(configFile, JSON.stringify(declared));
// echo was pinned with another definition than the one the server lists now: a "rug pull".
writeFileSync(pinsFile, JSON.stringify({ everything: { echo: '0'.repeat(64) } }));
const original = loadConfig(configFile, {});
const grants = [{ method: 'tools/call', tool: 'echo' }, { method: 'tools/call', tool: 'get-sum' }];

/** The declared file changed by an operator: one more trusted issuer, other limits, another name. */
function editDeclared(extra: Record<string, unknown> = {}) {
  writeFileSync(
    configFile,
    JSON.stringify({
      ...declared,
      gateway: { ...declared.gateway, name: 'talos.test/drift-renamed' },
      trustedIssuers: [issuer.did, newIssuer.did],
      limits: { rate: { capacity: 500, refillPerSecond: 50 } },
      ...extra,
    }),
  );
}

t.test('report policy: a drifted tool and a drifted configuration are detected and reported', async (t) => {
  const runtime = await createRuntime({ talos: original, crypto, declared: configFile, jobs: false, drift: { intervalMs: 0 } });
  t.teardown(() => runtime.stop());
  const { client } = await connectAgent(runtime, crypto, issuer, grants);
  t.teardown(() => client.close());

  const first = await runtime.checkDrift();
  t.same(first.map((f) => [f.kind, f.subject, f.action]), [['tool', 'everything/echo', 'reported']], 'only the tool drifted so far');
  t.equal(first[0]!.declared, '0'.repeat(16), 'the pinned hash is what was declared');
  t.equal(runtime.tga.getSnapshot().context.drift.findings.length, 1, 'the TGA holds the report');
  const r = await refusal(client.callTool({ name: 'echo', arguments: { message: 'x' } }));
  t.equal(r.code, RPC_ERRORS.tool_drift, 'a drifted tool stays withheld');
  t.equal(text(await client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } })).includes('3'), true, 'other tools work');

  editDeclared();
  const second = await runtime.checkDrift();
  t.same(
    second.map((f) => [f.kind, f.subject, f.action]),
    [
      ['config', 'gateway', 'restart_required'],
      ['config', 'limits', 'reported'],
      ['config', 'trustedIssuers', 'reported'],
      ['tool', 'everything/echo', 'reported'],
    ],
  );
  t.equal(runtime.config()!.limits.rate.capacity, 1000, 'nothing was changed');
  t.equal(runtime.tga.getSnapshot().context.drift.digest, configDigest(original), 'the running digest is unchanged');
  await t.rejects(connectAgent(runtime, crypto, newIssuer, grants).then(({ client: c }) => c.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } }).finally(() => c.close())), 'the new issuer is not trusted yet');
  const alerts = (await auditEvents(runtime)).filter((e) => e.kind === 'alert').map((e) => e.reason);
  t.ok(alerts.includes('tool_drift') && alerts.includes('config_drift'), `drift is in the audit log (${[...new Set(alerts)].join(', ')})`);
});

t.test('reconcile policy: trusted issuers, limits and the re-pinned tool are brought in line', async (t) => {
  writeFileSync(configFile, JSON.stringify(declared));
  const runtime = await createRuntime({
    talos: original,
    crypto,
    declared: configFile,
    jobs: false,
    drift: { intervalMs: 0, policy: { config: 'reconcile', tools: 'reconcile' } },
  });
  t.teardown(() => runtime.stop());
  // ... and one more upstream server is declared.
  editDeclared({ upstreams: [everythingUpstream(), memoryUpstream(join(dir, 'memory.jsonl'))] });
  const findings = await runtime.checkDrift();
  t.same(
    findings.map((f) => [f.kind, f.subject, f.action]),
    [
      ['config', 'gateway', 'restart_required'],
      ['config', 'limits', 'reconciled'],
      ['config', 'trustedIssuers', 'reconciled'],
      ['config', 'upstreams.memory', 'reconciled'],
      ['tool', 'everything/echo', 'reconciled'],
    ],
  );
  t.ok(await eventually(() => runtime.upstream('memory')), 'the declared upstream was started under the TGA');
  t.equal(runtime.tga.getSnapshot().context.children['upstream:memory']?.status, 'up');
  t.same(runtime.config()!.trustedIssuers, [issuer.did, newIssuer.did]);
  t.same(runtime.config()!.limits.rate, { capacity: 500, refillPerSecond: 50 });
  t.not(runtime.tga.getSnapshot().context.drift.digest, configDigest(original), 'the running digest moved');
  const pins = JSON.parse(readFileSync(pinsFile, 'utf8')) as { everything: Record<string, string> };
  t.not(pins.everything.echo, '0'.repeat(64), 'echo was re-pinned to the definition served now');

  const { client } = await connectAgent(runtime, crypto, newIssuer, [...grants, { method: 'tools/call', tool: 'read_graph' }]);
  t.teardown(() => client.close());
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 're-pinned' } })), 'Echo: re-pinned', 'the new issuer is trusted and echo is served');
  t.match(text(await client.callTool({ name: 'read_graph', arguments: {} })), /entities/, 'the new upstream serves');
  const again = await runtime.checkDrift();
  t.same(again.map((f) => [f.subject, f.action]), [['gateway', 'restart_required']], 'only what needs a restart is left');
});

t.test('reconcile policy while the TGA is escalated: the upstream is reported, kept, and reconciled after tga.resume', async (t) => {
  // The declared file changes only the upstream (an environment variable more).
  const changedFile = join(dir, 'talos.changed-upstream.json');
  writeFileSync(changedFile, JSON.stringify({ ...declared, upstreams: [{ ...everythingUpstream(), env: { EXTRA: '1' } }] }));
  const runtime = await createRuntime({
    talos: original,
    crypto,
    declared: changedFile,
    jobs: false,
    supervision: { maxRestarts: 0, windowMs: 60_000 },
    // The longest interval accepted (SPEC 10.7); no timer fires during the test.
    drift: { intervalMs: MAX_DRIFT_INTERVAL_MS, policy: { config: 'reconcile' } },
  });
  t.teardown(() => runtime.stop());
  const runningEnv = () => {
    const u = runtime.config()!.upstreams[0]!;
    return u.transport === 'stdio' ? u.env?.EXTRA : undefined;
  };
  const upstreamFinding = (findings: Awaited<ReturnType<typeof runtime.checkDrift>>) => findings.find((f) => f.subject === 'upstreams.everything')?.action;

  // A crash past the budget (what XState delivers when a child's actor errors) escalates the TGA.
  runtime.tga.send({ type: 'xstate.error.actor.auditor', error: Object.assign(new Error('store failed'), { code: 'audit_store_failed' }) } as never);
  t.equal(runtime.tga.getSnapshot().value, 'escalated');
  t.equal(upstreamFinding(await runtime.checkDrift()), 'reported', 'escalated, the TGA adds no child: nothing is reconciled');
  t.equal(runtime.tga.getSnapshot().context.children['upstream:everything']?.status, 'up', 'the upstream child is kept');
  t.ok(runtime.upstream('everything'), 'and still serves');
  t.equal(runningEnv(), undefined, 'the running configuration is unchanged');

  runtime.tga.send({ type: 'tga.resume' });
  t.ok(await eventually(() => (runtime.ready() ? true : undefined)), 'resumed and ready');
  t.equal(upstreamFinding(await runtime.checkDrift()), 'reconciled', 'the next check reconciles the upstream');
  t.ok(await eventually(() => (runtime.ready() && runtime.upstream('everything') ? true : undefined)), 'the upstream runs again under the TGA, with its declared spec');
  t.equal(runningEnv(), '1');
  t.equal(upstreamFinding(await runtime.checkDrift()), undefined, 'and no longer differs');
});

t.test('drift.intervalMs past what a timer can wait (2^31-1 ms) is refused with config_invalid', async (t) => {
  for (const intervalMs of [MAX_DRIFT_INTERVAL_MS + 1, 30 * 24 * 3600 * 1000]) {
    await t.rejects(createRuntime({ talos: original, crypto, jobs: false, drift: { intervalMs } }), { code: 'config_invalid', message: /drift\.intervalMs/ }, `${intervalMs} ms`);
  }
});
