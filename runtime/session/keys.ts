import { sessionError } from './errors.ts';

/**
 * X25519 public keys taken from the wire must be canonical (PROTOCOL.md section 2): top bit
 * clear and u < p = 2^255 - 19, so each key has one encoding and replay detection by key bytes
 * cannot be dodged. Little-endian: u >= p only when bytes[31] = 0x7f, bytes[30..1] = 0xff and
 * bytes[0] >= 0xed.
 */
export function isCanonicalX25519(pub: Uint8Array): boolean {
  if (pub.length !== 32) return false;
  if (pub[31]! & 0x80) return false;
  if (pub[31] !== 0x7f || pub[0]! < 0xed) return true;
  for (let i = 1; i < 31; i++) if (pub[i] !== 0xff) return true;
  return false;
}

export function requireCanonicalX25519(pub: Uint8Array, what: string): Uint8Array {
  if (!isCanonicalX25519(pub)) throw sessionError('bad_public_key', `${what} is not a canonical X25519 public key`);
  return pub;
}
