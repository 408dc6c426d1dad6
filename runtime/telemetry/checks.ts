import type { CheckResult } from './health-server.ts';
import type { RestartBudget } from './restart-budget.ts';

/**
 * Ready-made readiness checks for /readyz (contracts/SPEC.md section 10.3). Each returns
 * ok/not ok with a short detail; none of them reads or prints a secret.
 */

/** An ioredis client (or anything with its `status`): ready only when connected. */
export const redisCheck =
  (client: { status: string }) =>
  (): CheckResult => ({ ok: client.status === 'ready', detail: client.status });

/** A job scheduler: ready while its backing store answers. */
export const schedulerCheck =
  (scheduler: { kind: string; isHealthy(): boolean }) =>
  (): CheckResult => ({ ok: scheduler.isHealthy(), detail: scheduler.kind });

/** The TGA's restart budget: not ready once it is exhausted (escalation). */
export const restartBudgetCheck =
  (budget: RestartBudget, now: () => number = Date.now) =>
  (): CheckResult =>
    budget.exhausted
      ? { ok: false, detail: 'restart budget exhausted' }
      : { ok: true, detail: `${budget.used(now())}/${budget.maxRestarts} in ${budget.windowMs / 1000}s` };

/** Circuit breakers by name: ready when none of `required` is open. */
export const breakersCheck =
  (states: () => Record<string, 'closed' | 'halfOpen' | 'open'>, required?: readonly string[]) =>
  (): CheckResult => {
    const all = states();
    const open = Object.keys(all).filter((n) => all[n] === 'open' && (!required || required.includes(n)));
    return open.length === 0 ? { ok: true } : { ok: false, detail: `open: ${open.sort().join(', ')}` };
  };
