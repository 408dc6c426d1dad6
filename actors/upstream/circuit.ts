import type CircuitBreaker from 'opossum';

/**
 * Follows `breaker` and answers, while it is open, how long until it lets a trial call through
 * (opossum half-opens it `resetTimeoutMs` after it opened; at least 1 ms). Closed, half-open or
 * shut down: undefined, and opossum's fire() decides (it refuses the calls behind a half-open
 * trial itself).
 */
export function circuitOpenFor(breaker: CircuitBreaker, resetTimeoutMs: number, now: () => number): () => number | undefined {
  let openedAt = now();
  breaker.on('open', () => {
    openedAt = now();
  });
  return () => (breaker.opened ? Math.max(1, openedAt + resetTimeoutMs - now()) : undefined);
}
