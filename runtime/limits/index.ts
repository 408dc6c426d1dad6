import { MemoryBudgetLedger, MemoryRateLimiter } from './memory.ts';
import { RedisBudgetLedger, RedisRateLimiter, connectRedis } from './redis.ts';
import type { BudgetLedger, RateLimiter } from './types.ts';

export * from './types.ts';
export { MemoryBudgetLedger, MemoryRateLimiter } from './memory.ts';
export { RedisBudgetLedger, RedisRateLimiter, connectRedis } from './redis.ts';

export interface Limits {
  rate: RateLimiter;
  budget: BudgetLedger;
  /** 'redis' (shared between gateways) or 'memory' (the embedded default, this process only). */
  kind: 'redis' | 'memory';
  close(): Promise<void>;
}

/** Redis-backed limits when a URL is given, else the in-process ones with the same semantics. */
export function createLimits(options: { redisUrl?: string; prefix?: string } = {}): Limits {
  if (!options.redisUrl) {
    const rate = new MemoryRateLimiter();
    const budget = new MemoryBudgetLedger();
    return { rate, budget, kind: 'memory', close: async () => void (await Promise.all([rate.close(), budget.close()])) };
  }
  const client = connectRedis(options.redisUrl);
  const prefix = options.prefix === undefined ? {} : { prefix: options.prefix };
  const rate = new RedisRateLimiter(client, prefix);
  const budget = new RedisBudgetLedger(client, prefix);
  return {
    rate,
    budget,
    kind: 'redis',
    close: async () => {
      await client.quit().catch(() => {});
      client.disconnect();
    },
  };
}
