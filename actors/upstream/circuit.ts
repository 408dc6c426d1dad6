import type CircuitBreaker from 'opossum';
import { TunnelError, circuitOpenRefusal } from '../../runtime/mcp/errors.ts';
import type { CircuitAdmission } from '../../runtime/mcp/relay.ts';

const GO: CircuitAdmission = { release: () => {} };

/**
 * The gateway's view of an upstream's opossum breaker, asked before a call spends anything (a
 * rate token, budget, an audit entry). Open: refused, with the time until the breaker lets a
 * trial call through (opossum half-opens it `resetTimeoutMs` after it opened; at least 1 ms).
 * Half-open: exactly one call goes through as the trial, and holds it until it releases its
 * admission (when its forward ends, however it ends); the others are refused without a hint,
 * as opossum's fire() would refuse them. Closed or shut down: go (fire() decides).
 */
export class CircuitGate {
  private openedAt: number;
  private trialHeld = false;

  constructor(
    private readonly breaker: CircuitBreaker,
    private readonly resetTimeoutMs: number,
    private readonly now: () => number,
  ) {
    this.openedAt = now();
    breaker.on('open', () => {
      this.openedAt = now();
    });
  }

  /** While the breaker is open: ms until it lets a trial call through. Otherwise undefined. */
  retryAfterMs(): number | undefined {
    return this.breaker.opened ? Math.max(1, this.openedAt + this.resetTimeoutMs - this.now()) : undefined;
  }

  /**
   * When `err` is opossum's refusal at fire() (EOPENBREAKER: the circuit opened while the call
   * was on its way), what the agent is told; otherwise undefined.
   */
  refusal(err: unknown, upstream: string): TunnelError | undefined {
    if ((err as { code?: unknown } | null)?.code !== 'EOPENBREAKER') return undefined;
    const open = circuitOpenRefusal(upstream, this.retryAfterMs());
    return new TunnelError('upstream_unavailable', open.message, open.data);
  }

  readonly admit = (): CircuitAdmission => {
    const b = this.breaker;
    if (b.opened) return { refused: { retryAfterMs: this.retryAfterMs()! }, release: GO.release };
    if (!b.halfOpen) return GO;
    // pendingClose: opossum has not let its trial through yet (fire() clears it).
    if (this.trialHeld || !b.pendingClose) return { refused: {}, release: GO.release };
    this.trialHeld = true;
    let held = true;
    return {
      release: () => {
        if (held) this.trialHeld = held = false;
      },
    };
  };
}
