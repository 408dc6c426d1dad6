import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { randomBytes as osRandomBytes } from 'node:crypto';
import { CryptoError } from '../errors.ts';
import type { CryptoProvider, ProviderOptions, RandomSource } from './provider.ts';
import {
  checkAeadInputs,
  checkBytes,
  checkHkdfLength,
  checkLength,
  checkRandomLength,
  checkRandomOutput,
  edVerifyStrict,
  isAllZero,
} from './checks.ts';

/** The reference provider on @noble/*: portable and deterministic under a seeded random source. */
export function createNobleProvider(options: ProviderOptions = {}): CryptoProvider {
  const injected = options.random;
  const random: RandomSource = injected
    ? (n) => checkRandomOutput(injected(checkRandomLength(n)), n)
    : (n) => new Uint8Array(osRandomBytes(checkRandomLength(n)));

  const aead =
    (cipher: typeof chacha20poly1305, nonceLength: number) =>
    (open: boolean) =>
    (key: Uint8Array, nonce: Uint8Array, data: Uint8Array, aad?: Uint8Array): Uint8Array => {
      checkAeadInputs(key, nonce, nonceLength, data, aad, open);
      const c = cipher(key, nonce, aad);
      if (!open) return c.encrypt(data);
      if (data.length < 16) throw new CryptoError('aead_auth_failed', 'ciphertext shorter than its tag');
      try {
        return c.decrypt(data);
      } catch {
        throw new CryptoError('aead_auth_failed', 'authentication tag did not verify');
      }
    };
  const chacha = aead(chacha20poly1305, 12);
  const xchacha = aead(xchacha20poly1305, 24);

  const ed25519PublicKey = (seed: Uint8Array) => ed25519.getPublicKey(checkLength(seed, 32, 'ed25519_bad_seed'));
  const x25519PublicKey = (sk: Uint8Array) => x25519.getPublicKey(checkLength(sk, 32, 'x25519_bad_secret'));

  return {
    name: 'noble',
    randomBytes: (n) => random(n),

    ed25519KeyPair(seed = random(32)) {
      return { secretKey: seed, publicKey: ed25519PublicKey(seed) };
    },
    ed25519PublicKey,
    ed25519Sign: (seed, message) =>
      ed25519.sign(checkBytes(message, 'message'), checkLength(seed, 32, 'ed25519_bad_seed')),
    ed25519Verify: (publicKey, message, signature) =>
      edVerifyStrict(publicKey, message, signature, (m) => sha512(m)),
    ed25519IsValidPublicKey: (pk) => pk instanceof Uint8Array && edVerifyStrict.isValidKey(pk),

    x25519KeyPair(secretKey = random(32)) {
      return { secretKey, publicKey: x25519PublicKey(secretKey) };
    },
    x25519PublicKey,
    x25519(secretKey, publicKey) {
      checkLength(secretKey, 32, 'x25519_bad_secret');
      checkLength(publicKey, 32, 'x25519_bad_public');
      let shared: Uint8Array;
      try {
        shared = x25519.getSharedSecret(secretKey, publicKey);
      } catch {
        // noble throws on low-order inputs whose result is all zeros.
        throw new CryptoError('x25519_low_order', 'X25519 shared secret is all zeros');
      }
      if (isAllZero(shared)) throw new CryptoError('x25519_low_order', 'X25519 shared secret is all zeros');
      return shared;
    },

    chachaSeal: chacha(false),
    chachaOpen: chacha(true),
    xchachaSeal: xchacha(false),
    xchachaOpen: xchacha(true),

    sha256: (d) => sha256(checkBytes(d, 'hash input')),
    sha512: (d) => sha512(checkBytes(d, 'hash input')),
    hmacSha256: (k, d) => hmac(sha256, checkBytes(k, 'HMAC key'), checkBytes(d, 'HMAC data')),
    hmacSha256Each(k, messages) {
      const schedule = hmac.create(sha256, checkBytes(k, 'HMAC key'));
      return messages.map((d) => schedule.clone().update(checkBytes(d, 'HMAC data')).digest());
    },
    hkdfSha256(ikm, salt, info, length) {
      checkBytes(ikm, 'HKDF ikm');
      checkBytes(salt, 'HKDF salt');
      checkBytes(info, 'HKDF info');
      return hkdf(sha256, ikm, salt, info, checkHkdfLength(length));
    },

    mlkemKeyPair(seed = random(64)) {
      checkLength(seed, 64, 'mlkem_bad_seed');
      return { seed, publicKey: ml_kem768.keygen(seed).publicKey };
    },
    mlkemEncapsulate(publicKey, randomness = random(32)) {
      checkLength(publicKey, 1184, 'mlkem_bad_public_key');
      checkLength(randomness, 32, 'mlkem_bad_randomness');
      try {
        // noble runs the FIPS 203 section 7.2 modulus check (ByteEncode12(ByteDecode12(ek)) == ek).
        return ml_kem768.encapsulate(publicKey, randomness);
      } catch {
        throw new CryptoError('mlkem_bad_public_key', 'ML-KEM-768 public key fails the modulus check');
      }
    },
    mlkemDecapsulate(cipherText, seed) {
      checkLength(cipherText, 1088, 'mlkem_bad_ciphertext');
      checkLength(seed, 64, 'mlkem_bad_seed');
      // Decapsulation never fails on a well-sized ciphertext: a forged one yields the implicit
      // rejection secret J(z || c), which both providers compute identically.
      return ml_kem768.decapsulate(cipherText, ml_kem768.keygen(seed).secretKey);
    },
  };
}
