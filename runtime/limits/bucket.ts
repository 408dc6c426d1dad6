import type { RateRule } from './types.ts';

/**
 * The token-bucket arithmetic, shared by the in-process limiter and mirrored line by line in
 * the Redis Lua script (redis.ts): tokens refill linearly with elapsed milliseconds up to the
 * capacity; a clock that went backwards refills nothing.
 */
export function refill(tokens: number, lastMs: number, nowMs: number, rule: RateRule): number {
  const elapsed = Math.max(0, nowMs - lastMs);
  return Math.min(rule.capacity, tokens + (elapsed * rule.refillPerSecond) / 1000);
}

export function retryAfterMs(tokens: number, cost: number, rule: RateRule): number {
  return Math.max(1, Math.ceil(((cost - tokens) * 1000) / rule.refillPerSecond));
}
