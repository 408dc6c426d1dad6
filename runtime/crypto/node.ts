import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hash,
  randomFillSync,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from '../errors.ts';
import { toB64u } from '../encoding/base64url.ts';
import { asBuffer, bytesEqual } from '../encoding/bytes.ts';
import type { CryptoProvider, ProviderOptions, RandomSource } from './provider.ts';
import {
  checkAeadInputs,
  checkBytes,
  checkHkdfLength,
  checkLength,
  checkRandomLength,
  checkRandomOutput,
  ed25519VerifyShapeOk,
  isAllZero,
} from './checks.ts';
import { isValidEd25519PublicKey, passesEd25519KeyByteChecks } from './ed25519-points.ts';
import { hchacha20 } from './hchacha20.ts';
import { LruCache } from './lru.ts';
import { nativeAead } from './native-aead.ts';
import { nativeEd25519 } from './native-ed25519.ts';
import { nativeKdf } from './native-kdf.ts';
import { nativeX25519 } from './native-x25519.ts';
import {
  hkdfSha256Small,
  hmacSha256Small,
  hmacSha256SmallEach,
  SMALL_HKDF_MAX_INPUT_BYTES,
  SMALL_HMAC_MAX_DATA_BYTES,
  SMALL_HMAC_MAX_KEY_BYTES,
} from './sha256-small.ts';
import { createNobleProvider } from './noble.ts';
import { takePooledX25519Pair } from './x25519-pool.ts';
import { wipingPoolAllocations } from './buffer-pool.mjs';

/**
 * The accelerated provider on node:crypto (OpenSSL). Same inputs, same bytes and same verdicts
 * as the noble provider; the tests hold both to the same vectors and to each other.
 */

// Raw 32-byte keys enter OpenSSL as JWK (RFC 8037 OKP): Node builds them with
// EVP_PKEY_new_raw_*_key, about ten times faster than parsing PKCS#8/SPKI DER through the
// OpenSSL 3.0 decoder framework (measured: ~1 ms per DER private key under load). For a
// private key Node reads only `d`; `x` must be present as a string, so it is left empty.
// (The secret passes through a short-lived base64url string, as it would through DER bytes;
// the Buffers it passes through on either side of that string are wiped, see okpPrivateKey.)
type OkpCurve = 'Ed25519' | 'X25519';

/**
 * How many distinct public keys each cache remembers. A gateway verifies a few issuer keys
 * many times; 1024 covers that with room, and bounds memory (about 1 KiB per entry) against
 * a peer that sends a new key on every request.
 */
export const PUBLIC_KEY_CACHE_SIZE = 1024;

/**
 * X25519 public keys repeat only briefly: a peer's ratchet key serves the two DH of one ratchet
 * step, an ephemeral key the DH of one handshake, a signed prekey the handshakes of a few
 * minutes. A large cache would only keep each used-up key (and its OpenSSL key) alive long
 * enough to be promoted to V8's old generation, where it is more work to collect.
 */
export const X25519_PUBLIC_KEY_CACHE_SIZE = 16;

const AEAD_TAG_LENGTH = 16;
const NO_AAD = new Uint8Array(0);
const authFailed = () => new CryptoError('aead_auth_failed', 'authentication tag did not verify');

/**
 * Where a secret is encoded to base64url. toB64u would copy a small array into Node's shared
 * Buffer pool (Buffer.from), where the copy stays until that memory is handed out again; a view
 * of the caller's array would move it off V8's heap (a malloc per key). This Buffer.alloc is
 * outside the pool, allocated once, and wiped after every use.
 */
const secretScratch = Buffer.alloc(32);

/** `raw`: a 32-byte secret (its length checked by the callers). */
function okpPrivateKey(crv: OkpCurve, raw: Uint8Array): KeyObject {
  secretScratch.set(raw);
  let d: string;
  try {
    d = secretScratch.toString('base64url');
  } finally {
    secretScratch.fill(0);
  }
  // Node's JWK import leaves its own decoded copy of `d` in the Buffer pool: wiped (buffer-pool.mjs).
  return wipingPoolAllocations(() => createPrivateKey({ key: { kty: 'OKP', crv, d, x: '' }, format: 'jwk' }));
}

