import t from 'tap';
import fc from 'fast-check';
import { toHexString, hex } from './vector-files.ts';
import { RUNS, agree, anyBytes, bytes, edKey, flip, noble, xPublic } from './agreement-helpers.ts';

for (const [name, nonceLength] of [
  ['chacha', 12],
  ['xchacha', 24],
] as const) {
  const seal = name === 'chacha' ? 'chachaSeal' : 'xchachaSeal';
  const open = name === 'chacha' ? 'chachaOpen' : 'xchachaOpen';
  t.test(`${name}20-Poly1305: seal, open and tampering agree`, async (t) => {
    fc.assert(
      fc.property(
        bytes(32),
        bytes(nonceLength),
        anyBytes(200),
        fc.option(anyBytes(40), { nil: undefined }),
        fc.nat(),
        fc.integer({ min: 0, max: 2 }),
        (key, nonce, plaintext, aad, bit, what) => {
          const sealed = agree((p) => p[seal](key, nonce, plaintext, aad));
          const sealedBytes = hex(sealed.slice('bytes:'.length));
          if (agree((p) => p[open](key, nonce, sealedBytes, aad)) !== `bytes:${toHexString(plaintext)}`) throw new Error('round trip');
          // Tamper with the ciphertext body, the tag or the AAD: both refuse alike.
          const tampered =
            what === 0
              ? agree((p) => p[open](key, nonce, flip(sealedBytes, bit), aad))
              : what === 1
                ? agree((p) => p[open](key, nonce, sealedBytes.subarray(0, sealedBytes.length - 1 - (bit % 17)), aad))
                : agree((p) => p[open](key, nonce, sealedBytes, new Uint8Array([...(aad ?? []), bit & 0xff])));
          if (tampered !== 'refused:aead_auth_failed') throw new Error(`tampering not refused: ${tampered.slice(0, 40)}`);
          agree((p) => p[open](flip(key, bit), nonce, sealedBytes, aad));
        },
      ),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} runs agree`);
  });

  t.test(`${name}20-Poly1305: wrong key and nonce lengths refused alike`, async (t) => {
    fc.assert(
      fc.property(anyBytes(40), anyBytes(40), anyBytes(40), (key, nonce, data) => {
        agree((p) => p[seal](key, nonce, data));
        agree((p) => p[open](key, nonce, data));
      }),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} runs agree`);
  });
}

t.test('SHA-256, SHA-512, HMAC-SHA-256, HKDF-SHA-256 agree', async (t) => {
  fc.assert(
    fc.property(
      anyBytes(300),
      anyBytes(150),
      anyBytes(80),
      anyBytes(80),
      fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constantFrom(0, -1, 8160, 8161, 1.5, Number.NaN)),
      (data, key, salt, info, length) => {
        agree((p) => p.sha256(data));
        agree((p) => p.sha512(data));
        agree((p) => p.hmacSha256(key, data));
        agree((p) => p.hmacSha256Each(key, [data, salt, info]));
        agree((p) => p.hkdfSha256(data, salt, info, length));
      },
    ),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} runs agree`);
});

t.test('ML-KEM-768: keys, encapsulation, implicit rejection and bad keys agree', async (t) => {
  fc.assert(
    fc.property(bytes(64), bytes(32), fc.nat(), fc.integer({ min: 0, max: 1183 }), (seed, m, bit, at) => {
      const pk = agree((p) => p.mlkemKeyPair(seed).publicKey);
      const pkBytes = hex(pk.slice('bytes:'.length));
      const enc = JSON.parse(agree((p) => p.mlkemEncapsulate(pkBytes, m)).slice('value:'.length)) as Record<string, string>;
      const cipherText = hex(enc['cipherText']);
      const honest = agree((p) => p.mlkemDecapsulate(cipherText, seed));
      if (honest !== `bytes:${enc['sharedSecret']}`) throw new Error('decapsulation lost the secret');
      // A tampered ciphertext decapsulates to the same implicit-rejection secret in both.
      const rejected = agree((p) => p.mlkemDecapsulate(flip(cipherText, bit), seed));
      if (rejected === honest) throw new Error('tampered ciphertext gave the honest secret');
      // A public key with one coefficient pushed out of range fails the modulus check in both.
      const bad = pkBytes.slice();
      bad[at - (at % 3)] = 0xff;
      bad[at - (at % 3) + 1]! |= 0x0f;
      if (at < 1152) agree((p) => p.mlkemEncapsulate(bad, m));
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} runs agree`);
});
