import type { JobHandler } from '../jobs/scheduler.ts';
import type { BudgetLedger } from './types.ts';

/** What one process remembers of its resets: the start (ms) of the last window it saw reset. */
export interface BudgetResetState {
  lastWindowStart: number;
}

/**
 * The budget window reset, as a job for the scheduler the TGA owns (TGA_JOBS.budgetWindowReset
 * runs every minute, whatever the window: a window of up to 366 days needs no timer that long).
 * Budget windows are aligned to the epoch. The first run in a window claims it in the ledger
 * (atomically, for every gateway sharing it) and, when it is newer than the window claimed
 * before, resets every agent's budget: late, too, when every process was down at the window's
 * start. With no window claimed yet (a new ledger: a first start, an in-process ledger after a
 * restart) only a run of the window's first slot resets; later ones just record the window, so
 * a process (re)started mid-window does not hand out a second budget.
 * `state` skips windows this process already saw (a retried or re-delivered run) without asking
 * the ledger; pass one that outlives the handler when it is rebuilt (a restarted jobs child).
 * A crash between the claim and the reset leaves that window unreset (contracts/SPEC.md 9.6).
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
    // <=: a late run of an older window must not touch the current one.
    if (windowStart <= state.lastWindowStart) return;
    const claim = await ledger.claimWindow(windowStart);
    if (claim === 'newer' || (claim === 'first' && run.slot - windowStart < jobEveryMs)) await ledger.reset();
    state.lastWindowStart = windowStart;
  };
}
