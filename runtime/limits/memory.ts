import {
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
import { refill, retryAfterMs } from './bucket.ts';

/**
 * In-process rate limiter and budget ledger: the embedded default when no Redis is configured.
 * Same semantics as the Redis versions (one contract test suite runs against both), but the
 * state lives in this process only, so several gateway processes would each allow the limit.
 */

/** Buckets kept at most; beyond this, buckets that have refilled completely are dropped first. */
export const MAX_MEMORY_BUCKETS = 100_000;
/** Agents whose budget is tracked at most; beyond this the oldest entry is dropped. */
export const MAX_MEMORY_BUDGETS = 100_000;

const monotonicNow = () => performance.timeOrigin + performance.now();

interface Bucket {
  tokens: number;
  ts: number;
  fullAt: number;
}

export class MemoryRateLimiter implements RateLimiter {
  readonly kind = 'memory' as const;
  private readonly buckets = new Map<string, Bucket>();
  constructor(private readonly now: () => number = monotonicNow) {}

  async take(agent: string, tool: string, rule: RateRule, cost = 1): Promise<RateDecision> {
    checkKeyPart('agent', agent);
    checkKeyPart('tool', tool);
    checkRule(rule, cost);
    const key = `${agent}\u0000${tool}`;
    const now = this.now();
    const prev = this.buckets.get(key);
    const tokens = prev ? refill(prev.tokens, prev.ts, now, rule) : rule.capacity;
    const allowed = tokens >= cost;
    const left = allowed ? tokens - cost : tokens;
    this.buckets.delete(key); // re-insert: Map order is then least recently used first
    this.buckets.set(key, { tokens: left, ts: now, fullAt: now + ((rule.capacity - left) * 1000) / rule.refillPerSecond });
    if (this.buckets.size > MAX_MEMORY_BUCKETS) this.evict(now);
    return allowed
      ? { allowed, remaining: Math.floor(left), retryAfterMs: 0 }
      : { allowed, remaining: 0, retryAfterMs: retryAfterMs(left, cost, rule) };
  }

  private evict(now: number): void {
    for (const [k, b] of this.buckets) if (b.fullAt <= now) this.buckets.delete(k);
    // Still too many: drop the least recently used (this loosens their limit; documented).
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= MAX_MEMORY_BUCKETS) break;
      this.buckets.delete(k);
    }
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}

interface Budget {
  remaining: number;
  limit: number;
  window: string;
}

export class MemoryBudgetLedger implements BudgetLedger {
  readonly kind = 'memory' as const;
  private readonly budgets = new Map<string, Budget>();
  /** Windows started so far: each new budget entry (first sight, or after a reset) gets the next. */
  private windows = 0;

  private entry(agent: string, limit: number): Budget {
    let b = this.budgets.get(agent);
    if (b) {
      // Most recently used last: the eviction below drops the least recently used agent.
      this.budgets.delete(agent);
    } else {
      b = { remaining: limit, limit, window: String(++this.windows) };
    }
    this.budgets.set(agent, b);
    if (this.budgets.size > MAX_MEMORY_BUDGETS) this.budgets.delete(this.budgets.keys().next().value!);
    b.limit = limit;
    return b;
  }

  async reserve(agent: string, amount: number, limit: number): Promise<BudgetReservation> {
    checkKeyPart('agent', agent);
    checkAmount('amount', amount);
    checkAmount('limit', limit);
    const b = this.entry(agent, limit);
    if (b.remaining < amount) return { ok: false, remaining: b.remaining, window: b.window };
    b.remaining -= amount;
    return { ok: true, remaining: b.remaining, window: b.window };
  }

  async settle(agent: string, reserved: number, actual: number, window: string): Promise<number> {
    checkKeyPart('agent', agent);
    checkAmount('reserved', reserved);
    checkAmount('actual', actual);
    const b = this.budgets.get(agent);
    // Another window (or none): a reset came since the reservation; nothing to refund into.
    if (!b || b.window !== window) return b?.remaining ?? 0;
    const refund = reserved - Math.min(actual, reserved);
    b.remaining = Math.min(b.limit, b.remaining + refund);
    return b.remaining;
  }

  async remaining(agent: string, limit: number): Promise<number> {
    checkKeyPart('agent', agent);
    return this.budgets.get(agent)?.remaining ?? limit;
  }

  async reset(agent?: string): Promise<void> {
    if (agent === undefined) this.budgets.clear();
    else this.budgets.delete(agent);
  }

  /** The start of the window claimed last (undefined: none yet). */
  private claimed: number | undefined;

  async claimWindow(windowStart: number): Promise<WindowClaim> {
    checkAmount('windowStart', windowStart);
    const previous = this.claimed;
    if (previous !== undefined && windowStart <= previous) return 'stale';
    this.claimed = windowStart;
    return previous === undefined ? 'first' : 'newer';
  }

  async close(): Promise<void> {
    this.budgets.clear();
  }
}
