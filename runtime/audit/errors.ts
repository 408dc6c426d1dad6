import { TalosError } from '../errors.ts';

/**
 * Refusals of the audit log. Stable codes (contracts/spec/08-audit.md lists them):
 * bad_proof, bad_size, bad_index, bad_hash, bad_note, bad_checkpoint, bad_signature,
 * unknown_key, inconsistent, fork, bad_event, audit_backpressure, audit_closed,
 * store_corrupt, store_conflict.
 */
export class AuditError extends TalosError {}
