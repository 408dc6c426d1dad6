import type CircuitBreaker from 'opossum';
import type { BreakerState, TalosMetrics } from './metrics.ts';

/**
 * Mirrors an opossum circuit breaker's state into talos_breaker_state{name} and reports each
 * change to `onChange` (the TGA turns it into a message, so it shows in health and traces too).
 * Returns a function that stops observing.
 */
export function observeBreaker(
  metrics: TalosMetrics,
  name: string,
  breaker: CircuitBreaker,
  onChange?: (name: string, state: BreakerState) => void,
): () => void {
  const set = (state: BreakerState) => {
    metrics.setBreakerState(name, state);
    onChange?.(name, state);
  };
  metrics.setBreakerState(name, breakerState(breaker));
  const onOpen = () => set('open');
  const onHalfOpen = () => set('halfOpen');
  const onClose = () => set('closed');
  breaker.on('open', onOpen);
  breaker.on('halfOpen', onHalfOpen);
  breaker.on('close', onClose);
  return () => {
    breaker.removeListener('open', onOpen);
    breaker.removeListener('halfOpen', onHalfOpen);
    breaker.removeListener('close', onClose);
  };
}

export function breakerState(breaker: CircuitBreaker): BreakerState {
  return breaker.opened ? 'open' : breaker.halfOpen ? 'halfOpen' : 'closed';
}
