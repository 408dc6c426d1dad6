import type CircuitBreaker from 'opossum';

/**
 * Whether `breaker` would refuse a call now, decided as opossum's fire() decides it (neither
 * closed nor about to let its half-open trial call through), and, while it is open, when it
 * lets a trial call through: `resetTimeoutMs` after it opened at `openedAt`. Half-open with
 * the trial call in flight, nobody knows yet: no hint.
 */
export function circuitRefusal(breaker: CircuitBreaker, openedAt: number, resetTimeoutMs: number, now: number): { retryAfterMs?: number } | undefined {
  if (breaker.closed || breaker.pendingClose) return undefined;
  return breaker.opened ? { retryAfterMs: Math.max(1, openedAt + resetTimeoutMs - now) } : {};
}
