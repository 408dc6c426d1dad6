import CircuitBreaker from 'opossum';
import type { BreakerConfig } from '../../runtime/config/config.ts';
import { TalosError } from '../../runtime/errors.ts';
import {
  LimitError,
  MemoryBudgetLedger,
  MemoryRateLimiter,
  type BudgetLedger,
  type RateLimiter,
} from '../../runtime/limits/index.ts';
import type { AuditSink } from '../../runtime/mcp/pipeline.ts';
import type { BreakerState } from '../messages.ts';

/**
 * Circuit breakers (opossum) around the runtime's shared dependencies other than upstreams
 * (those have theirs in actors/upstream): Redis (rate limits and budgets) and the audit store.
 * A breaker's transitions go to `onState` (the TGA). Fallbacks are explicit and never let a
 * call through unaudited or unlimited:
 *   - audit open: `audit_unavailable` (the pipeline answers with it and forwards nothing);
 *   - Redis open, policy `fail-closed` (default): `limits_unavailable` (refused);
 *     policy `local`: this process's in-memory limits stand in until Redis is back.
 */

/** A Redis command slower than this counts as a failure (ioredis would otherwise queue it for seconds). */
export const REDIS_OP_TIMEOUT_MS = 1_000;
/** An audit append slower than this counts as a failure (the call is refused, nothing is forwarded). */
export const AUDIT_APPEND_TIMEOUT_MS = 10_000;

export type RedisPolicy = 'fail-closed' | 'local';

type Op<T> = () => Promise<T>;

function breakerOver(config: BreakerConfig, timeoutMs: number, isFailure: (err: unknown) => boolean) {
  return new CircuitBreaker(<T>(op: Op<T>) => op(), {
    timeout: timeoutMs,
    errorThresholdPercentage: config.errorThresholdPercentage,
    resetTimeout: config.resetTimeoutMs,
    volumeThreshold: config.volumeThreshold,
    // opossum's errorFilter: true means "not a failure of the dependency".
    errorFilter: (err: unknown) => !isFailure(err),
  });
}

function watch(breaker: CircuitBreaker, name: string, onState: (name: string, state: BreakerState) => void): void {
  breaker.on('open', () => onState(name, 'open'));
  breaker.on('halfOpen', () => onState(name, 'half-open'));
  breaker.on('close', () => onState(name, 'closed'));
}

export function breakerStateOf(breaker: CircuitBreaker): BreakerState {
  return breaker.opened ? 'open' : breaker.halfOpen ? 'half-open' : 'closed';
}

const isOpenOrTimeout = (err: unknown) => {
  const code = (err as { code?: unknown })?.code;
  return code === 'EOPENBREAKER' || code === 'ETIMEDOUT';
};

/** The audit sink behind a breaker: the store failing (not a refused event) counts. */
export function guardedAudit(
  current: () => AuditSink | undefined,
  config: BreakerConfig,
  onState: (name: string, state: BreakerState) => void,
): { sink: AuditSink; breaker: CircuitBreaker; shutdown(): void } {
  const breaker = breakerOver(config, AUDIT_APPEND_TIMEOUT_MS, (err) => {
    const code = (err as { code?: unknown })?.code;
    // A malformed event or a full queue is not the store failing.
    return code !== 'bad_event' && code !== 'audit_backpressure';
  });
  watch(breaker, 'audit', onState);
  const sink: AuditSink = {
    async append(event) {
      try {
        return await breaker.fire(async () => {
          const s = current();
          if (!s) throw new TalosError('audit_unavailable', 'the auditor is restarting');
          return s.append(event);
        });
      } catch (err) {
        if (isOpenOrTimeout(err)) {
          throw new TalosError('audit_unavailable', breaker.opened ? 'the audit store is unavailable (circuit open)' : 'the audit store did not answer in time');
        }
        throw err;
      }
    },
  };
  return { sink, breaker, shutdown: () => breaker.shutdown() };
}

/** Rate limiter and budget ledger on Redis behind one breaker ("redis"), with the configured fallback. */
export function guardedLimits(
  redis: { rate: RateLimiter; budget: BudgetLedger },
  config: BreakerConfig,
  policy: RedisPolicy,
  onState: (name: string, state: BreakerState) => void,
): { rate: RateLimiter; budget: BudgetLedger; breaker: CircuitBreaker; shutdown(): void } {
  const breaker = breakerOver(config, REDIS_OP_TIMEOUT_MS, (err) => !(err instanceof LimitError) || err.code === 'limits_unavailable');
  watch(breaker, 'redis', onState);
  const local = policy === 'local' ? { rate: new MemoryRateLimiter(), budget: new MemoryBudgetLedger() } : undefined;

  async function run<T>(op: Op<T>, fallback?: Op<T>): Promise<T> {
    try {
      return (await breaker.fire(op)) as T;
    } catch (err) {
      if (!isOpenOrTimeout(err) && !(err instanceof LimitError && err.code === 'limits_unavailable')) throw err;
      if (fallback) return fallback();
      throw new LimitError(
        'limits_unavailable',
        breaker.opened ? 'Redis is unavailable (circuit open): calls are refused until it is back' : `Redis did not answer: ${(err as Error).message}`,
      );
    }
  }

  const rate: RateLimiter = {
    kind: 'redis',
    take: (agent, tool, rule, cost) => run(() => redis.rate.take(agent, tool, rule, cost), local && (() => local.rate.take(agent, tool, rule, cost))),
    close: () => redis.rate.close(),
  };
  const budget: BudgetLedger = {
    kind: 'redis',
    reserve: (agent, amount, limit) => run(() => redis.budget.reserve(agent, amount, limit), local && (() => local.budget.reserve(agent, amount, limit))),
    settle: (agent, reserved, actual, window) => run(() => redis.budget.settle(agent, reserved, actual, window), local && (() => local.budget.settle(agent, reserved, actual, window))),
    remaining: (agent, limit) => run(() => redis.budget.remaining(agent, limit), local && (() => local.budget.remaining(agent, limit))),
    reset: (agent) => run(() => redis.budget.reset(agent), local && (() => local.budget.reset(agent))),
    // No local fallback: which window is current is shared state; while Redis is away the job retries.
    claimWindow: (windowStart) => run(() => redis.budget.claimWindow(windowStart)),
    close: () => redis.budget.close(),
  };
  return {
    rate,
    budget,
    breaker,
    shutdown: () => {
      breaker.shutdown();
      void local?.rate.close();
      void local?.budget.close();
    },
  };
}
