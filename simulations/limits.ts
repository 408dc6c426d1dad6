import { LimitError, type BudgetLedger, type BudgetReservation, type RateDecision, type RateLimiter, type RateRule, type WindowClaim } from '../runtime/limits/types.ts';
import { MemoryBudgetLedger, MemoryRateLimiter } from '../runtime/limits/memory.ts';

/**
 * The simulated Redis behind the rate-limit and budget ports: the in-process adapters (same
 * semantics, one contract suite) measured on the simulated clock of the Redis node, plus an
 * outage switch. While the "Redis" is out every call fails with `limits_unavailable`, exactly
 * as the Redis adapters do when the server is unreachable, so callers must fail closed.
 */
export class SimRedis {
  available = true;
  readonly rate: SimRateLimiter;
  readonly budget: SimBudgetLedger;
  calls = 0;
  refusedWhileDown = 0;

  constructor(now: () => number) {
    this.rate = new SimRateLimiter(this, new MemoryRateLimiter(now));
    this.budget = new SimBudgetLedger(this, new MemoryBudgetLedger());
  }

  /** Throws when the outage is on; counts every call. */
  guard(): void {
    this.calls++;
    if (!this.available) {
      this.refusedWhileDown++;
      throw new LimitError('limits_unavailable', 'the limits store is unreachable');
    }
  }
}

export class SimRateLimiter implements RateLimiter {
  readonly kind = 'redis' as const;
  constructor(
    private readonly redis: SimRedis,
    private readonly inner: MemoryRateLimiter,
  ) {}
  async take(agent: string, tool: string, rule: RateRule, cost?: number): Promise<RateDecision> {
    this.redis.guard();
    return this.inner.take(agent, tool, rule, cost);
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

export class SimBudgetLedger implements BudgetLedger {
  readonly kind = 'redis' as const;
  constructor(
    private readonly redis: SimRedis,
    private readonly inner: MemoryBudgetLedger,
  ) {}
  async reserve(agent: string, amount: number, limit: number): Promise<BudgetReservation> {
    this.redis.guard();
    return this.inner.reserve(agent, amount, limit);
  }
  async settle(agent: string, reserved: number, actual: number, window: string): Promise<number> {
    this.redis.guard();
    return this.inner.settle(agent, reserved, actual, window);
  }
  async remaining(agent: string, limit: number): Promise<number> {
    this.redis.guard();
    return this.inner.remaining(agent, limit);
  }
  async reset(agent?: string): Promise<void> {
    this.redis.guard();
    return this.inner.reset(agent);
  }
  async claimWindow(windowStart: number): Promise<WindowClaim> {
    this.redis.guard();
    return this.inner.claimWindow(windowStart);
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}
