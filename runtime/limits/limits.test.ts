import t from 'tap';
import { randomBytes } from 'node:crypto';
import { startTestRedis } from '../redis/test-server.ts';
import { limitsContract } from './contract-suite.ts';
import { MemoryBudgetLedger, MemoryRateLimiter } from './memory.ts';
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
