import { LimitError, type BudgetLedger, type RateLimiter } from '../../runtime/limits/types.ts';
import type { SimRedis } from '../limits.ts';

/**
 * The rate and budget ports the simulated gateway hands its pipeline: the simulated Redis's own,
 * or (test-only) a broken pair, and the watch the limits-fail-closed invariant reads.
 */
export interface LimitPorts {
  rate: RateLimiter;
  budget: BudgetLedger;
}

type BudgetOverrides = Partial<Pick<BudgetLedger, 'reserve' | 'settle' | 'remaining' | 'reset'>>;

/** `budget` with some operations replaced; the rest go to it unchanged. */
function budgetWith(budget: BudgetLedger, o: BudgetOverrides): BudgetLedger {
  return {
    kind: budget.kind,
    reserve: o.reserve ?? ((agent, amount, limit) => budget.reserve(agent, amount, limit)),
    settle: o.settle ?? ((agent, reserved, actual, window) => budget.settle(agent, reserved, actual, window)),
    remaining: o.remaining ?? ((agent, limit) => budget.remaining(agent, limit)),
    reset: o.reset ?? ((agent) => budget.reset(agent)),
    claimWindow: (windowStart) => budget.claimWindow(windowStart),
    close: () => budget.close(),
  };
}

function rateWith(rate: RateLimiter, take: RateLimiter['take']): RateLimiter {
  return { kind: rate.kind, take, close: () => rate.close() };
}

/**
 * Per request: the ports, and whether both the rate limiter and the budget granted the call
 * while the store was reachable. Reachability is read as each operation starts, where the
 * simulated Redis decides whether to fail (so an outage that begins later in the same
 * instant does not count against a grant already made).
 */
export function watchedLimits(ports: LimitPorts, redis: SimRedis): LimitPorts & { granted(): boolean } {
  let rateGranted = false;
  let budgetGranted = false;
  return {
    rate: rateWith(ports.rate, (agent, tool, rule, cost) => {
      const reachable = redis.available;
      return ports.rate.take(agent, tool, rule, cost).then((d) => {
        rateGranted = reachable && d.allowed;
        return d;
      });
    }),
    budget: budgetWith(ports.budget, {
      reserve: (agent, amount, limit) => {
        const reachable = redis.available;
        return ports.budget.reserve(agent, amount, limit).then((r) => {
          budgetGranted = reachable && r.ok;
          return r;
        });
      },
    }),
    granted: () => rateGranted && budgetGranted,
  };
}

/**
 * BROKEN (test-only): every agent draws on one rate bucket per tool and one budget, as if the
 * limits were keyed without the agent: a noisy agent spends a quiet one's allowance.
 */
export function sharedLimits({ rate, budget }: LimitPorts): LimitPorts {
  const everyone = 'everyone';
  return {
    rate: rateWith(rate, (_agent, tool, rule, cost) => rate.take(everyone, tool, rule, cost)),
    budget: budgetWith(budget, {
      reserve: (_agent, amount, limit) => budget.reserve(everyone, amount, limit),
      settle: (_agent, reserved, actual, window) => budget.settle(everyone, reserved, actual, window),
      remaining: (_agent, limit) => budget.remaining(everyone, limit),
      reset: () => budget.reset(everyone),
    }),
  };
}

/**
 * BROKEN (test-only): ports that take "store unreachable" for a grant, as an adapter that
 * swallows its connection errors would: during an outage every call goes through.
 */
export function failOpenLimits({ rate, budget }: LimitPorts): LimitPorts {
  const orGrant = <T>(op: Promise<T>, grant: T): Promise<T> =>
    op.catch((err: unknown) => {
      if (err instanceof LimitError && err.code === 'limits_unavailable') return grant;
      throw err;
    });
  return {
    rate: rateWith(rate, (agent, tool, rule, cost) => orGrant(rate.take(agent, tool, rule, cost), { allowed: true, remaining: 0, retryAfterMs: 0 })),
    budget: budgetWith(budget, {
      reserve: (agent, amount, limit) => orGrant(budget.reserve(agent, amount, limit), { ok: true, remaining: 0, window: 'outage' }),
      settle: (agent, reserved, actual, window) => orGrant(budget.settle(agent, reserved, actual, window), 0),
    }),
  };
}
