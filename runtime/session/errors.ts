import { TalosError } from '../errors.ts';

/**
 * A session refused an input: a bad frame, a handshake it will not accept, a message it cannot
 * (or must not) decrypt. The session it was given is left exactly as it was.
 * Codes are stable and listed in contracts/SPEC.md section 5.
 */
export class SessionError extends TalosError {}

export type SessionErrorCode =
  | 'frame_too_large'
  | 'frame_malformed'
  | 'plaintext_too_large'
  | 'bad_header'
  | 'bad_public_key'
  | 'bad_bundle'
  | 'bad_identity'
  | 'bundle_expired'
  | 'bad_pq_prekey'
  | 'pq_downgrade'
  | 'unknown_prekey'
  | 'handshake_replay'
  | 'sid_mismatch'
  | 'wrong_recipient'
  | 'wrong_sender'
  | 'unknown_session'
  | 'too_many_skipped'
  | 'duplicate_message'
  | 'decrypt_failed'
  | 'chain_exhausted'
  | 'session_closed'
  | 'state_corrupt';

export const sessionError = (code: SessionErrorCode, message: string, cause?: unknown): SessionError =>
  new SessionError(code, message, cause === undefined ? undefined : { cause });
