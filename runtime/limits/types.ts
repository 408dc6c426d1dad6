import { TalosError } from '../errors.ts';

/** A refusal or failure of the rate-limit / budget layer. */
export class LimitError extends TalosError {}

/** Token bucket: `capacity` tokens at most, refilled continuously at `refillPerSecond`. */
export interface RateRule {
  capacity: number;
  refillPerSecond: number;
}

export interface RateDecision {
  allowed: boolean;
  /** Whole tokens left after this take (0 when refused). */
  remaining: number;
  /** When refused: milliseconds until enough tokens will have refilled (integer, >= 1). */
  retryAfterMs: number;
}

/**
 * One token bucket per (agent, tool). Implementations must be atomic per bucket and must
 * measure elapsed time with their own clock (Redis TIME for the shared one), never the caller's.
 */
export interface RateLimiter {
  readonly kind: 'redis' | 'memory';
  take(agent: string, tool: string, rule: RateRule, cost?: number): Promise<RateDecision>;
  close(): Promise<void>;
}

export interface BudgetReservation {
  ok: boolean;
  /** Units left in the agent's budget after the reservation (or unchanged when refused). */
  remaining: number;
  /**
   * The budget window the reservation was made in (opaque), handed back to `settle`: a refund
   * lands only in the same window, never in one a reset has started since.
   */
  window: string;
}

export type WindowClaim = 'first' | 'newer' | 'stale';

/**
 * An atomic spending budget per agent: `reserve` subtracts only when enough is left (so the
 * budget never goes below zero), `settle` refunds the part of a reservation the call did not
 * use. A budget starts at `limit` the first time an agent is seen and again after `reset`.
 */
export interface BudgetLedger {
  readonly kind: 'redis' | 'memory';
  reserve(agent: string, amount: number, limit: number): Promise<BudgetReservation>;
  /**
   * Refunds `reserved - actual` (actual is clamped to 0..reserved) into `window`, the window of
   * the reservation; after a reset it refunds nothing. Returns the agent's remaining.
   */
  settle(agent: string, reserved: number, actual: number, window: string): Promise<number>;
  remaining(agent: string, limit: number): Promise<number>;
  /** Starts a new window: every agent's budget goes back to its limit (run by the jobs actor). */
  reset(agent?: string): Promise<void>;
  /**
   * Records the budget window starting at `windowStart` (ms, epoch-aligned) as the current one,
   * atomically for every gateway sharing the ledger: 'newer' when it is later than the one
   * recorded (the caller then resets), 'first' when none was, 'stale' when it is not later.
   */
  claimWindow(windowStart: number): Promise<WindowClaim>;
  close(): Promise<void>;
}

/** Limits on the values a rule may hold, enforced where rules are used. */
export const MAX_BUCKET_CAPACITY = 1_000_000;
export const MAX_REFILL_PER_SECOND = 1_000_000;
export const MAX_BUDGET = Number.MAX_SAFE_INTEGER;
/** Agent DIDs and tool names longer than this are refused before they become keys. */
export const MAX_KEY_PART = 512;

export function checkRule(rule: RateRule, cost: number): void {
  if (!Number.isInteger(rule.capacity) || rule.capacity < 1 || rule.capacity > MAX_BUCKET_CAPACITY) {
    throw new LimitError('bad_rule', `rate capacity must be an integer in 1..${MAX_BUCKET_CAPACITY}`);
  }
  if (!(rule.refillPerSecond > 0) || rule.refillPerSecond > MAX_REFILL_PER_SECOND) {
    throw new LimitError('bad_rule', `rate refillPerSecond must be in (0, ${MAX_REFILL_PER_SECOND}]`);
  }
  if (!Number.isInteger(cost) || cost < 1 || cost > rule.capacity) {
    throw new LimitError('bad_rule', 'rate cost must be an integer between 1 and the bucket capacity');
  }
}

export function checkAmount(name: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new LimitError('bad_amount', `${name} must be a non-negative safe integer`);
}

export function checkKeyPart(name: string, s: string): void {
  if (typeof s !== 'string' || s.length === 0 || s.length > MAX_KEY_PART) {
    throw new LimitError('bad_key', `${name} must be a non-empty string of at most ${MAX_KEY_PART} characters`);
  }
}
