import t from 'tap';
import { CryptoError } from '../errors.ts';
import { AEAD_MAX_PLAINTEXT_BYTES, createCryptoProvider, providers, PROVIDER_ENV, seededRandom } from './index.ts';
import { hchacha20 } from './hchacha20.ts';
import { checkAeadInputs } from './checks.ts';
import { LruCache } from './lru.ts';
import type { CryptoProvider } from './provider.ts';
import { hex, toHexString } from './vector-files.ts';

t.test('provider selection: config, TALOS_CRYPTO, default node, unknown names refused', async (t) => {
  const saved = process.env[PROVIDER_ENV];
  t.teardown(() => {
    if (saved === undefined) delete process.env[PROVIDER_ENV];
    else process.env[PROVIDER_ENV] = saved;
  });
  delete process.env[PROVIDER_ENV];
  t.equal(createCryptoProvider().name, 'node', 'default is node');
  process.env[PROVIDER_ENV] = 'noble';
  t.equal(createCryptoProvider().name, 'noble', 'TALOS_CRYPTO=noble');
  t.equal(createCryptoProvider({ name: 'node' }).name, 'node', 'config wins over the environment');
  process.env[PROVIDER_ENV] = 'node';
  t.equal(createCryptoProvider().name, 'node', 'TALOS_CRYPTO=node');
  process.env[PROVIDER_ENV] = 'openssl';
  t.throws(() => createCryptoProvider(), { code: 'crypto_unknown_provider' }, 'unknown env name');
  t.throws(() => createCryptoProvider({ name: 'NOBLE' }), { code: 'crypto_unknown_provider' }, 'names are exact');
  t.same(
    providers().map((p) => p.name),
    ['noble', 'node'],
    'providers() returns both',
  );
});

/** Everything a provider draws from its random source, in one fixed order. */
function drawAll(crypto: CryptoProvider): string[] {
  const ed = crypto.ed25519KeyPair();
  const x = crypto.x25519KeyPair();
  const kem = crypto.mlkemKeyPair();
  const enc = crypto.mlkemEncapsulate(kem.publicKey);
  return [ed.secretKey, ed.publicKey, x.secretKey, x.publicKey, kem.seed, kem.publicKey, enc.cipherText, enc.sharedSecret, crypto.randomBytes(48)].map(
    toHexString,
  );
}

t.test('seeded random source: same seed gives identical keys and bytes in both providers', async (t) => {
  const [noble, node] = providers({ random: () => seededRandom('determinism') });
  const a = drawAll(noble!);
  const b = drawAll(node!);
  t.same(a, b, 'noble and node draw the same values');
  t.same(drawAll(createCryptoProvider({ name: 'node', random: seededRandom('determinism') })), a, 'reproducible');
  t.notSame(drawAll(createCryptoProvider({ name: 'node', random: seededRandom('other') })), a, 'another seed differs');
  // The keys really come from the injected source: the first 32 bytes are the Ed25519 seed.
  t.equal(a[0], toHexString(seededRandom('determinism')(32)), 'key generation draws from the injected source');
  // And the KEM randomness too: the decapsulated secret matches the encapsulated one.
  const again = createCryptoProvider({ name: 'noble', random: seededRandom('determinism') });
  again.ed25519KeyPair();
  again.x25519KeyPair();
  const kem = again.mlkemKeyPair();
  const enc = again.mlkemEncapsulate(kem.publicKey);
  t.equal(toHexString(again.mlkemDecapsulate(enc.cipherText, kem.seed)), a[7], 'KEM secret round-trips');
});

t.test('random sources: bad lengths and faulty injected sources are refused', async (t) => {
  for (const crypto of providers()) {
    t.equal(crypto.randomBytes(0).length, 0, `${crypto.name}: zero bytes allowed`);
    t.equal(crypto.randomBytes(33).length, 33, `${crypto.name}: exact length`);
    for (const n of [-1, 1.5, Number.NaN, 2 ** 21]) {
      t.throws(() => crypto.randomBytes(n), { code: 'random_bad_length' }, `${crypto.name}: randomBytes(${n})`);
    }
  }
  for (const name of ['noble', 'node']) {
    const short = createCryptoProvider({ name, random: (n) => new Uint8Array(Math.max(0, n - 1)) });
    t.throws(() => short.ed25519KeyPair(), { code: 'random_source_failed' }, `${name}: short output refused`);
    const wrongType = createCryptoProvider({ name, random: (n) => Array.from({ length: n }, () => 0) as unknown as Uint8Array });
    t.throws(() => wrongType.randomBytes(4), { code: 'random_source_failed' }, `${name}: non-bytes refused`);
  }
});

