/**
 * Typed messages between the TGA and the actors it owns. Each actor kind adds its own
 * message types in its actors/<kind>/ folder; these are the ones every child shares.
 */
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

export type TgaEvent = ChildUp | ChildFault | { type: 'tga.stop' };
