import t from 'tap';
import { Redis } from 'ioredis';
import { Agent, request } from 'node:http';
import { InProcessScheduler } from '../jobs/in-process.ts';
import { startTestRedis } from '../redis/test-server.ts';
import { startHealthServer } from './health-server.ts';
import { TalosMetrics } from './metrics.ts';
import { RestartBudget } from './restart-budget.ts';

async function get(url: string, method = 'GET') {
  const res = await fetch(url, { method });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

t.test('/healthz, /readyz with named checks, /metrics, 404, 405; closes cleanly', async (t) => {
  let storeOk = false;
  const metrics = new TalosMetrics();
  const server = await startHealthServer({
    metrics,
    checkTimeoutMs: 200,
    checks: {
      store: () => ({ ok: storeOk, detail: storeOk ? 'sqlite' : 'not open' }),
      upstreams: () => true,
    },
  });
  t.teardown(() => server.close());
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);

  const alive = await get(`${server.url}/healthz`);
  t.equal(alive.status, 200);
  t.same(JSON.parse(alive.body), { status: 'alive' });

  let ready = await get(`${server.url}/readyz`);
  t.equal(ready.status, 503);
  t.same(JSON.parse(ready.body), {
    status: 'not_ready',
    checks: { store: { ok: false, detail: 'not open' }, upstreams: { ok: true } },
  });
  storeOk = true;
  ready = await get(`${server.url}/readyz?verbose=1`);
  t.equal(ready.status, 200);
  t.equal(JSON.parse(ready.body).status, 'ready');

  metrics.sessions.set(3);
  metrics.recordCall('allow', 0.004);
  metrics.recordCall('allow', 0.02);
  metrics.recordCall('deny', 0.001);
  metrics.setBreakerState('upstream:fs', 'open');
  metrics.restarts.inc({ child: 'gateway' });
  const scheduler = new InProcessScheduler();
  metrics.trackQueue('jobs', scheduler);
  metrics.addCollector(() => {
    throw new Error('a broken collector does not break the scrape');
  });
  const m = await get(`${server.url}/metrics`);
  t.equal(m.status, 200);
  t.match(m.type, /^text\/plain/);
  t.match(m.body, /^talos_sessions 3$/m);
  t.match(m.body, /^talos_calls_total\{decision="allow"\} 2$/m);
  t.match(m.body, /^talos_calls_total\{decision="deny"\} 1$/m);
  t.match(m.body, /^talos_call_duration_seconds_bucket\{le="0.005",decision="allow"\} 1$/m);
  t.match(m.body, /^talos_call_duration_seconds_count\{decision="allow"\} 2$/m);
  t.match(m.body, /^talos_breaker_state\{name="upstream:fs"\} 2$/m);
  t.match(m.body, /^talos_queue_depth\{queue="jobs"\} 0$/m);
  t.match(m.body, /^talos_supervisor_restarts_total\{child="gateway"\} 1$/m);
  t.match(m.body, /^talos_ready 1$/m, '/readyz updates talos_ready');
  t.notMatch(m.body, /process_cpu|nodejs_/, 'only the runtime registry: no global default metrics');

  t.equal((await get(`${server.url}/nope`)).status, 404);
  t.equal((await get(`${server.url}/healthz`, 'POST')).status, 405);
  const head = await get(`${server.url}/healthz`, 'HEAD');
  t.equal(head.status, 200);
  t.equal(head.body, '');
});

t.test('a slow or throwing check counts as failed; liveness can report dead', async (t) => {
  let alive = true;
  const server = await startHealthServer({
    checkTimeoutMs: 50,
    live: () => alive,
    checks: {
      slow: () => new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 1000).unref()),
      throws: () => {
        throw new Error('secret detail that must not leak');
      },
    },
  });
  t.teardown(() => server.close());
  const ready = await get(`${server.url}/readyz`);
  t.equal(ready.status, 503);
  t.same(JSON.parse(ready.body).checks, { slow: { ok: false, detail: 'timeout' }, throws: { ok: false, detail: 'check failed' } });
  t.notMatch(ready.body, /secret/);
  t.equal((await get(`${server.url}/metrics`)).status, 404, 'no metrics route without a registry');
  alive = false;
  t.equal((await get(`${server.url}/healthz`)).status, 503);
});

t.test('close() returns while a keep-alive connection is open', async (t) => {
  const server = await startHealthServer();
  await new Promise<void>((resolve, reject) => {
    const req = request(`${server.url}/healthz`, { agent: new Agent({ keepAlive: true }) }, (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
  await server.close();
  t.pass('closed');
});

t.test('/readyz follows Redis: not ready while it is down, ready when it is back', async (t) => {
  const redis = await startTestRedis({ owned: true });
  const client = new Redis(redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
  client.on('error', () => {});
  t.teardown(async () => {
    client.disconnect();
    await redis.stop();
  });
  const server = await startHealthServer({ checks: { redis: () => client.status === 'ready' } });
  t.teardown(() => server.close());
  const waitFor = async (status: number) => {
    for (let i = 0; i < 500; i++) {
      if ((await get(`${server.url}/readyz`)).status === status) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  };
  t.ok(await waitFor(200), 'ready with Redis up');
  await redis.kill(true);
  t.ok(await waitFor(503), 'not ready with Redis down');
  await redis.restart();
  t.ok(await waitFor(200), 'ready again');
});

t.test('restart budget: N restarts in a sliding window, then exhausted until reset', async (t) => {
  const budget = new RestartBudget(3, 10_000);
  t.ok(budget.tryRestart(0));
  t.ok(budget.tryRestart(1000));
  t.ok(budget.tryRestart(2000));
  t.equal(budget.used(2000), 3);
  t.ok(budget.tryRestart(10_000), 'the first restart left the window');
  t.notOk(budget.tryRestart(10_500), 'four in ten seconds: refused');
  t.ok(budget.exhausted);
  t.notOk(budget.tryRestart(100_000), 'stays exhausted: escalation is sticky');
  budget.reset();
  t.ok(budget.tryRestart(100_000));
  t.throws(() => new RestartBudget(-1, 10));
  t.throws(() => new RestartBudget(1, 0));
});

t.test('ready-made checks: scheduler, restart budget, breakers, redis status', async (t) => {
  const { breakersCheck, redisCheck, restartBudgetCheck, schedulerCheck } = await import('./checks.ts');
  const scheduler = new InProcessScheduler();
  t.same(schedulerCheck(scheduler)(), { ok: true, detail: 'in-process' });
  const budget = new RestartBudget(1, 60_000);
  const check = restartBudgetCheck(budget, () => 1000);
  t.same(check(), { ok: true, detail: '0/1 in 60s' });
  budget.tryRestart(500);
  budget.tryRestart(900);
  t.same(check(), { ok: false, detail: 'restart budget exhausted' });
  const states = { 'upstream:fs': 'open', redis: 'closed', audit: 'halfOpen' } as const;
  t.same(breakersCheck(() => states)(), { ok: false, detail: 'open: upstream:fs' });
  t.same(breakersCheck(() => states, ['redis', 'audit'])(), { ok: true }, 'only the required breakers count');
  t.same(redisCheck({ status: 'reconnecting' })(), { ok: false, detail: 'reconnecting' });
  t.same(redisCheck({ status: 'ready' })(), { ok: true, detail: 'ready' });
});
