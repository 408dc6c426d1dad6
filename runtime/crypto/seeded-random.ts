import { chacha20 } from '@noble/ciphers/chacha.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from '../encoding/bytes.ts';
import type { RandomSource } from './provider.ts';

/**
 * A deterministic random source for golden vectors and simulations: the ChaCha20 keystream
 * under key SHA-256(seed). The same seed always yields the same byte sequence, whatever the
 * sizes of the individual requests. Never use it for real keys.
 */
export function seededRandom(seed: string | number | Uint8Array): RandomSource {
  const key = sha256(typeof seed === 'object' ? seed : utf8(`talos-seed:${seed}`));
  const nonce = new Uint8Array(12);
  const BLOCK = 4096;
  let pool = new Uint8Array(0);
  let offset = 0;
  let counter = 0;
  return (length: number) => {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      if (offset === pool.length) {
        pool = chacha20(key, nonce, new Uint8Array(BLOCK), undefined, counter);
        counter += BLOCK / 64;
        offset = 0;
      }
      const take = Math.min(length - filled, pool.length - offset);
      out.set(pool.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
    }
    return out;
  };
}
