import { LruCache } from '../crypto/lru.ts';
import { publicKeyFromDid } from '../identity/did.ts';

/**
 * Parsing a DID checks its key is a canonical, non-small-order point: exact, but costly
 * (base58 and a point decompression). Tokens repeat the same few DIDs, so the public key of
 * each DID is parsed once and kept here (public values only).
 */
export const DID_CACHE_SIZE = 4096;
const keys = new LruCache<string, Uint8Array | null>(DID_CACHE_SIZE);

/** The key a did:talos DID names, or null when it is not a valid did:talos DID. */
export function cachedDidKey(did: unknown): Uint8Array | null {
  if (typeof did !== 'string' || !did.startsWith('did:talos:z') || did.length > 64) return null;
  let k = keys.get(did);
  if (k === undefined) {
    try {
      k = publicKeyFromDid(did);
    } catch {
      k = null;
    }
    keys.set(did, k);
  }
  return k;
}

export function isValidDid(did: unknown): did is string {
  return cachedDidKey(did) !== null;
}
