import type { JobHandler } from '../jobs/scheduler.ts';
import type { BudgetLedger } from './types.ts';

/**
 * The budget window reset, as a job for the scheduler the TGA owns (TGA_JOBS.budgetWindowReset
 * runs every minute). Budget windows are aligned to the epoch: a run whose slot is the first
 * of a window (slot mod window < the job's interval) starts the new window for every agent.
 * A re-delivered run of that slot resets again, which only matters if the agent spent within
 * that same first interval (documented in contracts/SPEC.md section 9).
 */
export function budgetWindowResetJob(ledger: BudgetLedger, windowSeconds: number, jobEveryMs: number): JobHandler {
  const windowMs = windowSeconds * 1000;
  return async (run) => {
    if (run.slot % windowMs < jobEveryMs) await ledger.reset();
  };
}
