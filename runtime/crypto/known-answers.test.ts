import t from 'tap';
import { providers } from './index.ts';
import { hex, readExternalJson, toHexString } from './vector-files.ts';

/**
 * RFC 8032, 7748, 8439 and 5869 known answers (contracts/vectors/external/rfc-vectors.json) and
 * the ed25519-speccheck verdicts, on both providers.
 */

interface RfcVectors {
  ed25519: { source: string; secretKey: string; publicKey: string; message: string; signature: string }[];
  x25519: { source: string; scalar: string; u: string; output: string }[];
  x25519Iterated: { source: string; iterations: number; output: string }[];
  x25519DiffieHellman: {
    source: string;
    alicePrivate: string;
    alicePublic: string;
    bobPrivate: string;
    bobPublic: string;
    shared: string;
  }[];
  chacha20Poly1305: { source: string; key: string; nonce: string; aad: string; plaintext: string; ciphertext: string; tag: string }[];
  hkdfSha256: { source: string; ikm: string; salt: string; info: string; length: number; prk: string; okm: string }[];
}

interface SpecCheck {
  cases: { case: number; message: string; public_key: string; signature: string; valid: boolean; why: string }[];
}

const rfc = readExternalJson<RfcVectors>('rfc-vectors.json');
const speccheck = readExternalJson<SpecCheck>('ed25519-speccheck.json');

for (const crypto of providers()) {
  t.test(`${crypto.name}: RFC 8032 Ed25519`, async (t) => {
    for (const v of rfc.ed25519) {
      const seed = hex(v.secretKey);
      t.equal(toHexString(crypto.ed25519PublicKey(seed)), v.publicKey, `${v.source}: public key`);
      t.equal(toHexString(crypto.ed25519Sign(seed, hex(v.message))), v.signature, `${v.source}: signature`);
      t.ok(crypto.ed25519Verify(hex(v.publicKey), hex(v.message), hex(v.signature)), `${v.source}: verifies`);
      t.notOk(crypto.ed25519Verify(hex(v.publicKey), new Uint8Array([...hex(v.message), 0]), hex(v.signature)), `${v.source}: other message fails`);
    }
  });

  t.test(`${crypto.name}: RFC 7748 X25519`, async (t) => {
    for (const v of rfc.x25519) t.equal(toHexString(crypto.x25519(hex(v.scalar), hex(v.u))), v.output, v.source);
    // Iterated: k, u = X25519(k, u), k (section 5.2), starting from k = u = 9.
    const wanted = new Map(rfc.x25519Iterated.map((v) => [v.iterations, v]));
    const last = Math.max(...wanted.keys());
    let k: Uint8Array = new Uint8Array(32);
    k[0] = 9;
    let u = k;
    for (let i = 1; i <= last; i++) {
      const next = crypto.x25519(k, u);
      u = k;
      k = next;
      const v = wanted.get(i);
      if (v) t.equal(toHexString(k), v.output, v.source);
    }
    for (const v of rfc.x25519DiffieHellman) {
      t.equal(toHexString(crypto.x25519PublicKey(hex(v.alicePrivate))), v.alicePublic, `${v.source}: Alice's public key`);
      t.equal(toHexString(crypto.x25519PublicKey(hex(v.bobPrivate))), v.bobPublic, `${v.source}: Bob's public key`);
      t.equal(toHexString(crypto.x25519(hex(v.alicePrivate), hex(v.bobPublic))), v.shared, `${v.source}: Alice's secret`);
      t.equal(toHexString(crypto.x25519(hex(v.bobPrivate), hex(v.alicePublic))), v.shared, `${v.source}: Bob's secret`);
    }
  });

  t.test(`${crypto.name}: RFC 8439 ChaCha20-Poly1305`, async (t) => {
    for (const v of rfc.chacha20Poly1305) {
      const [key, nonce, aad] = [hex(v.key), hex(v.nonce), hex(v.aad)];
      const sealed = crypto.chachaSeal(key, nonce, hex(v.plaintext), aad);
      t.equal(toHexString(sealed), v.ciphertext + v.tag, `${v.source}: ciphertext and tag`);
      t.equal(toHexString(crypto.chachaOpen(key, nonce, hex(v.ciphertext + v.tag), aad)), v.plaintext, `${v.source}: opens`);
      t.throws(() => crypto.chachaOpen(key, nonce, hex(v.ciphertext + v.tag), new Uint8Array(0)), { code: 'aead_auth_failed' }, `${v.source}: without its AAD fails`);
    }
  });

  t.test(`${crypto.name}: RFC 5869 HKDF-SHA-256`, async (t) => {
    for (const v of rfc.hkdfSha256) {
      t.equal(toHexString(crypto.hkdfSha256(hex(v.ikm), hex(v.salt), hex(v.info), v.length)), v.okm, `${v.source}: OKM`);
      // PRK = HMAC(salt or HashLen zeros, IKM) (section 2.2): checks HMAC against the RFC too.
      const salt = v.salt === '' ? new Uint8Array(32) : hex(v.salt);
      t.equal(toHexString(crypto.hmacSha256(salt, hex(v.ikm))), v.prk, `${v.source}: PRK`);
    }
  });

  t.test(`${crypto.name}: ed25519-speccheck verdicts`, async (t) => {
    t.equal(speccheck.cases.length, 12, 'all 12 cases present');
    for (const c of speccheck.cases) {
      const verdict = crypto.ed25519Verify(hex(c.public_key), hex(c.message), hex(c.signature));
      t.equal(verdict, c.valid, `case ${c.case}: ${c.why}`);
    }
    // The verdict must not depend on the public-key cache: ask again in reverse order.
    for (const c of [...speccheck.cases].reverse()) {
      t.equal(crypto.ed25519Verify(hex(c.public_key), hex(c.message), hex(c.signature)), c.valid, `case ${c.case} again`);
    }
  });
}
