/**
 * Typed messages between the TGA and the actors it owns. Each actor kind adds its own
 * message types in its actors/<kind>/ folder; these are the ones every child shares.
 */
import type { DriftFinding } from '../runtime/drift/index.ts';

export type ChildKind = 'gateway' | 'auditor' | 'upstream' | 'jobs' | 'session';

/** A child reports that it is up (after start or restart). */
export interface ChildUp {
  type: 'child.up';
  id: string;
  kind: ChildKind;
}

/** A child reports a fault it could not handle itself. `code` is a TalosError code. */
export interface ChildFault {
  type: 'child.fault';
  id: string;
  kind: ChildKind;
  code: string;
}

/** The circuit breakers the TGA watches: `upstream:<name>`, `redis`, `audit`. */
export type BreakerState = 'closed' | 'open' | 'half-open';

/** A breaker changed state (opossum's open / halfOpen / close events). */
export interface BreakerChanged {
  type: 'breaker.state';
  name: string;
  state: BreakerState;
}

/** The result of one drift check: every difference found (empty: none). */
export interface DriftReported {
  type: 'drift.report';
  findings: DriftFinding[];
  /** Digest of the running configuration when the check ran. */
  digest: string;
}

/** Asks for a drift check now (operators, tests); the monitor also runs on its interval. */
export interface DriftCheck {
  type: 'drift.check';
}

/** Operator action after escalation: clear the restart budget and start the children that are down. */
export interface TgaResume {
  type: 'tga.resume';
}

export type TgaEvent = ChildUp | ChildFault | BreakerChanged | DriftReported | DriftCheck | TgaResume | { type: 'tga.stop' };
