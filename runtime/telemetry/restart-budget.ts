/**
 * "At most N restarts in T seconds" (the TGA's supervision policy, contracts/SPEC.md section 10).
 * Pure: the caller passes the time, so the simulator's clock drives it too. Once exhausted it
 * stays exhausted (escalation: the runtime reports not-ready) until `reset()`.
 */
export class RestartBudget {
  readonly #times: number[] = [];
  #exhausted = false;

  constructor(
    readonly maxRestarts: number,
    readonly windowMs: number,
  ) {
    if (!Number.isInteger(maxRestarts) || maxRestarts < 0) throw new RangeError('maxRestarts must be a non-negative integer');
    if (!Number.isInteger(windowMs) || windowMs <= 0) throw new RangeError('windowMs must be a positive integer');
  }

  /** Asks for one restart at `now`: true when allowed (and counted), false when the budget is spent. */
  tryRestart(now: number): boolean {
    if (this.#exhausted) return false;
    while (this.#times.length > 0 && this.#times[0]! <= now - this.windowMs) this.#times.shift();
    if (this.#times.length >= this.maxRestarts) {
      this.#exhausted = true;
      return false;
    }
    this.#times.push(now);
    return true;
  }

  get exhausted(): boolean {
    return this.#exhausted;
  }

  /** Restarts counted in the window ending at `now`. */
  used(now: number): number {
    return this.#times.filter((t) => t > now - this.windowMs).length;
  }

  reset(): void {
    this.#times.length = 0;
    this.#exhausted = false;
  }
}