// A recognisable secret: if it leaks into an error message, the hex or base64 shows up.
const SECRET = new Uint8Array(31).fill(0xab);
const SECRET_MARKERS = ['abab', 'q6ur', '171,171'];
const ok32 = new Uint8Array(32).fill(7);

/** Every input-shape refusal, with the code both providers must give. */
const refusals: [string, string, (c: CryptoProvider) => unknown][] = [
  ['ed25519PublicKey short seed', 'ed25519_bad_seed', (c) => c.ed25519PublicKey(SECRET)],
  ['ed25519KeyPair short seed', 'ed25519_bad_seed', (c) => c.ed25519KeyPair(SECRET)],
  ['ed25519Sign short seed', 'ed25519_bad_seed', (c) => c.ed25519Sign(SECRET, ok32)],
  ['ed25519Sign non-bytes message', 'crypto_bad_input', (c) => c.ed25519Sign(ok32, 'text' as unknown as Uint8Array)],
  ['ed25519Verify non-bytes message', 'crypto_bad_input', (c) => c.ed25519Verify(ok32, 'x' as unknown as Uint8Array, new Uint8Array(64))],
  ['x25519PublicKey short secret', 'x25519_bad_secret', (c) => c.x25519PublicKey(SECRET)],
  ['x25519KeyPair short secret', 'x25519_bad_secret', (c) => c.x25519KeyPair(SECRET)],
  ['x25519 short secret', 'x25519_bad_secret', (c) => c.x25519(SECRET, ok32)],
  ['x25519 short public key', 'x25519_bad_public', (c) => c.x25519(ok32, SECRET)],
  ['x25519 zero public key', 'x25519_low_order', (c) => c.x25519(ok32, new Uint8Array(32))],
  ['chachaSeal short key', 'aead_bad_key', (c) => c.chachaSeal(SECRET, new Uint8Array(12), ok32)],
  ['chachaSeal long nonce', 'aead_bad_nonce', (c) => c.chachaSeal(ok32, new Uint8Array(24), ok32)],
  ['chachaOpen short key', 'aead_bad_key', (c) => c.chachaOpen(SECRET, new Uint8Array(12), ok32)],
  ['chachaOpen shorter than a tag', 'aead_auth_failed', (c) => c.chachaOpen(ok32, new Uint8Array(12), new Uint8Array(15))],
  ['chachaOpen wrong tag', 'aead_auth_failed', (c) => c.chachaOpen(ok32, new Uint8Array(12), new Uint8Array(40))],
  ['chachaSeal non-bytes AAD', 'crypto_bad_input', (c) => c.chachaSeal(ok32, new Uint8Array(12), ok32, 'aad' as unknown as Uint8Array)],
  ['xchachaSeal short nonce', 'aead_bad_nonce', (c) => c.xchachaSeal(ok32, new Uint8Array(12), ok32)],
  ['xchachaOpen short key', 'aead_bad_key', (c) => c.xchachaOpen(SECRET, new Uint8Array(24), ok32)],
  ['xchachaOpen wrong tag', 'aead_auth_failed', (c) => c.xchachaOpen(ok32, new Uint8Array(24), new Uint8Array(40))],
  ['xchachaSeal non-bytes plaintext', 'crypto_bad_input', (c) => c.xchachaSeal(ok32, new Uint8Array(24), [1] as unknown as Uint8Array)],
  ['sha256 non-bytes', 'crypto_bad_input', (c) => c.sha256('abc' as unknown as Uint8Array)],
  ['hmacSha256 non-bytes key', 'crypto_bad_input', (c) => c.hmacSha256('k' as unknown as Uint8Array, ok32)],
  ['hmacSha256Each non-bytes message', 'crypto_bad_input', (c) => c.hmacSha256Each(ok32, [ok32, 'm' as unknown as Uint8Array])],
  ['hkdfSha256 length 0', 'hkdf_bad_length', (c) => c.hkdfSha256(ok32, ok32, ok32, 0)],
  ['hkdfSha256 length 8161', 'hkdf_bad_length', (c) => c.hkdfSha256(ok32, ok32, ok32, 8161)],
  ['hkdfSha256 fractional length', 'hkdf_bad_length', (c) => c.hkdfSha256(ok32, ok32, ok32, 2.5)],
  ['hkdfSha256 non-bytes info', 'crypto_bad_input', (c) => c.hkdfSha256(ok32, ok32, 'i' as unknown as Uint8Array, 32)],
  ['mlkemKeyPair short seed', 'mlkem_bad_seed', (c) => c.mlkemKeyPair(SECRET)],
  ['mlkemEncapsulate short key', 'mlkem_bad_public_key', (c) => c.mlkemEncapsulate(SECRET)],
  ['mlkemEncapsulate key out of range', 'mlkem_bad_public_key', (c) => c.mlkemEncapsulate(new Uint8Array(1184).fill(0xff), ok32)],
  ['mlkemEncapsulate short randomness', 'mlkem_bad_randomness', (c) => c.mlkemEncapsulate(c.mlkemKeyPair(new Uint8Array(64)).publicKey, SECRET)],
  ['mlkemDecapsulate short ciphertext', 'mlkem_bad_ciphertext', (c) => c.mlkemDecapsulate(SECRET, new Uint8Array(64))],
  ['mlkemDecapsulate short seed', 'mlkem_bad_seed', (c) => c.mlkemDecapsulate(new Uint8Array(1088), SECRET)],
];

