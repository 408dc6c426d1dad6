/**
 * SHA-256 (FIPS 180-4), HMAC (RFC 2104) and HKDF (RFC 5869) in plain JavaScript, for SHORT
 * inputs only. Why this exists in the node provider: a ratchet message needs five HMACs of a
 * few dozen bytes each, and through node:crypto every one pays a fixed cost of crossing into
 * C++ and building an HMAC context (about 2.3 µs of CPU, measured) while the hashing itself is
 * ~40 ns per block there. Here a 64-byte block costs ~0.34 µs, and HKDF reuses one HMAC key
 * schedule (the ipad/opad states) for all its output blocks, and the schedule of the all-zero
 * salt is computed once. Longer inputs take the native path (limits below).
 *
 * Not constant-time concerns: SHA-256 is additions, rotations and XORs only (no table lookups
 * indexed by data), so this code has no secret-dependent memory access or branches.
 * Scratch state is module-level (JavaScript runs one call at a time) and wiped after each call.
 */

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

const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);

const W = new Int32Array(64);

function compress(s: Int32Array, block: Uint8Array, off: number): void {
  for (let i = 0; i < 16; i++, off += 4) {
    W[i] = (block[off]! << 24) | (block[off + 1]! << 16) | (block[off + 2]! << 8) | block[off + 3]!;
  }
  rounds(s);
}

/**
 * HMAC's outer hash is always one block: the 32-byte inner digest, then the padding of a
 * 96-byte message (opad block + digest). It is loaded as words, straight from the inner state.
 */
const OUTER_MESSAGE_BITS = (BLOCK + 32) * 8;

function compressOuter(s: Int32Array, outer: Int32Array): void {
  for (let i = 0; i < 8; i++) W[i] = s[i]!;
  W[8] = 0x80000000 | 0;
  for (let i = 9; i < 15; i++) W[i] = 0;
  W[15] = OUTER_MESSAGE_BITS;
  s.set(outer);
  rounds(s);
}

/**
 * The 64 rounds over W[0..15], extending the message schedule as they go, added into the
 * chaining state. Ch and Maj in their three-operation forms: g ^ (e & (f ^ g)) and
 * (a & b) | (c & (a | b)).
 */
function rounds(s: Int32Array): void {
  let a = s[0]!, b = s[1]!, c = s[2]!, d = s[3]!, e = s[4]!, f = s[5]!, g = s[6]!, h = s[7]!;
  for (let i = 0; i < 64; i++) {
    let w: number;
    if (i < 16) {
      w = W[i]!;
    } else {
      const w15 = W[i - 15]!;
      const w2 = W[i - 2]!;
      const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
      const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
      w = W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
    }
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + (g ^ (e & (f ^ g))) + K[i]! + w) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) | (c & (a | b)))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  s[0] = (s[0]! + a) | 0;
  s[1] = (s[1]! + b) | 0;
  s[2] = (s[2]! + c) | 0;
  s[3] = (s[3]! + d) | 0;
  s[4] = (s[4]! + e) | 0;
  s[5] = (s[5]! + f) | 0;
  s[6] = (s[6]! + g) | 0;
  s[7] = (s[7]! + h) | 0;
}

/** One running hash: chaining state, partial block, bytes absorbed. Reused, never shared across calls. */
class Hasher {
  readonly s = new Int32Array(8);
  readonly buf = new Uint8Array(BLOCK);
  fill = 0;
  length = 0;

  /** Starts from a saved chaining state that has absorbed `absorbed` bytes (whole blocks). */
  start(from: Int32Array, absorbed: number): this {
    this.s.set(from);
    this.fill = 0;
    this.length = absorbed;
    return this;
  }

  update(data: Uint8Array): this {
    let off = 0;
    const n = data.length;
    this.length += n;
    if (this.fill > 0) {
      off = this.take(data, 0, Math.min(BLOCK - this.fill, n));
      if (this.fill < BLOCK) return this;
      compress(this.s, this.buf, 0);
      this.fill = 0;
    }
    for (; n - off >= BLOCK; off += BLOCK) compress(this.s, data, off);
    if (off < n) this.take(data, off, n - off);
    return this;
  }

  /**
   * Appends data[from, from + count) to the partial block, byte by byte: a subarray of a small
   * input would make V8 move that input off its heap (a malloc per call).
   */
  private take(data: Uint8Array, from: number, count: number): number {
    const buf = this.buf;
    for (let i = 0; i < count; i++) buf[this.fill + i] = data[from + i]!;
    this.fill += count;
    return from + count;
  }

  byte(value: number): this {
    this.buf[this.fill++] = value;
    this.length += 1;
    if (this.fill === BLOCK) {
      compress(this.s, this.buf, 0);
      this.fill = 0;
    }
    return this;
  }

  /** Pads, writes the 32-byte digest at out[off..], and wipes the partial block. */
  digestInto(out: Uint8Array, off: number): void {
    this.finish();
    writeState(this.s, out, off);
  }

