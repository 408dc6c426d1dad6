import { ed25519 } from '@noble/curves/ed25519.js';
import { toHex } from '../encoding/bytes.ts';

/**
 * Public-key validity as PROTOCOL.md section 2 defines it, shared by both providers and by
 * every place that takes an Ed25519 key (DIDs, bundles, tokens): a canonical encoding
 * (y < p, no "negative zero" x) of a point that is not one of the eight of small order.
 * Pure and provider-independent, so DID parsing needs no provider.
 */
export type EdPoint = ReturnType<typeof ed25519.Point.fromBytes>;

/** Decodes a canonical point, or returns undefined. */
export function decodeCanonicalPoint(bytes: Uint8Array): EdPoint | undefined {
  if (bytes.length !== 32) return undefined;
  try {
    return ed25519.Point.fromBytes(bytes, false);
  } catch {
    return undefined;
  }
}

export function isValidEd25519PublicKey(publicKey: Uint8Array): boolean {
  const point = decodeCanonicalPoint(publicKey);
  return point !== undefined && !point.isSmallOrder();
}

/**
 * The canonical encodings of the eight points of small order (the 8-torsion subgroup), built
 * from one point of order 8 by repeated addition.
 */
const ORDER_8_POINT = '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05';
const SMALL_ORDER_ENCODINGS: ReadonlySet<string> = (() => {
  const t = ed25519.Point.fromHex(ORDER_8_POINT);
  const out = new Set<string>();
  let p = ed25519.Point.ZERO;
  for (let i = 0; i < 8; i++) {
    out.add(p.toHex());
    p = p.add(t);
  }
  return out;
})();

/**
 * The byte-level half of the public-key rule, without decoding the point: y < p, no "negative
 * zero" x (sign bit set on y = 1 or y = p - 1), and not one of the eight small-order
 * encodings. A key that passes it and decodes is exactly a valid key; one that does not decode is
 * refused by OpenSSL's own decoding during verification. This is the node provider's fast
 * pre-check; isValidEd25519PublicKey stays the complete rule.
 */
export function passesEd25519KeyByteChecks(publicKey: Uint8Array): boolean {
  if (publicKey.length !== 32) return false;
  let middleAllOnes = true;
  for (let i = 1; i < 31; i++) if (publicKey[i] !== 0xff) middleAllOnes = false;
  const top = publicKey[31]! & 0x7f;
  const sign = publicKey[31]! >> 7;
  // y >= p - 1 happens only as 0x..ff ff ff 7f with the low byte >= 0xec (p - 1 = 2^255 - 20).
  if (middleAllOnes && top === 0x7f && publicKey[0]! >= 0xed) return false; // y >= p
  const isPMinusOne = middleAllOnes && top === 0x7f && publicKey[0] === 0xec;
  let isOne = publicKey[0] === 1 && top === 0;
  for (let i = 1; i < 31 && isOne; i++) if (publicKey[i] !== 0) isOne = false;
  if (sign === 1 && (isOne || isPMinusOne)) return false; // x = 0 with the sign bit set
  return !SMALL_ORDER_ENCODINGS.has(toHex(publicKey));
}
