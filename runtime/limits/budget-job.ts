import type { JobHandler } from '../jobs/scheduler.ts';
import type { BudgetLedger } from './types.ts';

/** What one process remembers of its resets: the start (ms) of the last window it reset. */
export interface BudgetResetState {
  lastWindowStart: number;
}

/**
 * The budget window reset, as a job for the scheduler the TGA owns (TGA_JOBS.budgetWindowReset
 * runs every minute, whatever the window: a window of up to 366 days needs no timer that long).
 * Budget windows are aligned to the epoch: a run whose slot is the first of a window
 * (slot mod window < the job's interval) starts the new window for every agent. Which slot is
 * first follows from time alone, so a process (re)started mid-window does not reset.
 * `state` skips a window this process already reset (a retried or re-delivered run); pass one
 * that outlives the handler when the handler is rebuilt (a restarted jobs child). A run
 * re-delivered to another process resets again, which only matters if agents spent within that
 * same first interval (contracts/SPEC.md section 9.6).
 */
export function budgetWindowResetJob(
  ledger: BudgetLedger,
  windowSeconds: number,
  jobEveryMs: number,
  state: BudgetResetState = { lastWindowStart: -1 },
): JobHandler {
  const windowMs = Math.round(windowSeconds * 1000);
  return async (run) => {
    const windowStart = run.slot - (run.slot % windowMs);
    if (run.slot - windowStart >= jobEveryMs) return; // not the window's first slot
    // <=: an older window's first run delivered late must not reset the current window.
    if (windowStart <= state.lastWindowStart) return;
    await ledger.reset();
    state.lastWindowStart = windowStart;
  };
}
