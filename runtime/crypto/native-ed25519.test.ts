import t from 'tap';
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { addon, NATIVE_ENV, NATIVE_SCRATCH_BYTES, nativeScratchIsWiped } from './native-addon.ts';
import { nativeEd25519, nativeEd25519Status } from './native-ed25519.ts';
import { runWithoutAddon } from './native-test-helpers.ts';
import { hex, readExternalJson, toHexString } from './vector-files.ts';

// The native Ed25519 path (native/ed25519.c) against RFC 8032 and node:crypto's own Ed25519,
// and its hygiene. The provider-level tests (known-answers, agreement, tokens, checkpoints) run
// the node provider, which takes this path whenever it is active.

interface RfcEd25519 {
  source: string;
  secretKey: string;
  publicKey: string;
  message: string;
  signature: string;
}
const rfc = readExternalJson<{ ed25519: RfcEd25519[] }>('rfc-vectors.json').ed25519;

t.test('the path is in use where this Node exports OpenSSL 3.0/3.1\'s Ed25519 (npm ci builds it; TALOS_NATIVE=0 turns it off)', async (t) => {
  if (process.env[NATIVE_ENV] === '0') {
    t.equal(nativeEd25519Status.active, false);
    return;
  }
  const version = process.versions.openssl;
  const why = addon?.ed25519Unavailable;
  if (!/^3\.[01]\./.test(version) || why?.startsWith('this Node does not export')) {
    // Another OpenSSL, or a Node on a shared libcrypto: node:crypto's path is the design there.
    t.same(nativeEd25519Status, { active: false, reason: why }, `OpenSSL ${version}: node:crypto's path`);
    return;
  }
  t.same(nativeEd25519Status, { active: true }, nativeEd25519Status.reason ?? 'active');
});

const ed = nativeEd25519!;
const skip = !nativeEd25519 && 'native path off';
const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const nodePrivate = (seed: Uint8Array) => createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64u(seed), x: '' }, format: 'jwk' });

t.test('RFC 8032 section 7.1: public keys and signatures', { skip }, async (t) => {
  t.ok(rfc.length >= 4);
  for (const v of rfc) {
    const seed = hex(v.secretKey);
    const publicKey = ed.publicKey(seed);
    t.equal(toHexString(publicKey), v.publicKey, `${v.source}: public key`);
    t.equal(toHexString(ed.sign(seed, publicKey, hex(v.message))), v.signature, `${v.source}: signature`);
    t.equal(toHexString(seed), v.secretKey, 'the seed untouched');
  }
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test("equal to node:crypto's Ed25519 on random seeds and messages, longer than the scratch buffers too", { skip }, async (t) => {
  let bad = 0;
  for (let i = 0; i < 200; i++) {
    const seed = randomBytes(32);
    const message = randomBytes(i % 4 === 0 ? 0 : (i * 37) % (3 * NATIVE_SCRATCH_BYTES));
    const before = toHexString(seed) + toHexString(message);
    const publicKey = ed.publicKey(seed);
    const signature = ed.sign(seed, publicKey, message);
    const key = nodePrivate(seed);
    const wantedPublic = createPublicKey(key).export({ format: 'jwk' }).x!;
    const wanted = sign(null, message, key);
    const ok = b64u(publicKey) === wantedPublic && Buffer.from(signature).equals(wanted) && verify(null, message, createPublicKey(key), signature);
    if (!ok || toHexString(seed) + toHexString(message) !== before) bad++;
  }
  t.equal(bad, 0, 'every public key and signature equal, every input as it was');
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test('bad calls to the addon throw, and leave no seed behind', { skip }, async (t) => {
  const keys = new Uint8Array(63).fill(1);
  t.throws(() => addon!.ed25519Sign!(keys, new Uint8Array(1), new Uint8Array(64)), { name: 'RangeError', code: 'native_bad_call' });
  t.equal(toHexString(keys.subarray(0, 32)), '00'.repeat(32), 'the seed wiped');
  t.throws(() => addon!.ed25519Sign!(new Uint8Array(64), new Uint8Array(1), new Uint8Array(63)), { name: 'RangeError' });
  const typed = new Uint8Array(64).fill(1);
  t.throws(() => addon!.ed25519Sign!(typed, 'text' as unknown as Uint8Array, new Uint8Array(64)), { name: 'TypeError', code: 'native_bad_call' });
  t.equal(toHexString(typed.subarray(0, 32)), '00'.repeat(32), 'the seed wiped when an argument is not an array');
  const short = new Uint8Array(31).fill(1);
  t.throws(() => addon!.ed25519Public!(short, new Uint8Array(32)), { name: 'RangeError', code: 'native_bad_call' });
  t.equal(toHexString(short), '00'.repeat(31), 'a short seed wiped');
});

t.test('TALOS_NATIVE=0: the node provider takes node:crypto\'s path, with the RFC 8032 answers', async (t) => {
  const r = runWithoutAddon<{ answers: string[] }>(
    'native-ed25519.ts',
    'nativeEd25519Status',
    `const { readExternalJson } = await import(${JSON.stringify(new URL('./vector-files.ts', import.meta.url).href)});
    const answers = [];
    for (const v of readExternalJson('rfc-vectors.json').ed25519) answers.push(code(() => c.ed25519PublicKey(hex(v.secretKey))), code(() => c.ed25519Sign(hex(v.secretKey), hex(v.message))));
    answers.push(code(() => c.ed25519Sign(new Uint8Array(31), new Uint8Array(1))));
    return { answers };`,
  );
  t.same(r.status, { active: false, reason: `${NATIVE_ENV}=0` });
  t.same(r.answers, [...rfc.flatMap((v) => [v.publicKey, v.signature]), 'ed25519_bad_seed']);
});
