/**
 * Validity checks for public keys taken from the protocol (PROTOCOL.md sections 2 and 4).
 * Pure and provider-independent: both providers and every parser give the same verdict.
 */

export const X25519_PUBLIC_KEY_LENGTH = 32;
export const MLKEM768_PUBLIC_KEY_LENGTH = 1184;
/** ML-KEM-768: k = 3 polynomials of 256 12-bit coefficients, then the 32-byte seed rho. */
const MLKEM768_POLY_BYTES = 3 * 384;
const MLKEM_Q = 3329;

/**
 * An X25519 public key is canonical when its top bit is clear and u < p = 2^255 − 19, so each
 * key has exactly one encoding (the X25519 function itself would mask the bit and reduce u).
 */
export function isCanonicalX25519PublicKey(key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.length !== X25519_PUBLIC_KEY_LENGTH) return false;
  if (key[31]! & 0x80) return false;
  // With the top bit clear, u >= p only for 2^255 − 19 … 2^255 − 1: little-endian bytes
  // ed..ff, then thirty 0xff, then 0x7f.
  if (key[31] !== 0x7f || key[0]! < 0xed) return true;
  for (let i = 1; i < 31; i++) if (key[i] !== 0xff) return true;
  return false;
}

/**
 * The FIPS 203 encapsulation-key modulus check (section 7.2): every 12-bit coefficient of the
 * encoded vector t̂ must be below q = 3329, i.e. ByteEncode12(ByteDecode12(ek)) == ek.
 */
export function isValidMlKem768PublicKey(key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.length !== MLKEM768_PUBLIC_KEY_LENGTH) return false;
  for (let i = 0; i < MLKEM768_POLY_BYTES; i += 3) {
    const b0 = key[i]!;
    const b1 = key[i + 1]!;
    const b2 = key[i + 2]!;
    if ((b0 | ((b1 & 0x0f) << 8)) >= MLKEM_Q) return false;
    if (((b1 >> 4) | (b2 << 4)) >= MLKEM_Q) return false;
  }
  return true;
}
