import t from 'tap';
import { createPrivateKey, createPublicKey, diffieHellman, randomBytes } from 'node:crypto';
import { NATIVE_ENV, nativeScratchIsWiped } from './native-addon.ts';
import { nativeX25519, nativeX25519Status } from './native-x25519.ts';
import { hex, toHexString, wycheproof } from './vector-files.ts';

// The native X25519 path (native/x25519.c) against the published vectors and node:crypto's own
// X25519, and its hygiene. The provider-level tests (known-answers, wycheproof, agreement) run
// the node provider, which takes this path whenever it is active.

t.test('the path is in use (npm ci builds it; TALOS_NATIVE=0 is the only way out)', async (t) => {
  if (process.env[NATIVE_ENV] === '0') {
    t.equal(nativeX25519Status.active, false);
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
