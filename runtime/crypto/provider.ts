/**
 * One interface for every primitive Talos uses (PROTOCOL.md section 2). Two implementations:
 * `noble` (portable, the reference) and `node` (node:crypto / OpenSSL, the fast path).
 * Both give byte-identical results and identical accept/reject verdicts on every input.
 *
 * Conventions: keys and outputs are Uint8Array; a refusal throws CryptoError with a stable
 * code (never a message containing key bytes). Verification returns false instead of throwing.
 */

/** Fills a fresh buffer of `length` bytes. Injectable so simulations can run on a seed. */
export type RandomSource = (length: number) => Uint8Array;

export interface KeyPair {
  /** Ed25519: the 32-byte seed. X25519: the 32-byte scalar. */
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

export interface KemKeyPair {
  /** 64-byte seed d || z (FIPS 203); the only form Talos stores. */
  seed: Uint8Array;
  publicKey: Uint8Array; // 1184 bytes
}

export interface Encapsulation {
  cipherText: Uint8Array; // 1088 bytes
  sharedSecret: Uint8Array; // 32 bytes
}

export type ProviderName = 'noble' | 'node';

export interface CryptoProvider {
  readonly name: ProviderName;
  randomBytes(length: number): Uint8Array;

  /** Ed25519 (RFC 8032). Keys are 32-byte seeds; signing is deterministic. */
  ed25519KeyPair(seed?: Uint8Array): KeyPair;
  ed25519PublicKey(seed: Uint8Array): Uint8Array;
  ed25519Sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** Strict verification exactly as PROTOCOL.md section 2 (cofactorless, canonical, no small order). */
  ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  /** True when the key is a canonical encoding of a point that is not of small order. */
  ed25519IsValidPublicKey(publicKey: Uint8Array): boolean;

  /** X25519 (RFC 7748). */
  x25519KeyPair(secretKey?: Uint8Array): KeyPair;
  x25519PublicKey(secretKey: Uint8Array): Uint8Array;
  /** Throws CryptoError('x25519_low_order') when the shared secret is all zeros. */
  x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array;

  /** ChaCha20-Poly1305 (RFC 8439): 32-byte key, 12-byte nonce, 16-byte tag appended. */
  chachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array;
  /** Throws CryptoError('aead_auth_failed') when the tag does not verify. */
  chachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array;
  /** XChaCha20-Poly1305: 32-byte key, 24-byte nonce. */
  xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Uint8Array;
  xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Uint8Array;

  sha256(data: Uint8Array): Uint8Array;
  sha512(data: Uint8Array): Uint8Array;
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  /** hmacSha256(key, m) for each message, in order; a provider may share the key schedule. */
  hmacSha256Each(key: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[];
  hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array;

  /** ML-KEM-768 (FIPS 203). The secret side is always the 64-byte seed. */
  mlkemKeyPair(seed?: Uint8Array): KemKeyPair;
  /** Throws CryptoError('mlkem_bad_public_key') when the FIPS 203 modulus check fails. */
  mlkemEncapsulate(publicKey: Uint8Array, randomness?: Uint8Array): Encapsulation;
  mlkemDecapsulate(cipherText: Uint8Array, seed: Uint8Array): Uint8Array;
}

export interface ProviderOptions {
  /** Defaults to the operating system's CSPRNG. */
  random?: RandomSource;
}

/**
 * `base` with some of its methods replaced (wrappers that measure, remember or stand in): every
 * other method and property, and its prototype, are base's own.
 */
export function withMethods(base: CryptoProvider, replaced: Partial<CryptoProvider>): CryptoProvider {
  return Object.assign(Object.create(Object.getPrototypeOf(base) as object) as CryptoProvider, base, replaced);
}