  /** Pads and compresses the last block(s): the digest is left in the chaining state. */
  finish(): void {
    const buf = this.buf;
    buf[this.fill] = 0x80;
    buf.fill(0, this.fill + 1);
    if (this.fill + 1 > BLOCK - 8) {
      compress(this.s, buf, 0);
      buf.fill(0);
    }
    // Bit length as a 64-bit big-endian integer; our inputs are far below 2^32 bits.
    const bits = this.length * 8;
    const high = Math.floor(bits / 0x100000000);
    buf[56] = high >>> 24;
    buf[57] = high >>> 16;
    buf[58] = high >>> 8;
    buf[59] = high;
    buf[60] = bits >>> 24;
    buf[61] = bits >>> 16;
    buf[62] = bits >>> 8;
    buf[63] = bits;
    compress(this.s, buf, 0);
    buf.fill(0);
    this.fill = 0;
  }

  wipe(): void {
    this.s.fill(0);
    this.buf.fill(0);
    this.fill = 0;
    this.length = 0;
  }
}

function writeState(s: Int32Array, out: Uint8Array, off: number): void {
  for (let i = 0; i < 8; i++, off += 4) {
    const w = s[i]!;
    out[off] = w >>> 24;
    out[off + 1] = w >>> 16;
    out[off + 2] = w >>> 8;
    out[off + 3] = w;
  }
}

const hasher = new Hasher();

/** HMAC key schedule: the chaining states after the ipad and opad blocks. */
interface Pads {
  readonly inner: Int32Array;
  readonly outer: Int32Array;
}

const keyBlock = new Uint8Array(BLOCK);

function padsInto(key: Uint8Array, pads: Pads): Pads {
  keyBlock.fill(0);
  if (key.length > BLOCK) {
    hasher.start(IV, 0).update(key).digestInto(keyBlock, 0);
  } else {
    keyBlock.set(key, 0);
  }
  for (let i = 0; i < BLOCK; i++) keyBlock[i]! ^= 0x36;
  pads.inner.set(IV);
  compress(pads.inner, keyBlock, 0);
  for (let i = 0; i < BLOCK; i++) keyBlock[i]! ^= 0x36 ^ 0x5c;
  pads.outer.set(IV);
  compress(pads.outer, keyBlock, 0);
  keyBlock.fill(0);
  return pads;
}

const newPads = (): Pads => ({ inner: new Int32Array(8), outer: new Int32Array(8) });

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

/** Finishes HMAC: hasher holds the inner hash after the message; writes the MAC at out[off..]. */
function finishMac(pads: Pads, out: Uint8Array, off: number): void {
  hasher.finish();
  compressOuter(hasher.s, pads.outer);
  writeState(hasher.s, out, off);
}

const scratchPads = newPads();

export function hmacSha256Small(key: Uint8Array, data: Uint8Array): Uint8Array {
  const pads = isZeroShortKey(key) ? ZERO_KEY_PADS : padsInto(key, scratchPads);
  const out = new Uint8Array(32);
  hasher.start(pads.inner, BLOCK).update(data);
  finishMac(pads, out, 0);
  wipeScratch();
  return out;
}

/**
 * HMAC of each message under one key, the key schedule computed once: KDF_CK's two HMACs
 * (inputs 0x01 and 0x02 under the chain key) cost 6 compressions instead of 8.
 */
export function hmacSha256SmallEach(key: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[] {
  const pads = isZeroShortKey(key) ? ZERO_KEY_PADS : padsInto(key, scratchPads);
  const macs: Uint8Array[] = [];
  for (const data of messages) {
    const out = new Uint8Array(32);
    hasher.start(pads.inner, BLOCK).update(data);
    finishMac(pads, out, 0);
    macs.push(out);
  }
  wipeScratch();
  return macs;
}

const prk = new Uint8Array(32);
const block = new Uint8Array(32);

/** HKDF-SHA-256 (RFC 5869); the caller has checked the input types and 1 <= length <= 255 * 32. */
export function hkdfSha256Small(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  // Extract: PRK = HMAC(salt, IKM); an empty salt means 32 zero bytes, which pads the same.
  const saltPads = isZeroShortKey(salt) ? ZERO_KEY_PADS : padsInto(salt, scratchPads);
  hasher.start(saltPads.inner, BLOCK).update(ikm);
  finishMac(saltPads, prk, 0);
  // Expand: T(i) = HMAC(PRK, T(i-1) || info || i), all under one key schedule.
  const prkPads = padsInto(prk, scratchPads);
  const okm = new Uint8Array(length);
  for (let filled = 0, counter = 1; filled < length; counter++, filled += 32) {
    hasher.start(prkPads.inner, BLOCK);
    if (counter > 1) hasher.update(block);
    hasher.update(info).byte(counter);
    finishMac(prkPads, block, 0);
    const take = Math.min(32, length - filled);
    okm.set(take === 32 ? block : block.subarray(0, take), filled);
  }
  prk.fill(0);
  block.fill(0);
  wipeScratch();
  return okm;
}

function wipeScratch(): void {
  hasher.wipe();
  scratchPads.inner.fill(0);
  scratchPads.outer.fill(0);
  W.fill(0);
}
