import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from './crypto/index.ts';
import { generateIdentity } from './identity/index.ts';
import { startTestRedis } from './redis/test-server.ts';
import { createRuntime } from './index.ts';
import { auditEvents, connectAgent, text, tunnelConfig } from './system-test-kit.ts';

// The runtime's lifecycle: a restarted gateway comes back on the same URL with its session
// store, a restarted auditor continues the same log from its SQLite store, and a process that
// runs the whole system (Redis, upstream, health server, job runner) and stops it exits with
// no handle left behind.
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-lifecycle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const issuer = generateIdentity(crypto);

t.test('restarted gateway and auditor resume from their stores', async (t) => {
  const runtime = await createRuntime({
    talos: tunnelConfig(issuer, { audit: { store: `sqlite:${join(dir, 'audit.sqlite')}` } }),
    crypto,
    sessionStorePath: join(dir, 'sessions.sqlite'),
    jobs: false,
  });
  t.teardown(() => runtime.stop());
  const grants = [{ method: 'tools/call', tool: 'echo' }];
  const a = await connectAgent(runtime, crypto, issuer, grants);
  t.equal(text(await a.client.callTool({ name: 'echo', arguments: { message: 'one' } })), 'Echo: one');
  const url = runtime.gatewayUrl;
  await a.client.close();

  await runtime.restart('gateway');
  t.equal(runtime.tga.getSnapshot().context.children.gateway!.status, 'up');
  t.equal(runtime.tga.getSnapshot().context.children.gateway!.restarts, 0, 'a reload is not a fault');
  // The restart closed the old server's keep-alive sockets; a client retries once on a stale one.
  const b = await connectAgent(runtime, crypto, issuer, grants).catch(() => connectAgent(runtime, crypto, issuer, grants));
  t.equal(text(await b.client.callTool({ name: 'echo', arguments: { message: 'two' } })), 'Echo: two', `served again on ${url}`);

  const before = await auditEvents(runtime);
  const auditorBefore = runtime.audit();
  await runtime.restart('auditor');
  t.not(runtime.audit(), auditorBefore, 'a new auditor');
  t.equal(text(await b.client.callTool({ name: 'echo', arguments: { message: 'three' } })), 'Echo: three', 'the open session goes on');
  const after = await auditEvents(runtime);
  t.same(after.slice(0, before.length), before, 'the log kept every earlier event');
  t.ok(after.slice(before.length).some((e) => e.kind === 'request' && e.decision === 'allow'), 'and continues after them');
  const cp = await runtime.audit()!.log.checkpoint(crypto, { origin: 'talos.test/runtime', seed: runtime.identity!.sig.secretKey });
  t.ok(cp.note.includes(`\n${after.length}\n`), 'a checkpoint over the whole log');
  await b.client.close();
  await runtime.stop();
});

t.test('an upstream that never starts: restarts until the budget is spent, then createRuntime fails cleanly', async (t) => {
  const broken = { name: 'broken', transport: 'stdio', command: process.execPath, args: ['-e', 'process.exit(3)'] };
  const err = await createRuntime({
    talos: tunnelConfig(issuer, { upstreams: [broken] }),
    crypto,
    supervision: { maxRestarts: 2, windowMs: 60_000 },
    jobs: false,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { code: 'runtime_start_failed', message: /upstream:broken: upstream_unavailable/ });
});

t.test('a process that runs the whole system and stops it exits on its own (no leaked handles)', async (t) => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const script = `
    import { createRuntime } from './runtime/index.ts';
    import { generateIdentity } from './runtime/identity/index.ts';
    import { createCryptoProvider } from './runtime/crypto/index.ts';
    import { tunnelConfig } from './runtime/system-test-kit.ts';
    const crypto = createCryptoProvider();
    const config = tunnelConfig(generateIdentity(crypto), { redis: { url: process.env.T_REDIS, prefix: 'leak:' } });
    const before = process.getActiveResourcesInfo();
    const r = await createRuntime({ talos: config, crypto, health: { port: 0 }, jobs: { queueName: 'leak' } });
    const ready = (await r.readiness()).ready;
    await r.stop();
    await new Promise((resolve) => setTimeout(resolve, 50));
    console.log(JSON.stringify({ ready, before, after: process.getActiveResourcesInfo() }));
  `;
  const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url).pathname,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, T_REDIS: redis.url },
  });
  t.equal(out.status, 0, out.stderr);
  const { ready, before, after } = JSON.parse(out.stdout.trim().split('\n').pop()!) as { ready: boolean; before: string[]; after: string[] };
  t.ok(ready, 'the runtime was ready');
  const count = (list: string[]) => list.reduce<Record<string, number>>((m, h) => ((m[h] = (m[h] ?? 0) + 1), m), {});
  const extra = Object.entries(count(after)).filter(([h, n]) => n > (count(before)[h] ?? 0));
  t.same(extra, [], `stop leaves no handle that was not there before (${after.join(', ')})`);
});
