import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { COMPRESS_FILE, compressSource } from './generate-sha256-compress.ts';
import t from 'tap';
import { createNodeProvider } from './node.ts';
import { hkdfSha256Small, hmacSha256Small, hmacSha256SmallEach, SMALL_HKDF_MAX_INPUT_BYTES, SMALL_HMAC_MAX_DATA_BYTES } from './sha256-small.ts';

// The JavaScript SHA-256/HMAC/HKDF of the node provider, held to OpenSSL's on every length
// around the block and padding boundaries (55/56/63/64/65 bytes, keys of 64 and 65 bytes, which
// get hashed) and on both sides of the provider's JavaScript/native switch.
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + 1) & 0xff);
const LENGTHS = [0, 1, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 200];

t.test('HMAC-SHA-256 matches OpenSSL at block boundaries', async (t) => {
  for (const k of [0, 1, 32, 63, 64, 65, 100, 200]) {
    for (const d of LENGTHS) {
      const key = pattern(k, 1);
      const data = pattern(d, 2);
      t.equal(hex(hmacSha256Small(key, data)), createHmac('sha256', key).update(data).digest('hex'), `key ${k}, data ${d}`);
    }
    const zero = new Uint8Array(k); // all-zero keys share the precomputed schedule only up to 64 bytes
    t.equal(hex(hmacSha256Small(zero, pattern(5, 3))), createHmac('sha256', zero).update(pattern(5, 3)).digest('hex'), `zero key ${k}`);
  }
});

t.test('HMACs of several messages under one key schedule match OpenSSL', async (t) => {
  for (const k of [0, 1, 32, 64, 65]) {
    const key = pattern(k, 15);
    const messages = LENGTHS.map((d) => pattern(d, 16));
    const macs = hmacSha256SmallEach(key, messages);
    t.same(macs.map(hex), messages.map((m) => createHmac('sha256', key).update(m).digest('hex')), `key ${k}`);
  }
  t.same(hmacSha256SmallEach(pattern(32, 17), []), [], 'no messages, no MACs');
});

t.test('HKDF-SHA-256 matches OpenSSL (salts empty, zero, short, long; many output lengths)', async (t) => {
  const salts = [new Uint8Array(0), new Uint8Array(32), new Uint8Array(64), new Uint8Array(65), pattern(13, 4), pattern(80, 5)];
  for (const salt of salts) {
    for (const ikm of [0, 32, 64, 65, 160]) {
      for (const info of [0, 17, 47, 48, 80]) {
        for (const length of [1, 31, 32, 33, 44, 64, 65, 82, 255]) {
          const expected = Buffer.from(hkdfSync('sha256', pattern(ikm, 6), salt, pattern(info, 7), length)).toString('hex');
          t.equal(hex(hkdfSha256Small(pattern(ikm, 6), salt, pattern(info, 7), length)), expected);
        }
      }
    }
  }
});

t.test('SHA-256 padding with a multi-block key', async (t) => {
  // A key longer than a block is hashed first (RFC 2104): compare that path on long keys.
  for (const k of [65, 119, 120, 128, 1000]) {
    const key = pattern(k, 8);
    const viaHash = createHmac('sha256', createHash('sha256').update(key).digest()).update(pattern(3, 9)).digest('hex');
    t.equal(hex(hmacSha256Small(key, pattern(3, 9))), viaHash, `key ${k}`);
  }
});

t.test('node provider gives the same bytes on both sides of its JavaScript/native switch', async (t) => {
  const crypto = createNodeProvider();
  for (const d of [SMALL_HMAC_MAX_DATA_BYTES - 1, SMALL_HMAC_MAX_DATA_BYTES, SMALL_HMAC_MAX_DATA_BYTES + 1]) {
    const key = pattern(32, 10);
    t.equal(hex(crypto.hmacSha256(key, pattern(d, 11))), createHmac('sha256', key).update(pattern(d, 11)).digest('hex'));
  }
  for (const total of [SMALL_HKDF_MAX_INPUT_BYTES - 1, SMALL_HKDF_MAX_INPUT_BYTES, SMALL_HKDF_MAX_INPUT_BYTES + 1]) {
    const ikm = pattern(total - 32 - 17, 12);
    const salt = pattern(32, 13);
    const info = pattern(17, 14);
    t.equal(hex(crypto.hkdfSha256(ikm, salt, info, 44)), Buffer.from(hkdfSync('sha256', ikm, salt, info, 44)).toString('hex'));
  }
});

t.test('the committed unrolled compression is what its generator writes', async (t) => {
  t.equal(readFileSync(COMPRESS_FILE, 'utf8'), compressSource(), 'run: npx tsx runtime/crypto/generate-sha256-compress.ts');
});
