import { ed25519 } from '@noble/curves/ed25519.js';

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
