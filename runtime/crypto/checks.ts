import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { CryptoError } from '../errors.ts';
import { concatBytes } from '../encoding/bytes.ts';
import { decodeCanonicalPoint, isValidEd25519PublicKey } from './ed25519-points.ts';

export function checkLength(bytes: Uint8Array, length: number, code: string): Uint8Array {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new CryptoError(code, `expected ${length} bytes`);
  }
  return bytes;
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
  if (publicKey.length !== 32 || signature.length !== 64) return false;
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
