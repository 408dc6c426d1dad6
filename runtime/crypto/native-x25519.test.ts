import t from 'tap';
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import { addon, NATIVE_ENV, nativeScratchIsWiped } from './native-addon.ts';
import { nativeX25519, nativeX25519Status } from './native-x25519.ts';
import { runWithoutAddon } from './native-test-helpers.ts';
import { hex, toHexString, wycheproof } from './vector-files.ts';

// The native X25519 path (native/x25519.c) against the published vectors and node:crypto's own
// X25519, and its hygiene. The provider-level tests (known-answers, wycheproof, agreement) run
// the node provider, which takes this path whenever it is active.

t.test('the path is in use where this Node exports OpenSSL\'s X25519 (npm ci builds it; TALOS_NATIVE=0 turns it off)', async (t) => {
  if (process.env[NATIVE_ENV] === '0') {
    t.equal(nativeX25519Status.active, false);
    return;
  }
  if (addon?.x25519Unavailable?.startsWith('this Node does not export')) {
    // A Node on a shared libcrypto: node:crypto's path is the design there (the subprocess test below covers it).
    t.same(nativeX25519Status, { active: false, reason: addon.x25519Unavailable });
    return;
  }
  t.same(nativeX25519Status, { active: true }, nativeX25519Status.reason ?? 'active');
});

const x = nativeX25519!;
const skip = !nativeX25519 && 'native path off';
const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const nodePrivate = (secret: Uint8Array) => createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(secret), x: '' }, format: 'jwk' });

t.test('Wycheproof x25519_test.json: every case', { skip }, async (t) => {
  let cases = 0;
  let zero = 0;
  for (const group of wycheproof('x25519_test.json').testGroups) {
    for (const test of group.tests) {
      cases++;
      const shared = x.sharedSecret(hex(test['private']), hex(test['public']));
      if (test['shared'] === '00'.repeat(32)) {
        zero++;
        t.equal(shared, undefined, `tcId ${test.tcId}: an all-zero secret is reported as none`);
      } else {
        t.equal(test.result === 'invalid', false, `tcId ${test.tcId}: no invalid case with a secret`);
        t.equal(shared && toHexString(shared), test['shared'], `tcId ${test.tcId}`);
      }
    }
  }
  t.ok(cases > 500 && zero > 10, `${cases} cases, ${zero} with an all-zero secret`);
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test("equal to node:crypto's X25519 on random keys, and the caller's arrays untouched", { skip }, async (t) => {
  let bad = 0;
  for (let i = 0; i < 300; i++) {
    const secret = randomBytes(32);
    const peer = createPublicKey(nodePrivate(randomBytes(32)));
    const peerRaw = new Uint8Array(Buffer.from(peer.export({ format: 'jwk' }).x!, 'base64url'));
    const secretBefore = toHexString(secret);
    const publicKey = x.publicKey(secret);
    const shared = x.sharedSecret(secret, peerRaw);
    const wantedPublic = createPublicKey(nodePrivate(secret)).export({ format: 'jwk' }).x!;
    const wantedShared = diffieHellman({ privateKey: nodePrivate(secret), publicKey: peer });
    if (b64u(publicKey) !== wantedPublic || !shared || toHexString(shared) !== wantedShared.toString('hex') || toHexString(secret) !== secretBefore) bad++;
  }
  t.equal(bad, 0, 'every public key and shared secret equal, every secret as it was');
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test('a low-order public key gives no secret and leaves nothing behind', { skip }, async (t) => {
  // u = 0 and u = 1 are points of small order: every scalar gives the all-zero result.
  for (const u of [new Uint8Array(32), Uint8Array.of(1, ...new Uint8Array(31))]) {
    t.equal(x.sharedSecret(randomBytes(32), u), undefined);
  }
  t.ok(nativeScratchIsWiped());
});

t.test('output may be the input array: the result is written after the scalar is wiped', { skip }, async (t) => {
  const secret = randomBytes(32);
  const peer = x.publicKey(randomBytes(32));
  const wanted = toHexString(x.sharedSecret(secret, peer)!);
  const both = new Uint8Array(64);
  both.set(secret);
  both.set(peer, 32);
  t.equal(addon!.x25519!(both, both), true);
  t.equal(toHexString(both.subarray(0, 32)), wanted, 'the shared secret');
  t.equal(toHexString(both.subarray(32)), '00'.repeat(32), 'the rest of the input wiped');
  const one = new Uint8Array(secret);
  addon!.x25519Base!(one, one);
  t.equal(toHexString(one), toHexString(x.publicKey(secret)), 'the public key');
});

t.test('TALOS_NATIVE=0: the node provider takes node:crypto\'s path, with the same answers on every Wycheproof case', async (t) => {
  // The fallback is what a Node without OpenSSL's symbols runs: checked case by case, refusal codes included.
  const r = runWithoutAddon<{ answers: string[] }>(
    'native-x25519.ts',
    'nativeX25519Status',
    `const answers = [];
    for (const group of wycheproof('x25519_test.json').testGroups) for (const test of group.tests) answers.push(code(() => c.x25519(hex(test.private), hex(test.public))));
    answers.push(code(() => c.x25519(new Uint8Array(31), new Uint8Array(32))), code(() => c.x25519(new Uint8Array(32), new Uint8Array(33))));
    answers.push(code(() => c.x25519PublicKey(hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'))));
    return { answers };`,
  );
  t.same(r.status, { active: false, reason: `${NATIVE_ENV}=0` });
  const wanted: string[] = [];
  for (const group of wycheproof('x25519_test.json').testGroups) {
    for (const test of group.tests) wanted.push(test['shared'] === '00'.repeat(32) ? 'x25519_low_order' : (test['shared'] as string));
  }
  wanted.push('x25519_bad_secret', 'x25519_bad_public', '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  t.same(r.answers, wanted, `${wanted.length - 3} Wycheproof cases, two bad lengths and RFC 7748 6.1's public key`);
});

t.test('bad calls to the addon throw, and leave no scalar behind', { skip }, async (t) => {
  const short = new Uint8Array(40).fill(1);
  t.throws(() => addon!.x25519!(short, new Uint8Array(32)), { name: 'RangeError', code: 'native_bad_call' });
  t.equal(toHexString(short.subarray(0, 32)), '00'.repeat(32), 'the scalar wiped');
  const scalar = new Uint8Array(31).fill(1);
  t.throws(() => addon!.x25519Base!(scalar, new Uint8Array(32)), { name: 'RangeError', code: 'native_bad_call' });
  t.equal(toHexString(scalar), '00'.repeat(31), 'a short scalar wiped');
  const typed = new Uint8Array(64).fill(1);
  t.throws(() => addon!.x25519!(typed, 'u' as unknown as Uint8Array), { name: 'TypeError', code: 'native_bad_call' });
  t.equal(toHexString(typed.subarray(0, 32)), '00'.repeat(32), 'the scalar wiped when an argument is not an array');
});