function okpPublicKey(crv: OkpCurve, raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv, x: toB64u(raw) }, format: 'jwk' });
}

/** A plain Uint8Array copy, so callers never hold a view into Node's shared Buffer pool. */
function plain(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer);
}

/**
 * The same bytes as a plain Uint8Array, without a copy when the Buffer owns its whole memory
 * (as the output of a cipher's update() does: it is never a slice of the shared pool).
 */
function owned(buffer: Buffer): Uint8Array {
  if (buffer.byteOffset === 0 && buffer.buffer.byteLength === buffer.byteLength) return new Uint8Array(buffer.buffer, 0, buffer.byteLength);
  return plain(buffer);
}

/**
 * A digest through node:crypto's one-shot hash(): no native Hash object for the garbage
 * collector to process, and no off-heap digest Buffer. The digest comes back as a binary
 * (latin1) string, one character per byte, copied into an array that stays on V8's heap.
 * Measured on 65 bytes: ~0.3 us of CPU against ~1.4 us through createHash().
 */
function oneShotDigest(algorithm: 'sha256' | 'sha512', data: Uint8Array, length: number): Uint8Array {
  const digest = hash(algorithm, data, 'binary');
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = digest.charCodeAt(i);
  return out;
}

function cacheKey(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('latin1');
}

/**
 * Private KeyObjects (or, on the native Ed25519 path, public keys) remembered per caller-owned
 * secret array. Importing a raw private key costs OpenSSL a scalar multiplication (it derives
 * the public key), as much as the operation itself; an agent signs with one identity seed, and
 * a responder runs X25519 with one prekey secret, many times. A WeakMap keyed by the array
 * object holds no secret beyond that array's own lifetime: once the caller drops the array, the
 * entry is collectable with it. The stored copy detects an array changed in place (for example
 * wiped), which then gets a fresh entry.
 */
class PrivateKeyMemo<K = KeyObject> {
  readonly #memo = new WeakMap<Uint8Array, { copy: Uint8Array; key: K }>();
  readonly #make: (secret: Uint8Array) => K;

  constructor(make: (secret: Uint8Array) => K) {
    this.#make = make;
  }

  get(secret: Uint8Array): K {
    const hit = this.#memo.get(secret);
    if (hit !== undefined && bytesEqual(hit.copy, secret)) return hit.key;
    const key = this.#make(secret);
    this.#memo.set(secret, { copy: secret.slice(), key });
    return key;
  }

  /** Records an entry already made for `secret` (a KeyObject by the key pair pool). */
  remember(secret: Uint8Array, key: K): void {
    this.#memo.set(secret, { copy: secret.slice(), key });
  }
}