t.test('input refusals: the same stable CryptoError code in both providers, no secret in the message', async (t) => {
  for (const crypto of providers()) {
    for (const [what, code, call] of refusals) {
      let caught: unknown;
      try {
        call(crypto);
      } catch (error) {
        caught = error;
      }
      t.ok(caught instanceof CryptoError, `${crypto.name}: ${what} throws CryptoError`);
      const error = caught as CryptoError;
      t.equal(error.code, code, `${crypto.name}: ${what} -> ${code}`);
      const text = `${error.message} ${String(error.stack)}`.toLowerCase();
      t.notOk(SECRET_MARKERS.some((m) => text.includes(m)), `${crypto.name}: ${what} message carries no input bytes`);
    }
  }
});

t.test('AEAD inputs past OpenSSL\'s int lengths: aead_too_long from both providers; the longest plaintext seals', async (t) => {
  // One 2 GiB array, viewed at each length around the limits (its pages, never written, cost no
  // memory; the one seal at the limit below writes a 2 GiB output).
  const big = new Uint8Array(2 ** 31);
  const plaintextTooLong = big.subarray(0, AEAD_MAX_PLAINTEXT_BYTES + 1);
  const sealedTooLong = big.subarray(0, AEAD_MAX_PLAINTEXT_BYTES + 17);
  const n12 = new Uint8Array(12);
  const n24 = new Uint8Array(24);
  for (const crypto of providers()) {
    const calls: [string, () => unknown][] = [
      ['chachaSeal plaintext', () => crypto.chachaSeal(ok32, n12, plaintextTooLong)],
      ['chachaSeal AAD', () => crypto.chachaSeal(ok32, n12, ok32, plaintextTooLong)],
      ['chachaOpen sealed', () => crypto.chachaOpen(ok32, n12, sealedTooLong)],
      ['chachaOpen AAD', () => crypto.chachaOpen(ok32, n12, new Uint8Array(40), plaintextTooLong)],
      ['xchachaSeal plaintext', () => crypto.xchachaSeal(ok32, n24, plaintextTooLong)],
      ['xchachaOpen sealed', () => crypto.xchachaOpen(ok32, n24, sealedTooLong)],
    ];
    for (const [what, call] of calls) t.throws(call, { code: 'aead_too_long' }, `${crypto.name}: ${what} one byte too long`);
  }
  // A sealed value may be a tag longer than a plaintext: at exactly that length it passes the
  // check (opening 2 GiB to prove it end to end would take seconds per provider).
  const sealedAtLimit = big.subarray(0, AEAD_MAX_PLAINTEXT_BYTES + 16);
  t.doesNotThrow(() => checkAeadInputs(ok32, n12, 12, sealedAtLimit, undefined, true), 'a sealed value of the longest plaintext plus its tag');
  t.throws(() => checkAeadInputs(ok32, n12, 12, sealedAtLimit, undefined, false), { code: 'aead_too_long' }, 'the same length as a plaintext');
  // At the limit itself OpenSSL's cipher (the node provider) must still take it: the limit is not
  // looser than OpenSSL's ints. (Sealing only: opening 2 GiB again would double the test's time.)
  const node = createCryptoProvider({ name: 'node' });
  const sealed = node.chachaSeal(ok32, n12, big.subarray(0, AEAD_MAX_PLAINTEXT_BYTES));
  t.equal(sealed.length, AEAD_MAX_PLAINTEXT_BYTES + 16, 'node: the longest plaintext seals');
});

