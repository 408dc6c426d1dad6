import { validate } from '../../contracts/validate.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { SchemaError } from '../errors.ts';
import { AuditError } from './errors.ts';

/**
 * One audit event (PROTOCOL.md section 8; schema contracts/schemas/audit-event.schema.json,
 * closed). Leaf bytes are JCS(event). Plaintext arguments and results never appear: the
 * schema has no field that could carry them, and free text is limited to reason codes.
 */
export interface AuditEvent {
  ts: number;
  kind: 'request' | 'response' | 'notification' | 'session_open' | 'session_close' | 'revocation' | 'config' | 'alert';
  from: string;
  to: string;
  msg_hash: string;
  method?: string;
  tool?: string;
  decision?: 'allow' | 'deny';
  reason?: string;
  token_id?: string;
}

/** Leaf bytes are bounded by the schema's field limits; this is the hard cap checked here. */
export const MAX_LEAF_BYTES = 2048;

export function checkEvent(value: unknown): AuditEvent {
  try {
    return validate('audit-event', value) as AuditEvent;
  } catch (e) {
    if (e instanceof SchemaError) throw new AuditError('bad_event', e.message);
    throw e;
  }
}

/** Validates and canonicalizes: the exact bytes that are hashed into the log. */
export function leafBytes(event: AuditEvent): Uint8Array {
  const bytes = jcsBytes(checkEvent(event));
  if (bytes.length > MAX_LEAF_BYTES) throw new AuditError('bad_event', 'event is too large');
  return bytes;
}
