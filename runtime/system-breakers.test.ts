import t from 'tap';
import { createCryptoProvider } from './crypto/index.ts';
import { generateIdentity } from './identity/index.ts';
import { RPC_ERRORS } from './mcp/errors.ts';
import { startTestRedis } from './redis/test-server.ts';
import { createRuntime } from './index.ts';
import { auditEvents, connectAgent, eventually, getJson, metric, refusal, text, tunnelConfig } from './system-test-kit.ts';

// The whole runtime (TGA supervising auditor, upstream, gateway, job runner) around the real
// server-everything, with limits and jobs in a private Redis: an upstream killed mid-load and
// Redis stopped and restarted, seen through calls, /readyz, /metrics and the TGA's own state.
const redis = await startTestRedis({ appendonly: true });
t.teardown(() => redis.stop());
const crypto = createCryptoProvider();
const issuer = generateIdentity(crypto);
const config = tunnelConfig(issuer, {
  redis: { url: redis.url, prefix: `rt${Date.now()}:` },
  breaker: { volumeThreshold: 2, resetTimeoutMs: 500, errorThresholdPercentage: 50, timeoutMs: 5000 },
  limits: { rate: { capacity: 100_000, refillPerSecond: 100_000 } },
});
const transitions: string[] = [];
const runtime = await createRuntime({ talos: config, crypto, health: { port: 0 }, jobs: { queueName: `q${Date.now()}` } });
t.teardown(() => runtime.stop());
runtime.tga.subscribe((s) => {
  const line = Object.entries(s.context.breakers).map(([n, st]) => `${n}=${st}`).join(',');
  if (transitions.at(-1) !== line) transitions.push(line);
});
const { client } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
t.teardown(() => client.close());
const readyz = () => getJson(`${runtime.healthUrl}/readyz`);
const breaker = (name: string) => runtime.tga.getSnapshot().context.breakers[name];

t.test('the runtime starts every child under the TGA and is ready', async (t) => {
  const children = runtime.tga.getSnapshot().context.children;
  t.same(Object.keys(children).sort(), ['auditor', 'gateway', 'jobs', 'upstream:everything']);
  t.ok(Object.values(children).every((c) => c.status === 'up'));
  t.equal(runtime.scheduler?.kind, 'bullmq', 'jobs run on BullMQ when Redis is configured');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'hi' } })), 'Echo: hi');
  const r = await readyz();
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.same(Object.keys(r.body.checks).sort(), ['gateway', 'jobs', 'redis', 'restart_budget', 'store', 'upstreams']);
  t.equal(await metric(runtime.healthUrl!, 'talos_breaker_state', 'name="upstream:everything"'), 0);
  t.equal(await metric(runtime.healthUrl!, 'talos_calls_total', 'decision="allow"'), 1);
  t.equal(await metric(runtime.healthUrl!, 'talos_sessions', ''), 1, 'one open session');
  t.equal(await metric(runtime.healthUrl!, 'talos_ready', ''), 1);
  t.type(await metric(runtime.healthUrl!, 'talos_queue_depth', 'queue="jobs"'), 'number', 'the job queue depth is exported');
  t.equal((await getJson(`${runtime.healthUrl}/healthz`)).status, 200);
});

