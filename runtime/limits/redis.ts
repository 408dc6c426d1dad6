import { Redis } from 'ioredis';
import {
  LimitError,
  checkAmount,
  checkKeyPart,
  checkRule,
  type BudgetLedger,
  type BudgetReservation,
  type RateDecision,
  type RateLimiter,
  type RateRule,
  type WindowClaim,
} from './types.ts';

/**
 * Redis versions of the rate limiter and budget ledger. Each operation is ONE Lua script, so it
 * is atomic across every gateway sharing the Redis; the bucket refills by the time Redis itself
 * reports (TIME), never by the caller's clock. Scripts run through EVALSHA (ioredis
 * defineCommand), falling back to EVAL after a SCRIPT FLUSH or a server restart.
 */

/** KEYS[1] bucket; ARGV capacity, refill per second, cost. Returns {allowed, remaining, retryAfterMs}. */
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = capacity
if state[1] then
  local elapsed = now - tonumber(state[2])
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(capacity, tonumber(state[1]) + elapsed * rate / 1000)
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.max(1, math.ceil((cost - tokens) * 1000 / rate))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
-- An idle bucket is full again after this long; letting it expire then is equivalent.
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) * 1000 / rate) + 1000)
local remaining = 0
if allowed == 1 then remaining = math.floor(tokens) end
return {allowed, remaining, retry}
`;

/**
 * KEYS[1] budget; ARGV amount, limit. Returns {ok, remaining, window}. A budget created (first
 * sight, or after a reset deleted it) gets a window id from Redis's clock, in microseconds.
 */
const RESERVE_SCRIPT = `
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'rem', 'win')
local rem = tonumber(state[1])
local win = state[2]
if rem == nil then
  local t = redis.call('TIME')
  rem = limit
  win = t[1] .. string.format('%06d', tonumber(t[2]))
end
redis.call('HSET', KEYS[1], 'rem', string.format('%d', rem), 'lim', string.format('%d', limit), 'win', win)
if rem < amount then return {0, rem, win} end
rem = redis.call('HINCRBY', KEYS[1], 'rem', string.format('%d', 0 - amount))
return {1, rem, win}
`;

/** KEYS[1] budget; ARGV refund, window. Refunds only into the reservation's window; returns the remaining. */
const SETTLE_SCRIPT = `
local refund = tonumber(ARGV[1])
local state = redis.call('HMGET', KEYS[1], 'rem', 'lim', 'win')
if not state[1] then return 0 end
if state[3] ~= ARGV[2] then return tonumber(state[1]) end
local rem = math.min(tonumber(state[2]), tonumber(state[1]) + refund)
redis.call('HSET', KEYS[1], 'rem', string.format('%d', rem))
return rem
`;

/** KEYS[1] the current window's start; ARGV its claimed start. Returns first, newer or stale. */
const CLAIM_WINDOW_SCRIPT = `
local last = redis.call('GET', KEYS[1])
if not last then
  redis.call('SET', KEYS[1], ARGV[1])
  return 'first'
end
if tonumber(ARGV[1]) > tonumber(last) then
  redis.call('SET', KEYS[1], ARGV[1])
  return 'newer'