t.test('verification of malformed keys and signatures returns false, never throws', async (t) => {
  for (const crypto of providers()) {
    const { publicKey, secretKey } = crypto.ed25519KeyPair(new Uint8Array(32).fill(1));
    const message = new Uint8Array([1, 2, 3]);
    const signature = crypto.ed25519Sign(secretKey, message);
    t.ok(crypto.ed25519Verify(publicKey, message, signature), `${crypto.name}: sanity`);
    t.notOk(crypto.ed25519Verify(publicKey.subarray(1), message, signature), `${crypto.name}: short key`);
    t.notOk(crypto.ed25519Verify(publicKey, message, signature.subarray(1)), `${crypto.name}: short signature`);
    t.notOk(crypto.ed25519Verify('k' as unknown as Uint8Array, message, signature), `${crypto.name}: non-bytes key`);
    t.notOk(crypto.ed25519IsValidPublicKey(new Uint8Array(31)), `${crypto.name}: short key invalid`);
    t.notOk(crypto.ed25519IsValidPublicKey(hex('01' + '00'.repeat(31))), `${crypto.name}: identity point invalid`);
    t.ok(crypto.ed25519IsValidPublicKey(publicKey), `${crypto.name}: real key valid`);
    // A view into a larger buffer verifies like a copy (cache keys use the view's bytes only).
    const padded = new Uint8Array(40);
    padded.set(publicKey, 4);
    t.ok(crypto.ed25519Verify(padded.subarray(4, 36), message, signature), `${crypto.name}: subarray key`);
  }
});

t.test('a secret array changed in place is used with its new value (node remembers KeyObjects per array)', async (t) => {
  const [noble, node] = providers();
  const seed = new Uint8Array(32).fill(5);
  const message = new Uint8Array([9, 9]);
  const peer = noble!.x25519PublicKey(new Uint8Array(32).fill(6));
  t.same(node!.ed25519Sign(seed, message), noble!.ed25519Sign(seed, message), 'first use');
  t.same(node!.x25519(seed, peer), noble!.x25519(seed, peer), 'first use (X25519)');
  seed.fill(7);
  t.same(node!.ed25519Sign(seed, message), noble!.ed25519Sign(new Uint8Array(32).fill(7), message), 'after the change');
  t.same(node!.x25519(seed, peer), noble!.x25519(new Uint8Array(32).fill(7), peer), 'after the change (X25519)');
  t.same(node!.ed25519PublicKey(seed), noble!.ed25519PublicKey(seed), 'public key after the change');
});

t.test("node: importing a private key leaves no copy of it in Node's shared Buffer pool", async (t) => {
  const node = createCryptoProvider({ name: 'node' });
  // A small Buffer.from(...) is a slice of the pool's current 8 KiB slab: this is that slab.
  const poolSlab = () => Buffer.from([0]).buffer;
  const inSlabs = (slabs: ArrayBuffer[], secret: Uint8Array) => slabs.some((slab) => Buffer.from(slab).indexOf(secret) !== -1);
  // Control: the probe sees a secret that was copied into the pool.
  const control = node.randomBytes(32);
  Buffer.from(control);
  t.ok(inSlabs([poolSlab()], control), 'the probe finds a pooled copy');
  const imports: [string, (secret: Uint8Array) => unknown][] = [
    ['X25519', (secret) => node.x25519PublicKey(secret)],
    ['X25519 agreement', (secret) => node.x25519(secret, node.x25519PublicKey(node.randomBytes(32)))],
    ['Ed25519', (secret) => node.ed25519Sign(secret, new Uint8Array(1))],
  ];
  for (const [name, use] of imports) {
    const secret = node.randomBytes(32);
    const before = poolSlab(); // the pool may move to a new slab meanwhile: both are searched
    use(secret);
    t.notOk(inSlabs([before, poolSlab()], secret), `${name}: the secret is not in the pool`);
  }
});