t.test('an upstream killed mid-load: breaker opens, calls fail fast, then half-open and closed', async (t) => {
  const upstream = runtime.upstream('everything')!;
  const pid = upstream.pid!;
  // Load: four agents' worth of concurrent calls while the server dies under them.
  let loading = true;
  const outcomes: string[] = [];
  const load = Array.from({ length: 4 }, async () => {
    while (loading) {
      try {
        await client.callTool({ name: 'echo', arguments: { message: 'load' } });
        outcomes.push('ok');
      } catch (err) {
        outcomes.push((await refusal(Promise.reject(err))).reason);
      }
    }
  });
  await eventually(() => (outcomes.length >= 8 ? true : undefined));
  process.kill(pid, 'SIGKILL');
  const opened = await eventually(() => (breaker('upstream:everything') === 'open' ? true : undefined));
  t.ok(opened, 'the breaker opened and the TGA was told');
  // While it is open: a clear, immediate refusal; /readyz and /metrics show it.
  let fast: Awaited<ReturnType<typeof refusal>> | undefined;
  for (let i = 0; i < 50 && !fast; i++) {
    const r = await refusal(client.callTool({ name: 'echo', arguments: { message: 'x' } })).catch(() => undefined);
    if (r?.data.breaker === 'open') fast = r;
  }
  t.ok(fast, 'a call while the breaker is open is refused at once, and says so');
  t.equal(fast?.code, RPC_ERRORS.upstream_unavailable);
  t.equal(fast?.reason, 'upstream_unavailable');
  t.match(fast?.message, /upstream everything is unavailable \(circuit open\)/);
  const wait = fast?.data.retryAfterMs as number;
  t.ok(Number.isInteger(wait) && wait >= 1 && wait <= 500, `it says when the circuit lets a trial call through (retryAfterMs ${wait}, resetTimeoutMs 500)`);
  const notReady = await eventually(async () => {
    const rz = await readyz();
    return rz.status === 503 ? rz : undefined;
  }, 40);
  t.ok(notReady, '/readyz fails while the breaker is open');
  if (notReady) t.match(notReady.body.checks.upstreams, { ok: false, detail: /everything (breaker open|backoff|connecting)/ });
  // The upstream actor starts the server again; the breaker half-opens, a trial call passes, it closes.
  const closed = await eventually(() => (breaker('upstream:everything') === 'closed' ? true : undefined), 400);
  loading = false;
  await Promise.all(load);
  t.ok(closed, 'the breaker closed again');
  t.not(runtime.upstream('everything')!.pid, pid, 'on a new server process');
  const seen = transitions.map((l) => /upstream:everything=([a-z-]+)/.exec(l)?.[1]).filter(Boolean);
  const i = seen.indexOf('open');
  t.ok(i >= 0 && seen.indexOf('half-open', i) > i && seen.indexOf('closed', seen.indexOf('half-open', i)) > 0, `open -> half-open -> closed (${seen.join(' ')})`);
  t.ok(outcomes.includes('upstream_unavailable'), 'calls in flight failed with a clear reason');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'back' } })), 'Echo: back');
  t.equal((await readyz()).status, 200);
  t.equal(await metric(runtime.healthUrl!, 'talos_breaker_state', 'name="upstream:everything"'), 0);
  t.equal(runtime.tga.getSnapshot().context.children['upstream:everything']!.restarts, 0, 'the upstream actor recovered by itself; no supervisor restart was needed');
});

t.test('Redis stopped: fail closed (refused, audited, never forwarded); restarted: everything recovers', async (t) => {
  const before = (await auditEvents(runtime)).length;
  // A job of the TGA's runner (BullMQ on this Redis) before and during the outage: none is lost.
  const ran: string[] = [];
  runtime.scheduler!.onJob('probe', (run) => void ran.push(run.runId));
  await runtime.scheduler!.enqueue('probe', { n: 1 }, 'before-outage');
  t.ok(await eventually(() => (ran.includes('once:probe:before-outage') ? true : undefined)), 'a job runs before the outage');
  await redis.kill();
  const during = runtime.scheduler!.enqueue('probe', { n: 2 }, 'during-outage');
  const refusals: string[] = [];
  for (let i = 0; i < 60 && breaker('redis') !== 'open'; i++) {
    const r = await refusal(client.callTool({ name: 'echo', arguments: { message: 'while redis is down' } }));
    refusals.push(r.reason);
  }
  t.equal(breaker('redis'), 'open', 'the Redis breaker opened and the TGA was told');
  t.same([...new Set(refusals)], ['limits_unavailable'], 'every call refused with limits_unavailable');
  const fast = await refusal(client.callTool({ name: 'echo', arguments: { message: 'x' } }));
  t.equal(fast.reason, 'limits_unavailable');
  t.match(fast.message, /circuit open|did not answer|Redis/);
  const rz = await readyz();
  t.equal(rz.status, 503);
  t.equal(rz.body.checks.redis!.ok, false);
  // 2 open, or 1 when a half-open trial is under way (it fails again while Redis is down).
  t.ok([1, 2].includes((await metric(runtime.healthUrl!, 'talos_breaker_state', 'name="redis"'))!), '/metrics shows the Redis breaker not closed');
  const events = (await auditEvents(runtime)).slice(before);
  const requests = events.filter((e) => e.kind === 'request');
  t.ok(requests.length > 0 && requests.every((e) => e.decision === 'deny' && e.reason === 'limits_unavailable'), 'every refusal was audited');
  t.notOk(events.some((e) => e.kind === 'response'), 'nothing was forwarded upstream');

  await redis.restart();
  const echoed = await eventually(async () => {
    try {
      return text(await client.callTool({ name: 'echo', arguments: { message: 'redis is back' } }));
    } catch {
      return undefined;
    }
  }, 200, 100);
  t.equal(echoed, 'Echo: redis is back');
  t.equal(breaker('redis'), 'closed');
  const ready = await eventually(async () => ((await readyz()).status === 200 ? true : undefined), 100, 100);
  t.ok(ready, '/readyz passes again (Redis, jobs)');
  await during;
  t.ok(await eventually(() => (ran.includes('once:probe:during-outage') ? true : undefined), 200), 'the job enqueued during the outage ran once Redis was back');
  t.equal(ran.filter((r) => r === 'once:probe:before-outage').length, 1, 'and the earlier one did not run twice');
});

t.test('stop() shuts every child down', async (t) => {
  await client.close();
  await runtime.stop();
  t.equal(runtime.tga.getSnapshot().status, 'done');
  t.notOk(runtime.ready());
});
