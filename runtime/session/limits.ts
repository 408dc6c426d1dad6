/**
 * Every limit of the session layer, in one place (contracts/SPEC.md section 5 restates them).
 * Each is enforced where the comment says.
 */

/** Keys one message may make us skip in one chain (ratchet.ts, skipTo). More is refused. */
export const MAX_SKIP = 1000;
/** Skipped message keys kept per session; storing more drops the oldest (ratchet.ts, storeSkipped). */
export const MAX_STORED_SKIPPED = 2000;
/** A stored skipped key older than this is purged inside the decrypt call (ratchet.ts). */
export const SKIPPED_KEY_MAX_AGE_MS = 7 * 24 * 60 * 60 * 1000;
/** Largest serialized frame (UTF-8 bytes of the envelope JSON) we parse or produce (envelope.ts). */
export const MAX_FRAME_BYTES = 1024 * 1024;
/**
 * Largest plaintext one message may carry (ratchet.ts, encrypt): its base64url ciphertext plus
 * the largest handshake fields (an ML-KEM ciphertext) stays under MAX_FRAME_BYTES.
 */
export const MAX_PLAINTEXT_BYTES = 760 * 1024;
/** A chain counter is a u32 in the header; a chain that reaches it must ratchet (ratchet.ts). */
export const MAX_CHAIN_INDEX = 0xffffffff;
/** Close reasons are short codes, not prose (session.ts). */
export const MAX_CLOSE_REASON_BYTES = 256;
