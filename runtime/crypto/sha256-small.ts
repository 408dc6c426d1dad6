/**
 * SHA-256 (FIPS 180-4), HMAC (RFC 2104) and HKDF (RFC 5869) in plain JavaScript, for SHORT
 * inputs only. Why this exists in the node provider: a ratchet message needs five HMACs of a
 * few dozen bytes each, and through node:crypto every one pays a fixed cost of crossing into
 * C++ and building an HMAC context (about 2.3 µs of CPU, measured) while the hashing itself is
 * ~40 ns per block there. Here a 64-byte block costs ~0.14 µs (sha256-compress.gen.ts), HKDF
 * reuses one HMAC key schedule (the ipad/opad states) for all its output blocks, and the
 * schedule of the all-zero salt is computed once.
 *
 * Everything between compressions stays in 32-bit words: input bytes go straight into the
 * block's words, a key schedule is built by XORing key words, and a digest that feeds the next
 * hash (HMAC's inner digest, HKDF's PRK and T(i)) is passed on as words, never as bytes.
 * Longer inputs take the native path (limits below).
 *
 * Not constant-time concerns: SHA-256 is additions, rotations and XORs only (no table lookups
 * indexed by data), so this code has no secret-dependent memory access or branches.
 * Scratch state is module-level (JavaScript runs one call at a time) and wiped after each call.
 */
import { compressWords } from './sha256-compress.gen.ts';

/**
 * Where the JavaScript path is used (crossovers measured against node:crypto, CPU time, Node 20):
 * HMAC when the key fits one block and the data is at most one block (beyond, node:crypto's
 * per-block speed wins); HKDF while ikm + salt + info total at most 512 bytes (at 1 KiB of ikm
 * node:crypto is already ~30% faster; at 128 bytes JavaScript is ~40% faster).
 */
export const SMALL_HMAC_MAX_KEY_BYTES = 64;
export const SMALL_HMAC_MAX_DATA_BYTES = 64;
export const SMALL_HKDF_MAX_INPUT_BYTES = 512;

const BLOCK = 64;
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
const IPAD = 0x36363636;
const OPAD = 0x5c5c5c5c;

/**
 * The block being filled, as 16 big-endian words. Bytes are ORed in, so it is all zeros between
 * blocks; the key schedule and HMAC's outer hash borrow it then, and leave it zeroed.
 */
const W = new Int32Array(16);

// Plain loops rather than TypedArray set()/fill(): on arrays of 8 or 16 words each builtin call
// costs more than the copy itself, and a message's key derivations make dozens of them.
function copyWords(to: Int32Array, from: Int32Array, count: number, at = 0): void {
  for (let i = 0; i < count; i++) to[at + i] = from[i]!;
}

function zeroWords(words: Int32Array): void {
  for (let i = 0; i < words.length; i++) words[i] = 0;
}

/** One running hash: chaining state and bytes absorbed, the partial block in W. Never shared across calls. */
class Hasher {
  readonly s = new Int32Array(8);
  fill = 0;
  length = 0;

  /** Starts from a saved chaining state that has absorbed `absorbed` bytes (whole blocks). */
  start(from: Int32Array, absorbed: number): this {
    copyWords(this.s, from, 8);
    this.fill = 0;
    this.length = absorbed;
    return this;
  }

  byte(value: number): this {
    const fill = this.fill;
    W[fill >> 2]! |= value << (24 - ((fill & 3) << 3));
    this.length += 1;
    if (fill === BLOCK - 1) this.compress();
    else this.fill = fill + 1;
    return this;
  }

  update(data: Uint8Array): this {
    const n = data.length;
    let i = 0;
    while (i < n && (this.fill & 3) !== 0) this.byte(data[i++]!);
    // Word-aligned: four bytes at a time.
    for (; n - i >= 4; i += 4) {
      W[this.fill >> 2] = (data[i]! << 24) | (data[i + 1]! << 16) | (data[i + 2]! << 8) | data[i + 3]!;
      this.length += 4;
      if (this.fill === BLOCK - 4) this.compress();
      else this.fill += 4;
    }
    while (i < n) this.byte(data[i++]!);
    return this;
  }

  /** Absorbs a 32-byte digest held as words: HKDF's T(i-1), which always opens a block (right after start). */
  digestWords(from: Int32Array): this {
    copyWords(W, from, 8);
    this.fill = 32;
    this.length += 32;
    return this;
  }

  /** Pads and compresses the last block(s): the digest is left in the chaining state. */
  finish(): void {
    const bits = this.length * 8;
    this.byte(0x80);
    if (this.fill > BLOCK - 8) this.compress();
    // Bit length as a 64-bit big-endian integer; our inputs are far below 2^32 bits.
    W[14] = Math.floor(bits / 0x100000000);
    W[15] = bits;
    this.compress();
  }

  private compress(): void {
    compressWords(this.s, W);
    zeroWords(W);
    this.fill = 0;
  }

  wipe(): void {
    zeroWords(this.s);
    zeroWords(W);
    this.fill = 0;
    this.length = 0;
  }
}

