import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { CryptoError } from '../errors.ts';
import { concatBytes } from '../encoding/bytes.ts';
import { decodeCanonicalPoint, isValidEd25519PublicKey } from './ed25519-points.ts';

/**
 * Input checks shared by both providers, so that every refusal carries the same code whichever
 * provider runs. Messages name the expected shape, never the bytes given.
 */
export function checkLength(bytes: Uint8Array, length: number, code: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new CryptoError(code, `expected ${length} bytes`);
  }
  return bytes;
}

/** Arbitrary-length byte inputs (messages, plaintexts, AAD, HKDF inputs, MAC keys). */
export function checkBytes(bytes: unknown, what: string): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new CryptoError('crypto_bad_input', `${what} must be a Uint8Array`);
  return bytes;
}

/**
 * Longest AEAD plaintext, and longest AAD: OpenSSL (which the node provider calls) counts bytes
 * in an int, so plaintext plus tag must fit in 2^31 - 1. Both providers refuse the same inputs.
 */
export const AEAD_MAX_PLAINTEXT_BYTES = 2 ** 31 - 1 - 16;

/** The inputs of an AEAD seal or open; `data` is the plaintext or the sealed text (tag included). */
export function checkAeadInputs(
  key: Uint8Array,
  nonce: Uint8Array,
  nonceLength: number,
  data: Uint8Array,
  aad: Uint8Array | undefined,
  sealed: boolean,
): void {
  checkLength(key, 32, 'aead_bad_key');
  checkLength(nonce, nonceLength, 'aead_bad_nonce');
  const dataMax = AEAD_MAX_PLAINTEXT_BYTES + (sealed ? 16 : 0);
  if (checkBytes(data, 'AEAD input').length > dataMax) {
    throw new CryptoError('aead_too_long', `${sealed ? 'a sealed AEAD value' : 'an AEAD plaintext'} must be at most ${dataMax} bytes`);
  }
  if (aad !== undefined && checkBytes(aad, 'AAD').length > AEAD_MAX_PLAINTEXT_BYTES) {
    throw new CryptoError('aead_too_long', `AEAD AAD must be at most ${AEAD_MAX_PLAINTEXT_BYTES} bytes`);
  }
}

/** Largest single randomBytes request: far above any key or nonce, small enough to refuse mistakes. */
export const MAX_RANDOM_BYTES = 1 << 20;

export function checkRandomLength(length: number): number {
  if (!Number.isInteger(length) || length < 0 || length > MAX_RANDOM_BYTES) {
    throw new CryptoError('random_bad_length', `random length must be an integer in 0..${MAX_RANDOM_BYTES}`);
  }
  return length;
}

/** An injected random source that returns the wrong shape is a fault, never silently used. */
export function checkRandomOutput(bytes: unknown, length: number): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new CryptoError('random_source_failed', `random source did not return ${length} bytes`);
  }
  return bytes;
}

/** RFC 5869: L <= 255 * HashLen. Talos also refuses L = 0 (no caller needs an empty key). */
export const HKDF_SHA256_MAX_LENGTH = 255 * 32;

export function checkHkdfLength(length: number): number {
  if (!Number.isInteger(length) || length < 1 || length > HKDF_SHA256_MAX_LENGTH) {
    throw new CryptoError('hkdf_bad_length', `HKDF-SHA-256 output length must be 1..${HKDF_SHA256_MAX_LENGTH}`);
  }
  return length;
}

/** Verification inputs of the wrong shape make a signature invalid rather than an error. */
export function ed25519VerifyShapeOk(publicKey: unknown, message: unknown, signature: unknown): boolean {
  checkBytes(message, 'message');
  return (
    publicKey instanceof Uint8Array && publicKey.length === 32 && signature instanceof Uint8Array && signature.length === 64
  );
}

export function isAllZero(bytes: Uint8Array): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

/** The group order L of edwards25519. */
export const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;

/**
 * Ed25519 verification exactly as PROTOCOL.md section 2: S < L, A and R canonical, A not of
 * small order, and the cofactorless equation [S]B = R + [k]A with k = SHA-512(R || A || M) mod L.
 * noble's own strict mode checks the cofactored equation, so the equation is computed here.
 */
export function edVerifyStrict(
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
  sha512: (m: Uint8Array) => Uint8Array,
): boolean {
  if (!ed25519VerifyShapeOk(publicKey, message, signature)) return false;
  const A = decodeCanonicalPoint(publicKey);
  if (!A || A.isSmallOrder()) return false;
  const rBytes = signature.subarray(0, 32);
  const R = decodeCanonicalPoint(rBytes);
  if (!R) return false;
  const S = bytesToNumberLE(signature.subarray(32));
  if (S >= ED25519_L) return false;
  const k = bytesToNumberLE(sha512(concatBytes(rBytes, publicKey, message))) % ED25519_L;
  const SB = S === 0n ? ed25519.Point.ZERO : ed25519.Point.BASE.multiply(S);
  const kA = k === 0n ? ed25519.Point.ZERO : A.multiplyUnsafe(k);
  return SB.equals(R.add(kA));
}
edVerifyStrict.isValidKey = isValidEd25519PublicKey;
