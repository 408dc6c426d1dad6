import type { CryptoProvider } from '../crypto/provider.ts';
import { utf8 } from '../encoding/bytes.ts';

/** The key derivations of PROTOCOL.md sections 5 and 6, byte for byte. */

export const INFO_X3DH = utf8('Talos_X3DH_X25519_SHA-256');
export const INFO_PQXDH = utf8('Talos_PQXDH_X25519_SHA-256_ML-KEM-768');
export const INFO_SESSION_ID = utf8('Talos_SessionId');
export const INFO_RATCHET = utf8('Talos_Ratchet');
export const INFO_MESSAGE_KEYS = utf8('Talos_MessageKeys');
export const ZERO_SALT = new Uint8Array(32);
const CK_MESSAGE = new Uint8Array([0x01]);
const CK_NEXT = new Uint8Array([0x02]);
const CK_INPUTS = [CK_MESSAGE, CK_NEXT] as const;

/** KDF_RK(rk, dh) = HKDF(salt = rk, ikm = dh, "Talos_Ratchet", 64) -> rk' || ck. */
export function kdfRk(crypto: CryptoProvider, rk: Uint8Array, dh: Uint8Array): { rk: Uint8Array; ck: Uint8Array } {
  const out = crypto.hkdfSha256(dh, rk, INFO_RATCHET, 64);
  // Copies, not subarrays: a slice of a small array stays on V8's heap, where a subarray would
  // make V8 move the whole output off the heap (a malloc per ratchet step).
  const next = { rk: out.slice(0, 32), ck: out.slice(32) };
  out.fill(0);
  return next;
}

/** KDF_CK(ck): mk = HMAC(ck, 0x01), ck' = HMAC(ck, 0x02). */
export function kdfCk(crypto: CryptoProvider, ck: Uint8Array): { mk: Uint8Array; ck: Uint8Array } {
  const [mk, next] = crypto.hmacSha256Each(ck, CK_INPUTS) as [Uint8Array, Uint8Array];
  return { mk, ck: next };
}

export const MESSAGE_KEY_BYTES = 32;
export const MESSAGE_KEYS_BYTES = 44;

/** Message keys: HKDF(salt = 0^32, ikm = mk, "Talos_MessageKeys", 44) -> key (32) || nonce (12). */
export function messageKeys(crypto: CryptoProvider, mk: Uint8Array): Uint8Array {
  return crypto.hkdfSha256(mk, ZERO_SALT, INFO_MESSAGE_KEYS, MESSAGE_KEYS_BYTES);
}