function writeState(s: Int32Array, out: Uint8Array, off: number, count = 32): void {
  for (let i = 0; i < count; i++) out[off + i] = s[i >> 2]! >>> (24 - ((i & 3) << 3));
}

const hasher = new Hasher();

/** HMAC key schedule: the chaining states after the ipad and opad blocks. */
interface Pads {
  readonly inner: Int32Array;
  readonly outer: Int32Array;
}

const newPads = (): Pads => ({ inner: new Int32Array(8), outer: new Int32Array(8) });

/** The key's block (RFC 2104: zero-padded, or its digest when longer than a block), as words. */
const keyWords = new Int32Array(16);

/** Computes the ipad and opad states of the key block held in keyWords, then wipes it. */
function padsFromKeyWords(pads: Pads): Pads {
  for (let i = 0; i < 16; i++) W[i] = keyWords[i]! ^ IPAD;
  copyWords(pads.inner, IV, 8);
  compressWords(pads.inner, W);
  for (let i = 0; i < 16; i++) W[i] = keyWords[i]! ^ OPAD;
  copyWords(pads.outer, IV, 8);
  compressWords(pads.outer, W);
  zeroWords(W);
  zeroWords(keyWords);
  return pads;
}

function padsInto(key: Uint8Array, pads: Pads): Pads {
  if (key.length > BLOCK) {
    hasher.start(IV, 0).update(key).finish();
    copyWords(keyWords, hasher.s, 8);
  } else {
    for (let i = 0; i < key.length; i++) keyWords[i >> 2]! |= key[i]! << (24 - ((i & 3) << 3));
  }
  return padsFromKeyWords(pads);
}

/**
 * HMAC keys of at most one block that are all zeros (including the empty key) pad to the same
 * block, so they share one schedule. HKDF's default salt is such a key: computed once (public).
 */
const ZERO_KEY_PADS = padsInto(new Uint8Array(0), newPads());

function isZeroShortKey(key: Uint8Array): boolean {
  if (key.length > BLOCK) return false;
  let acc = 0;
  for (let i = 0; i < key.length; i++) acc |= key[i]!;
  return acc === 0;
}

/**
 * Finishes HMAC: the hasher holds the inner hash after the message; leaves the MAC in its
 * chaining state. The outer hash is one block: the 32-byte inner digest, then the padding of
 * a 96-byte message (opad block + digest).
 */
function finishMac(pads: Pads): Int32Array {
  hasher.finish();
  copyWords(W, hasher.s, 8);
  W[8] = 0x80000000 | 0;
  W[15] = (BLOCK + 32) * 8;
  copyWords(hasher.s, pads.outer, 8);
  compressWords(hasher.s, W);
  zeroWords(W);
  return hasher.s;
}

const scratchPads = newPads();

function macOf(pads: Pads, data: Uint8Array): Uint8Array {
  hasher.start(pads.inner, BLOCK).update(data);
  const out = new Uint8Array(32);
  writeState(finishMac(pads), out, 0);
  return out;
}

export function hmacSha256Small(key: Uint8Array, data: Uint8Array): Uint8Array {
  const out = macOf(isZeroShortKey(key) ? ZERO_KEY_PADS : padsInto(key, scratchPads), data);
  wipeScratch();
  return out;
}

/**
 * HMAC of each message under one key, the key schedule computed once: KDF_CK's two HMACs
 * (inputs 0x01 and 0x02 under the chain key) cost 6 compressions instead of 8.
 */
export function hmacSha256SmallEach(key: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[] {
  const pads = isZeroShortKey(key) ? ZERO_KEY_PADS : padsInto(key, scratchPads);
  const macs = messages.map((data) => macOf(pads, data));
  wipeScratch();
  return macs;
}

/** T(i) of HKDF-Expand, kept as words for the next block. */
const previous = new Int32Array(8);

/** HKDF-SHA-256 (RFC 5869); the caller has checked the input types and 1 <= length <= 255 * 32. */
export function hkdfSha256Small(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  // Extract: PRK = HMAC(salt, IKM); an empty salt means 32 zero bytes, which pads the same.
  const saltPads = isZeroShortKey(salt) ? ZERO_KEY_PADS : padsInto(salt, scratchPads);
  hasher.start(saltPads.inner, BLOCK).update(ikm);
  copyWords(keyWords, finishMac(saltPads), 8);
  // Expand: T(i) = HMAC(PRK, T(i-1) || info || i), all under one key schedule.
  const prkPads = padsFromKeyWords(scratchPads);
  const okm = new Uint8Array(length);
  for (let filled = 0, counter = 1; filled < length; counter++, filled += 32) {
    hasher.start(prkPads.inner, BLOCK);
    if (counter > 1) hasher.digestWords(previous);
    hasher.update(info).byte(counter);
    copyWords(previous, finishMac(prkPads), 8);
    writeState(previous, okm, filled, Math.min(32, length - filled));
  }
  zeroWords(previous);
  wipeScratch();
  return okm;
}

function wipeScratch(): void {
  hasher.wipe();
  zeroWords(scratchPads.inner);
  zeroWords(scratchPads.outer);
}
