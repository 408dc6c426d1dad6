/**
 * Invariants are checked while a run goes on, at the moment the property could first be
 * broken (a call reaching an upstream, a checkpoint being published, a message being
 * delivered), plus a final check at the end of the run. The first violation stops the run.
 */
export const INVARIANTS = {
  auditBeforeForward: 'audit-before-forward',
  oracleAgrees: 'oracle-agrees',
  checkpointsConsistent: 'checkpoints-consistent',
  deliveredOnce: 'delivered-once',
  noSecretsLeak: 'no-secrets-leak',
  progressAfterHeal: 'progress-after-heal',
  forwardSecrecy: 'forward-secrecy',
  limitsHold: 'limits-hold',
  limitsIsolated: 'limits-isolated',
  limitsFailClosed: 'limits-fail-closed',
  secretsReadable: 'secrets-readable',
} as const;

export type InvariantName = (typeof INVARIANTS)[keyof typeof INVARIANTS];

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: InvariantName | 'crash',
    readonly detail: string,
    readonly at: number,
  ) {
    super(`invariant ${invariant} violated at t=${at}ms: ${detail}`);
  }
}

/** Records which invariants were exercised (checked at least once) in a run. */
export class InvariantLog {
  readonly checks = new Map<string, number>();
  violation: InvariantViolation | null = null;

  constructor(private readonly now: () => number) {}

  /** Counts a check; throws (and remembers) the first violation. */
  check(name: InvariantName, ok: boolean, detail: () => string): void {
    this.checks.set(name, (this.checks.get(name) ?? 0) + 1);
    if (!ok) this.fail(name, detail());
  }

  fail(name: InvariantName | 'crash', detail: string): never {
    const v = new InvariantViolation(name, detail, this.now());
    if (!this.violation) this.violation = v;
    throw v;
  }
}