end
return 'stale'
`;

/** Keys deleted per SCAN round when a whole budget window is reset. */
const RESET_SCAN_COUNT = 500;

type ScriptClient = Redis & {
  talosTake(key: string, capacity: number, rate: number, cost: number): Promise<[number, number, number]>;
  talosReserve(key: string, amount: number, limit: number): Promise<[number, number, string]>;
  talosSettle(key: string, refund: number, window: string): Promise<number>;
  talosClaimWindow(key: string, windowStart: number): Promise<WindowClaim>;
};

export interface RedisLimitsOptions {
  /** Key prefix, so several deployments (or tests) can share one Redis. */
  prefix?: string;
}

export function connectRedis(url: string): Redis {
  const client = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 2, enableOfflineQueue: true });
  // Connection errors surface on the commands that fail; keep the emitter from throwing.
  client.on('error', () => {});
  return client;
}

function withScripts(client: Redis): ScriptClient {
  const c = client as ScriptClient;
  if (typeof c.talosTake !== 'function') {
    client.defineCommand('talosTake', { numberOfKeys: 1, lua: TAKE_SCRIPT });
    client.defineCommand('talosReserve', { numberOfKeys: 1, lua: RESERVE_SCRIPT });
    client.defineCommand('talosSettle', { numberOfKeys: 1, lua: SETTLE_SCRIPT });
    client.defineCommand('talosClaimWindow', { numberOfKeys: 1, lua: CLAIM_WINDOW_SCRIPT });
  }
  return c;
}

async function guarded<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    if (err instanceof LimitError) throw err;
    throw new LimitError('limits_unavailable', `the Redis limits store failed: ${(err as Error).message}`, { cause: err });
  }
}

/** What both Redis adapters hold: the client with our scripts, the key prefix, who closes it. */
abstract class RedisLimitsBase {
  readonly kind = 'redis' as const;
  protected readonly client: ScriptClient;
  protected readonly prefix: string;
  constructor(client: Redis, options: RedisLimitsOptions = {}, private readonly owned = false) {
    this.client = withScripts(client);
    this.prefix = options.prefix ?? 'talos:';
  }

  async close(): Promise<void> {
    if (this.owned) await this.client.quit().catch(() => {});
  }
}

export class RedisRateLimiter extends RedisLimitsBase implements RateLimiter {

  async take(agent: string, tool: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    checkKeyPart('agent', agent);
    checkKeyPart('tool', tool);
    checkRule(rule, cost);
    const key = `${this.prefix}rl:${agent}:${tool.length}:${tool}`;
    const [allowed, remaining, retry] = await guarded(() => this.client.talosTake(key, rule.capacity, rule.refillPerSecond, cost));
    return { allowed: allowed === 1, remaining, retryAfterMs: retry };
  }
}

export class RedisBudgetLedger extends RedisLimitsBase implements BudgetLedger {

  private key(agent: string): string {
    return `${this.prefix}budget:${agent}`;
  }

  async reserve(agent: string, amount: number, limit: number): Promise<BudgetReservation> {
    checkKeyPart('agent', agent);
    checkAmount('amount', amount);
    checkAmount('limit', limit);
    const [ok, remaining, window] = await guarded(() => this.client.talosReserve(this.key(agent), amount, limit));
    return { ok: ok === 1, remaining, window };
  }

  async settle(agent: string, reserved: number, actual: number, window: string): Promise<number> {
    checkKeyPart('agent', agent);
    checkAmount('reserved', reserved);
    checkAmount('actual', actual);
    const refund = reserved - Math.min(actual, reserved);
    return guarded(() => this.client.talosSettle(this.key(agent), refund, window));
  }

  async remaining(agent: string, limit: number): Promise<number> {
    checkKeyPart('agent', agent);
    const rem = await guarded(() => this.client.hget(this.key(agent), 'rem'));
    return rem === null ? limit : Number(rem);
  }

  async claimWindow(windowStart: number): Promise<WindowClaim> {
    checkAmount('windowStart', windowStart);
    // Outside the budget:* keys, so a reset never deletes it.
    return guarded(() => this.client.talosClaimWindow(`${this.prefix}budget-window`, windowStart));
  }

  async reset(agent?: string): Promise<void> {
    if (agent !== undefined) {
      checkKeyPart('agent', agent);
      await guarded(() => this.client.del(this.key(agent)));
      return;
    }
    await guarded(async () => {
      let cursor = '0';
      do {
        const [next, keys] = await this.client.scan(cursor, 'MATCH', `${this.prefix}budget:*`, 'COUNT', RESET_SCAN_COUNT);
        if (keys.length) await this.client.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    });
  }
}
