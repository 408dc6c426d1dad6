import type { CryptoProvider } from '../crypto/provider.ts';
import { concatBytes, utf8 } from '../encoding/bytes.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { EncodingError } from '../errors.ts';

/**
 * The one signing rule (PROTOCOL.md section 1):
 *   sig = Ed25519.sign(sk, utf8(DOMAIN) || 0x00 || JCS(obj without `sig`))
 * Each signed type has its own domain, so a signature never transfers between types.
 */
export const DOMAINS = {
  prekeyBundle: 'talos/v1/prekey-bundle',
  pqPrekey: 'talos/v1/pq-prekey',
  capability: 'talos/v1/capability',
  revocation: 'talos/v1/revocation',
  didDocument: 'talos/v1/did-document',
  /** An initiator's certificate of its X25519 identity key on first session messages. */
  sessionIdentity: 'talos/v1/session-identity',
} as const;

export type Domain = (typeof DOMAINS)[keyof typeof DOMAINS];

/** The exact bytes that are signed for `obj` under `domain` (its `sig` field left out). */
export function signingInput(domain: Domain, obj: Record<string, unknown>): Uint8Array {
  const { sig: _ignored, ...unsigned } = obj;
  return concatBytes(utf8(domain), new Uint8Array([0]), jcsBytes(unsigned));
}

/** Returns a copy of `obj` with its `sig` field set. */
export function signObject<T extends Record<string, unknown>>(
  crypto: CryptoProvider,
  secretKey: Uint8Array,
  domain: Domain,
  obj: T,
): T & { sig: string } {
  const sig = toB64u(crypto.ed25519Sign(secretKey, signingInput(domain, obj)));
  return { ...obj, sig };
}

/** True only when `obj.sig` is a valid signature of `obj` under `domain` by `publicKey`. */
export function verifyObject(
  crypto: CryptoProvider,
  publicKey: Uint8Array,
  domain: Domain,
  obj: Record<string, unknown>,
): boolean {
  if (typeof obj.sig !== 'string') return false;
  let sig: Uint8Array;
  let input: Uint8Array;
  try {
    sig = fromB64u(obj.sig, 64);
    input = signingInput(domain, obj);
  } catch (err) {
    if (err instanceof EncodingError) return false;
    throw err;
  }
  return crypto.ed25519Verify(publicKey, input, sig);
}
