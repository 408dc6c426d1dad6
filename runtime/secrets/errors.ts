import { TalosError } from '../errors.ts';

/**
 * Refusals of the secrets-at-rest layer. Codes (stable):
 * - `kek_malformed`: a key-encryption key or its id is not of the required form
 * - `kek_duplicate`: a KEK id is already on the ring with different key bytes
 * - `kek_unknown`: a record names a KEK that is not (or no longer) on the ring
 * - `kek_is_primary`: the primary KEK cannot be retired
 * - `kek_in_use`: a KEK still wraps stored records and cannot be retired
 * - `secret_malformed`: a wrapped secret is not of the v1 form
 * - `secret_auth_failed`: a wrapped secret does not open (wrong key, moved to another record, tampered)
 * - `secret_too_large`: the plaintext exceeds MAX_SECRET_BYTES
 * - `secret_bad_record`: a purpose or record id is not of the required form
 */
export class SecretsError extends TalosError {}
