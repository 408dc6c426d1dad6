import { TalosError } from '../errors.ts';

/**
 * Refusals of the audit log, with the stable codes listed in contracts/SPEC.md section 8
 * section 8.7.
 */
export class AuditError extends TalosError {}
