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