t.test('outputs are plain Uint8Arrays that callers may keep', async (t) => {
  for (const crypto of providers()) {
    const key = new Uint8Array(32).fill(3);
    for (const out of [crypto.sha256(key), crypto.hmacSha256(key, key), crypto.chachaSeal(key, new Uint8Array(12), key), crypto.x25519PublicKey(key)]) {
      t.equal(Object.getPrototypeOf(out), Uint8Array.prototype, `${crypto.name}: plain Uint8Array`);
    }
    // An opened plaintext owns its memory: never a view into Node's shared Buffer pool, which
    // a transfer to a worker would detach for everyone.
    const nonce = new Uint8Array(12);
    for (const size of [0, 1, 100, 1024]) {
      const plaintext = new Uint8Array(size).fill(7);
      const opened = crypto.chachaOpen(key, nonce, crypto.chachaSeal(key, nonce, plaintext));
      t.same(opened, plaintext, `${crypto.name}: ${size}-byte plaintext opened`);
      t.equal(Object.getPrototypeOf(opened), Uint8Array.prototype, `${crypto.name}: plain Uint8Array`);
      t.equal(opened.buffer.byteLength, opened.byteLength, `${crypto.name}: ${size}-byte plaintext owns its whole buffer`);
    }
  }
});

t.test('HChaCha20 known answer (draft-irtf-cfrg-xchacha-03 section 2.2.1)', async (t) => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => i);
  const nonce = hex('000000090000004a0000000031415927');
  t.equal(toHexString(hchacha20(key, nonce)), '82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc');
});

t.test('LRU cache keeps the most recent entries within its bound', async (t) => {
  const cache = new LruCache<string, number>(2);
  cache.set('a', 1);
  cache.set('b', 2);
  t.equal(cache.get('a'), 1, 'a read makes "a" recent');
  cache.set('c', 3);
  t.equal(cache.size, 2, 'bounded');
  t.equal(cache.get('b'), undefined, 'least recent evicted');
  t.equal(cache.get('a'), 1);
  t.equal(cache.get('c'), 3);
  t.throws(() => new LruCache(0));
});

t.test('the byte-level Ed25519 key pre-check matches the full rule on every decodable key', async (t) => {
  const { passesEd25519KeyByteChecks, isValidEd25519PublicKey, decodeCanonicalPoint } = await import('./ed25519-points.ts');
  const smallOrder = [
    '0100000000000000000000000000000000000000000000000000000000000000',
    'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
    '0000000000000000000000000000000000000000000000000000000000000000',
    '0000000000000000000000000000000000000000000000000000000000000080',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
    'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
    '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  ];
  for (const k of smallOrder) t.notOk(passesEd25519KeyByteChecks(hex(k)), `small order ${k.slice(0, 8)} refused`);
  t.notOk(passesEd25519KeyByteChecks(hex('01' + '00'.repeat(30) + '80')), 'negative zero (y = 1) refused');
  t.notOk(passesEd25519KeyByteChecks(hex('edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f')), 'y = p refused');
  const random = seededRandom('byte-checks');
  let decodable = 0;
  for (let i = 0; i < 3000; i++) {
    const key = random(32);
    if (i % 5 === 0) {
      key.fill(0xff, 1, 31);
      key[31] = (key[31]! & 0x80) | 0x7f;
    }
    if (decodeCanonicalPoint(key) === undefined) continue;
    decodable++;
    if (passesEd25519KeyByteChecks(key) !== isValidEd25519PublicKey(key)) t.fail(`disagreement on ${toHexString(key)}`);
  }
  t.ok(decodable > 1000, `${decodable} decodable keys compared`);
});
