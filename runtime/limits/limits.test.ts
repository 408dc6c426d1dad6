import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startTestRedis } from '../redis/test-server.ts';
import { limitsContract } from './contract-suite.ts';
import { MAX_MEMORY_BUDGETS, MemoryBudgetLedger, MemoryRateLimiter } from './memory.ts';
import { RedisBudgetLedger, RedisRateLimiter, connectRedis } from './redis.ts';
import { createLimits } from './index.ts';

limitsContract(t, 'memory', async () => {
  const rate = new MemoryRateLimiter();
  const budget = new MemoryBudgetLedger();
  return { rate, budget, close: async () => void (await Promise.all([rate.close(), budget.close()])) };
});

const redis = await startTestRedis();
t.teardown(() => redis.stop());

limitsContract(t, 'redis', async () => {
  const client = connectRedis(redis.url);
  const prefix = { prefix: `t${randomBytes(4).toString('hex')}:` };
  return {
    rate: new RedisRateLimiter(client, prefix),
    budget: new RedisBudgetLedger(client, prefix),
    close: async () => void (await client.quit()),
  };
});

t.test('createLimits picks Redis when a URL is given, memory otherwise', async (t) => {
  const mem = createLimits();
  t.equal(mem.kind, 'memory');
  await mem.close();
  const red = createLimits({ redisUrl: redis.url, prefix: 'ck:' });
  t.equal(red.kind, 'redis');
  t.equal((await red.rate.take('did:x', 'tool', { capacity: 1, refillPerSecond: 1 })).allowed, true);
  await red.close();
});

t.test('the Redis bucket survives SCRIPT FLUSH (EVALSHA falls back to EVAL)', async (t) => {
  const client = connectRedis(redis.url);
  t.teardown(() => client.quit());
  const rl = new RedisRateLimiter(client, { prefix: 'flush:' });
  const rule = { capacity: 2, refillPerSecond: 0.01 };
  t.equal((await rl.take('a', 't', rule)).allowed, true);
  await client.script('FLUSH');
  t.same(await rl.take('a', 't', rule), { allowed: true, remaining: 0, retryAfterMs: 0 });
  t.equal((await rl.take('a', 't', rule)).allowed, false);
});

t.test('a Redis that is down gives limits_unavailable, not an allow', async (t) => {
  const client = connectRedis('redis://127.0.0.1:1');
  client.options.maxRetriesPerRequest = 0;
  t.teardown(() => client.disconnect());
  const rl = new RedisRateLimiter(client);
  await t.rejects(rl.take('a', 't', { capacity: 1, refillPerSecond: 1 }), { code: 'limits_unavailable' });
});

t.test('the budget window job resets only on the first run of a window', async (t) => {
  const { budgetWindowResetJob } = await import('./budget-job.ts');
  const ledger = new MemoryBudgetLedger();
  const job = budgetWindowResetJob(ledger, 3600, 60_000);
  const run = (slot: number) => job({ name: 'budget-window-reset', runId: `repeat:x:${slot}`, data: null, slot, attempt: 1 });
  await ledger.reserve('a', 10, 10);
  await run(3600_000 * 5 + 60_000); // the second minute of a window: nothing
  t.equal(await ledger.remaining('a', 10), 0);
  await run(3600_000 * 6); // the first minute of the next window
  t.equal(await ledger.remaining('a', 10), 10);
});

t.test('the budget window job: once per window in a process, never mid-window after a restart, windows up to 366 days', async (t) => {
  const { budgetWindowResetJob } = await import('./budget-job.ts');
  const { TGA_JOBS } = await import('../jobs/tga-jobs.ts');
  const everyMs = TGA_JOBS.budgetWindowReset.everyMs;
  const windowMs = 31_622_400_000; // the config's largest window: 366 days
  const ledger = new MemoryBudgetLedger();
  const state = { lastWindowStart: -1 };
  const job = budgetWindowResetJob(ledger, windowMs / 1000, everyMs, state);
  const run = (handler: typeof job, slot: number) => handler({ name: 'budget-window-reset', runId: `repeat:budget-window-reset:${slot}`, data: null, slot, attempt: 1 });
  const spend = () => ledger.reserve('a', 10, 10);
  await spend();
  await run(job, windowMs * 3); // the first minute of a window
  t.equal(await ledger.remaining('a', 10), 10, 'reset on the first slot');
  await spend();
  await run(job, windowMs * 3); // retried or re-delivered to this process
  t.equal(await ledger.remaining('a', 10), 0, 'a window this process reset is not reset again');
  // A restarted process (a new handler, nothing remembered) runs the current minute first.
  await run(budgetWindowResetJob(ledger, windowMs / 1000, everyMs), windowMs * 3 + 40 * 86_400_000);
  t.equal(await ledger.remaining('a', 10), 0, 'a restart mid-window does not reset');
  await run(job, windowMs * 4);
  t.equal(await ledger.remaining('a', 10), 10, 'the next window resets');
  // Every process down across the next window's start: the first run after, however late, resets.
  await spend();
  await run(budgetWindowResetJob(ledger, windowMs / 1000, everyMs), windowMs * 5 + 2 * 86_400_000);
  t.equal(await ledger.remaining('a', 10), 10, 'a window whose start was missed is reset late');
});

t.test('the in-process budgets forget the least recently used agent, never an active one', async (t) => {
  const budget = new MemoryBudgetLedger();
  t.teardown(() => budget.close());
  await budget.reserve('did:hot', 10, 10);
  for (let i = 0; i < MAX_MEMORY_BUDGETS; i++) {
    await budget.reserve(`did:other-${i}`, 1, 10);
    if (i % 1000 === 0) await budget.reserve('did:hot', 0, 10); // still in use
  }
  t.equal(await budget.remaining('did:hot', 10), 0, 'the active agent is still charged');
  t.equal(await budget.remaining('did:other-0', 10), 10, 'the least recently used one was forgotten');
});
