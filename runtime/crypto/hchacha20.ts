import { checkLength } from './checks.ts';

/**
 * HChaCha20 (draft-irtf-cfrg-xchacha, section 2.2): the ChaCha20 core without the final
 * feed-forward, keeping words 0..3 and 12..15. It turns a 32-byte key and the first 16 bytes of
 * an XChaCha20 nonce into a subkey. node:crypto has no XChaCha, so the node provider derives the
 * subkey here and hands the rest to OpenSSL's chacha20-poly1305.
 */
const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]; // "expand 32-byte k"
const DOUBLE_ROUNDS = 10;

function readU32LE(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16) | (bytes[offset + 3]! << 24)) >>> 0;
}

function rotl(x: number, n: number): number {
  return ((x << n) | (x >>> (32 - n))) >>> 0;
}

function quarterRound(s: Uint32Array, a: number, b: number, c: number, d: number): void {
  s[a] = (s[a]! + s[b]!) >>> 0; s[d] = rotl(s[d]! ^ s[a]!, 16);
  s[c] = (s[c]! + s[d]!) >>> 0; s[b] = rotl(s[b]! ^ s[c]!, 12);
  s[a] = (s[a]! + s[b]!) >>> 0; s[d] = rotl(s[d]! ^ s[a]!, 8);
  s[c] = (s[c]! + s[d]!) >>> 0; s[b] = rotl(s[b]! ^ s[c]!, 7);
}

export function hchacha20(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  checkLength(key, 32, 'aead_bad_key');
  checkLength(nonce16, 16, 'aead_bad_nonce');
  const s = new Uint32Array(16);
  s.set(SIGMA, 0);
  for (let i = 0; i < 8; i++) s[4 + i] = readU32LE(key, 4 * i);
  for (let i = 0; i < 4; i++) s[12 + i] = readU32LE(nonce16, 4 * i);
  for (let r = 0; r < DOUBLE_ROUNDS; r++) {
    quarterRound(s, 0, 4, 8, 12);
    quarterRound(s, 1, 5, 9, 13);
    quarterRound(s, 2, 6, 10, 14);
    quarterRound(s, 3, 7, 11, 15);
    quarterRound(s, 0, 5, 10, 15);
    quarterRound(s, 1, 6, 11, 12);
    quarterRound(s, 2, 7, 8, 13);
    quarterRound(s, 3, 4, 9, 14);
  }
  const out = new Uint8Array(32);
  const words = [s[0]!, s[1]!, s[2]!, s[3]!, s[12]!, s[13]!, s[14]!, s[15]!];
  words.forEach((w, i) => {
    out[4 * i] = w & 0xff;
    out[4 * i + 1] = (w >>> 8) & 0xff;
    out[4 * i + 2] = (w >>> 16) & 0xff;
    out[4 * i + 3] = w >>> 24;
  });
  s.fill(0);
  return out;
}
