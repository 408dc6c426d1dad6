import { TalosError } from '../errors.ts';

/**
 * Refusals of the audit log, with the stable codes listed in contracts/spec/08-audit.md
 * section 8.7.
 */
export class AuditError extends TalosError {}