export function createNodeProvider(options: ProviderOptions = {}): CryptoProvider {
  const injected = options.random;
  const random: RandomSource = injected
    ? (n) => checkRandomOutput(injected(checkRandomLength(n)), n)
    : (n) => randomFillSync(new Uint8Array(checkRandomLength(n)));

  // ML-KEM: Node 20 bundles OpenSSL 3.0, which has no ML-KEM (OpenSSL 3.5 added it, and only
  // later Node lines built on it expose it in node:crypto). The node provider therefore delegates ML-KEM to
  // the noble implementation, fed by this provider's own random source, so a seeded source
  // still makes the whole provider deterministic.
  const kem = createNobleProvider({ random });

  // Cached verdicts for public keys: the KeyObject when the key passes the byte-level pre-check
  // (canonical y, no negative zero, not of small order), null when it does not. Keyed by the
  // key bytes.
  const edPublicKeys = new LruCache<string, KeyObject | null>(PUBLIC_KEY_CACHE_SIZE);
  const xPublicKeys = new LruCache<string, KeyObject>(X25519_PUBLIC_KEY_CACHE_SIZE);

  const edPrivateKeys = new PrivateKeyMemo((seed) => okpPrivateKey('Ed25519', seed));
  const xPrivateKeys = new PrivateKeyMemo((secret) => okpPrivateKey('X25519', secret));
  const edPrivateKey = (seed: Uint8Array) => edPrivateKeys.get(checkLength(seed, 32, 'ed25519_bad_seed'));
  const xPrivateKey = (secret: Uint8Array) => xPrivateKeys.get(checkLength(secret, 32, 'x25519_bad_secret'));

  // The private key's own JWK carries the public `x`: measured ~1.5 µs of CPU against ~3 µs
  // for deriving a public KeyObject first (every fresh ratchet key pays this). Its `d` is a
  // short-lived base64url string of the secret, as on the way in (okpPrivateKey).
  const rawPublic = (privateKey: KeyObject): Uint8Array => {
    const jwk = privateKey.export({ format: 'jwk' });
    return new Uint8Array(Buffer.from(jwk.x ?? '', 'base64url'));
  };

  // Ed25519 keys and signatures on OpenSSL's own functions where the addon found them
  // (native-ed25519.ts), else node:crypto's. Signing needs the seed's public key: it is
  // remembered per seed array as a KeyObject is.
  const edPublicKeysOfSeeds = nativeEd25519 && new PrivateKeyMemo(nativeEd25519.publicKey);
  const edPublicOfSeed = (seed: Uint8Array): Uint8Array =>
    edPublicKeysOfSeeds ? edPublicKeysOfSeeds.get(checkLength(seed, 32, 'ed25519_bad_seed')) : rawPublic(edPrivateKey(seed));

  function edPublicKeyObject(publicKey: Uint8Array): KeyObject | null {
    const id = cacheKey(publicKey);
    let entry = edPublicKeys.get(id);
    if (entry === undefined) {
      // OpenSSL accepts non-canonical and small-order keys, so those are refused first. A key
      // that passes and is not a curve point fails OpenSSL's own decoding at verification.
      entry = passesEd25519KeyByteChecks(publicKey)
        ? okpPublicKey('Ed25519', publicKey)
        : null;
      edPublicKeys.set(id, entry);
    }
    return entry;
  }

  function xPublicKeyObject(publicKey: Uint8Array): KeyObject {
    const id = cacheKey(publicKey);
    let entry = xPublicKeys.get(id);
    if (entry === undefined) {
      // OpenSSL masks the top bit and reduces u mod p exactly as RFC 7748 asks, like noble.
      entry = okpPublicKey('X25519', publicKey);
      xPublicKeys.set(id, entry);
    }
    return entry;
  }

  // X25519 on OpenSSL's own functions where the addon found them (native-x25519.ts), else
  // through node:crypto's key objects.
  function x25519PublicKey(secretKey: Uint8Array): Uint8Array {
    checkLength(secretKey, 32, 'x25519_bad_secret');
    return nativeX25519 !== undefined ? nativeX25519.publicKey(secretKey) : rawPublic(xPrivateKey(secretKey));
  }

  /** undefined when the shared secret is all zeros (a low-order public key). */
  function x25519SharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
    if (nativeX25519 !== undefined) return nativeX25519.sharedSecret(secretKey, publicKey);
    let shared: Uint8Array;
    try {
      shared = plain(diffieHellman({ privateKey: xPrivateKey(secretKey), publicKey: xPublicKeyObject(publicKey) }));
    } catch {
      return undefined; // OpenSSL refuses to return the all-zero result of a low-order public key
    }
    return isAllZero(shared) ? undefined : shared;
  }

  // ChaCha20-Poly1305 on OpenSSL's cipher where the addon found it (native-aead.ts), else
  // through node:crypto's cipher objects.
  function seal(key: Uint8Array, nonce12: Uint8Array, plaintext: Uint8Array, aad: Uint8Array | undefined): Uint8Array {
    if (nativeAead !== undefined) return nativeAead.seal(key, nonce12, plaintext, aad ?? NO_AAD);
    const cipher = createCipheriv('chacha20-poly1305', key, nonce12, { authTagLength: AEAD_TAG_LENGTH });
    if (aad !== undefined && aad.length > 0) cipher.setAAD(aad, { plaintextLength: plaintext.length });
    const body = cipher.update(plaintext);
    const tail = cipher.final();
    const out = new Uint8Array(body.length + tail.length + AEAD_TAG_LENGTH);
    out.set(body, 0);
    out.set(tail, body.length);
    out.set(cipher.getAuthTag(), body.length + tail.length);
    return out;
  }

  function open(key: Uint8Array, nonce12: Uint8Array, sealed: Uint8Array, aad: Uint8Array | undefined): Uint8Array {
    if (sealed.length < AEAD_TAG_LENGTH) throw new CryptoError('aead_auth_failed', 'ciphertext shorter than its tag');
    if (nativeAead !== undefined) {
      const text = nativeAead.open(key, nonce12, sealed, aad ?? NO_AAD);
      if (text === undefined) throw authFailed();
      return text;
    }
    const textLength = sealed.length - AEAD_TAG_LENGTH;
    const decipher = createDecipheriv('chacha20-poly1305', key, nonce12, { authTagLength: AEAD_TAG_LENGTH });
    decipher.setAuthTag(sealed.subarray(textLength));
    if (aad !== undefined && aad.length > 0) decipher.setAAD(aad, { plaintextLength: textLength });
    const body = decipher.update(sealed.subarray(0, textLength));
    try {
      // final() checks the tag; the plaintext from update() is released only when it passes.
      const tail = decipher.final();
      return tail.length === 0 ? owned(body) : plain(Buffer.concat([body, tail]));
    } catch {
      body.fill(0);
      throw authFailed();
    }
  }

  // XChaCha20-Poly1305 = ChaCha20-Poly1305 under HChaCha20(key, nonce[0..16]) with the 12-byte
  // nonce 0x00000000 || nonce[16..24] (draft-irtf-cfrg-xchacha section 2.3). The subkey is a
  // secret like the key: wiped once used, whether or not the AEAD succeeded.
  function underSubkey<T>(key: Uint8Array, nonce: Uint8Array, aead: (subkey: Uint8Array, nonce12: Uint8Array) => T): T {
    const nonce12 = new Uint8Array(12);
    nonce12.set(nonce.subarray(16, 24), 4);
    const subkey = hchacha20(key, nonce.subarray(0, 16));
    try {
      return aead(subkey, nonce12);
    } finally {
      subkey.fill(0);
    }
  }

  const hmacSha256 = (key: Uint8Array, data: Uint8Array): Uint8Array => {
    checkBytes(key, 'HMAC key');
    checkBytes(data, 'HMAC data');
    // Short inputs (the ratchet's KDF_CK): the native KDF when built, else JavaScript; either
    // costs less than node:crypto's objects.
    const native = nativeKdf?.hmacEach(key, [data]);
    if (native) return native[0]!;
    if (key.length <= SMALL_HMAC_MAX_KEY_BYTES && data.length <= SMALL_HMAC_MAX_DATA_BYTES) return hmacSha256Small(key, data);
    return plain(createHmac('sha256', key).update(data).digest());
  };

  const hmacSha256Each = (key: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[] => {
    checkBytes(key, 'HMAC key');
    let small = key.length <= SMALL_HMAC_MAX_KEY_BYTES;
    for (const data of messages) small = checkBytes(data, 'HMAC data').length <= SMALL_HMAC_MAX_DATA_BYTES && small;
    const native = nativeKdf?.hmacEach(key, messages);
    if (native) return native;
    return small ? hmacSha256SmallEach(key, messages) : messages.map((data) => hmacSha256(key, data));
  };

  return {
    name: 'node',
    randomBytes: (n) => random(n),

    ed25519KeyPair(seed) {
      const secretKey = seed ?? random(32);
      return { secretKey, publicKey: edPublicOfSeed(secretKey).slice() };
    },
    ed25519PublicKey: (seed) => edPublicOfSeed(seed).slice(),
    ed25519Sign(seed, message) {
      checkBytes(message, 'message');
      if (nativeEd25519 !== undefined) return nativeEd25519.sign(seed, edPublicOfSeed(seed), message);
      return plain(nodeSign(null, message, edPrivateKey(seed)));
    },
    ed25519Verify(publicKey, message, signature) {
      if (!ed25519VerifyShapeOk(publicKey, message, signature)) return false;
      const key = edPublicKeyObject(publicKey);
      if (key === null) return false;
      // OpenSSL checks S < L and the cofactorless equation by recomputing R and comparing its
      // canonical encoding with the signature's R bytes, so a non-canonical R never verifies.
      try {
        return nodeVerify(null, message, key, signature);
      } catch {
        return false; // a verdict, never an exception (provider.ts)
      }
    },
    ed25519IsValidPublicKey: (publicKey) => publicKey instanceof Uint8Array && isValidEd25519PublicKey(publicKey),

    x25519KeyPair(secret) {
      // A fresh pair from the background pool when our source is the OS's (x25519-pool.ts).
      const pooled = secret === undefined && injected === undefined ? takePooledX25519Pair() : undefined;
      if (pooled !== undefined) {
        if (nativeX25519 === undefined && pooled.key !== undefined) xPrivateKeys.remember(pooled.secretKey, pooled.key);
        return { secretKey: pooled.secretKey, publicKey: pooled.publicKey };
      }
      const secretKey = secret ?? random(32);
      return { secretKey, publicKey: x25519PublicKey(secretKey) };
    },
    x25519PublicKey,
    x25519(secretKey, publicKey) {
      checkLength(secretKey, 32, 'x25519_bad_secret');
      checkLength(publicKey, 32, 'x25519_bad_public');
      const shared = x25519SharedSecret(secretKey, publicKey);
      if (shared === undefined) throw new CryptoError('x25519_low_order', 'X25519 shared secret is all zeros');
      return shared;
    },

    chachaSeal(key, nonce, plaintext, aad) {
      checkAeadInputs(key, nonce, 12, plaintext, aad, false);
      return seal(key, nonce, plaintext, aad);
    },
    chachaOpen(key, nonce, sealed, aad) {
      checkAeadInputs(key, nonce, 12, sealed, aad, true);
      return open(key, nonce, sealed, aad);
    },
    xchachaSeal(key, nonce, plaintext, aad) {
      checkAeadInputs(key, nonce, 24, plaintext, aad, false);
      return underSubkey(key, nonce, (subkey, nonce12) => seal(subkey, nonce12, plaintext, aad));
    },
    xchachaOpen(key, nonce, sealed, aad) {
      checkAeadInputs(key, nonce, 24, sealed, aad, true);
      return underSubkey(key, nonce, (subkey, nonce12) => open(subkey, nonce12, sealed, aad));
    },

    sha256: (data) => oneShotDigest('sha256', checkBytes(data, 'hash input'), 32),
    sha512: (data) => oneShotDigest('sha512', checkBytes(data, 'hash input'), 64),
    hmacSha256,
    hmacSha256Each,
    hkdfSha256(ikm, salt, info, length) {
      // RFC 5869 written out with HMAC: crypto.hkdfSync caps info at 1024 bytes, which the
      // noble provider does not, and both providers must accept the same inputs (it is also
      // slower: ~11 µs of CPU for 44 bytes, measured, against ~4.5 µs for the JavaScript path).
      checkBytes(ikm, 'HKDF ikm');
      checkBytes(salt, 'HKDF salt');
      checkBytes(info, 'HKDF info');
      checkHkdfLength(length);
      // Short inputs (every key derivation of the protocol) cost less in JavaScript, where all
      // output blocks share one HMAC key schedule, than three or more calls into OpenSSL.
      const native = nativeKdf?.hkdf(ikm, salt, info, length);
      if (native) return native;
      if (ikm.length + salt.length + info.length <= SMALL_HKDF_MAX_INPUT_BYTES) return hkdfSha256Small(ikm, salt, info, length);
      const prk = hmacSha256(salt.length === 0 ? new Uint8Array(32) : salt, ikm);
      const okm = new Uint8Array(length);
      let previous: Uint8Array = new Uint8Array(0);
      for (let filled = 0, counter = 1; filled < length; counter++) {
        const mac = createHmac('sha256', prk);
        mac.update(previous).update(info).update(Uint8Array.of(counter));
        previous = plain(mac.digest());
        okm.set(previous.subarray(0, Math.min(32, length - filled)), filled);
        filled += 32;
      }
      prk.fill(0);
      return okm;
    },

    mlkemKeyPair: (seed) => kem.mlkemKeyPair(seed),
    mlkemEncapsulate: (publicKey, randomness) => kem.mlkemEncapsulate(publicKey, randomness),
    mlkemDecapsulate: (cipherText, seed) => kem.mlkemDecapsulate(cipherText, seed),
  };
}
