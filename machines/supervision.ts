/**
 * The restart budget of a supervisor, as in Erlang/OTP: at most `maxRestarts` restarts within
 * any `windowMs`; one more means the fault is not transient and the supervisor escalates.
 */
export interface RestartPolicy {
  maxRestarts: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { maxRestarts: 5, windowMs: 60_000 };

/** The restart times still inside the window at `now` (the only ones that count). */
export function recentRestarts(history: readonly number[], now: number, policy: RestartPolicy): number[] {
  return history.filter((t) => now - t < policy.windowMs);
}

/** True when one more restart at `now` stays within the budget. */
export function mayRestart(history: readonly number[], now: number, policy: RestartPolicy): boolean {
  return recentRestarts(history, now, policy).length < policy.maxRestarts;
}

/**
 * The wait before a restart: 100 ms doubled for each restart already in the window, at most
 * 10 s. A dependency away for a moment (a store failing over) gets time to come back instead
 * of the budget being spent in a few milliseconds.
 */
export const RESTART_BACKOFF_BASE_MS = 100;
export const RESTART_BACKOFF_MAX_MS = 10_000;

/** The delay before the `n`th restart within the window (n >= 1). */
export function restartDelay(n: number): number {
  return Math.min(RESTART_BACKOFF_BASE_MS * 2 ** Math.max(0, n - 1), RESTART_BACKOFF_MAX_MS);
}
