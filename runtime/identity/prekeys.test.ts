import t from 'tap';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { providers } from '../crypto/index.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { IdentityError } from '../errors.ts';
import { generateIdentity } from './identity.ts';
import { isCanonicalX25519PublicKey, isValidMlKem768PublicKey } from './key-checks.ts';
import {
  createOneTimePrekeys,
  createPqOneTimePrekeys,
  createPrekeyBundle,
  parseOneTimePrekey,
  signPrekeyBundle,
  verifyPqOneTimePrekey,
  verifyPrekeyBundle,
  type PrekeyBundle,
} from './prekeys.ts';
import { createMemoryPrekeyStore } from './prekey-store.ts';
import { DOMAINS, signObject } from './signing.ts';

const NOW = 1_800_000_000_000;
const EXP = NOW + 7 * 24 * 3600 * 1000;

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof IdentityError ? err.code : `not IdentityError: ${String(err)}`;
  }
  return undefined;
}

/** An X25519 key with top bit set, and the 19 non-canonical values p … 2^255 − 1. */
const TOP_BIT = (() => {
  const k = new Uint8Array(32).fill(9);
  k[31] = 0x89;
  return k;
})();
const u = (lowByte: number) => {
  const k = new Uint8Array(32).fill(0xff);
  k[0] = lowByte;
  k[31] = 0x7f;
  return k;
};

t.test('X25519 canonical check: top bit and u < p', async (t) => {
  t.notOk(isCanonicalX25519PublicKey(TOP_BIT));
  for (let low = 0xed; low <= 0xff; low++) t.notOk(isCanonicalX25519PublicKey(u(low)), `u = p + ${low - 0xed}`);
  t.ok(isCanonicalX25519PublicKey(u(0xec)), 'u = p − 1');
  const almost = u(0xff);
  almost[15] = 0xfe;
  t.ok(isCanonicalX25519PublicKey(almost), 'below p in a middle byte');
  t.ok(isCanonicalX25519PublicKey(new Uint8Array(32)), 'zero is canonical (the DH itself refuses it)');
  t.notOk(isCanonicalX25519PublicKey(new Uint8Array(31)));
});

t.test('ML-KEM-768 modulus check', async (t) => {
  const { publicKey } = ml_kem768.keygen(new Uint8Array(64).fill(5));
  t.ok(isValidMlKem768PublicKey(publicKey));
  for (const [i, mutate] of [
    [0, (k: Uint8Array) => ((k[0] = 0x01), (k[1] = (k[1]! & 0xf0) | 0x0d))], // first coefficient 0xd01 = 3329
    [1, (k: Uint8Array) => ((k[1] = (k[1]! & 0x0f) | 0xf0), (k[2] = 0xff))], // second coefficient 4095
    [2, (k: Uint8Array) => ((k[1149] = 0xff), (k[1150] = 0xff), (k[1151] = 0xff))], // last two coefficients
  ] as const) {
    const bad = publicKey.slice();
    mutate(bad);
    t.notOk(isValidMlKem768PublicKey(bad), `coefficient >= q (${i})`);
    for (const crypto of providers()) {
      t.throws(() => crypto.mlkemEncapsulate(bad), { code: 'mlkem_bad_public_key' }, `${crypto.name} agrees`);
    }
  }
  const rho = publicKey.slice();
  rho.fill(0xff, 1152); // rho is not range-checked
  t.ok(isValidMlKem768PublicKey(rho));
  t.notOk(isValidMlKem768PublicKey(publicKey.slice(1)));
});

for (const crypto of providers()) {
  const alice = generateIdentity(crypto);
  const bob = generateIdentity(crypto);

  t.test(`${crypto.name}: a bundle verifies, with and without an ML-KEM key`, async (t) => {
    for (const withPq of [false, true]) {
      const { bundle, secrets } = createPrekeyBundle(crypto, alice, { spkId: 7, exp: EXP, withPq });
      t.equal(bundle.did, alice.did);
      t.same(Object.keys(bundle).sort(), withPq ? ['did', 'exp', 'ik_dh', 'pqspk', 'sig', 'spk', 'v'] : ['did', 'exp', 'ik_dh', 'sig', 'spk', 'v']);
      for (const verifier of providers()) {
        const v = verifyPrekeyBundle(verifier, bundle, NOW);
        t.same(v.identityKey, alice.sig.publicKey);
        t.same(v.ikDh, alice.dh.publicKey);
        t.same(v.spk, { id: 7, pub: secrets.spk.publicKey });
        t.ok(bytesEqual(verifier.x25519PublicKey(secrets.spk.secretKey), v.spk.pub), 'secret half matches');
        if (withPq) {
          t.same(v.pqspk, { id: 7, pub: secrets.pqspk!.publicKey });
          t.same(verifier.mlkemKeyPair(secrets.pqspk!.seed).publicKey, v.pqspk!.pub, 'seed regenerates the ML-KEM key');
        } else t.equal(v.pqspk, undefined);
      }
    }
    const { bundle } = createPrekeyBundle(crypto, alice, { spkId: 1, exp: EXP, withPq: true, pqspkId: 99 });
    t.equal(bundle.pqspk!.id, 99);
  });

  t.test(`${crypto.name}: bundle refusals name their cause`, async (t) => {
    const { bundle } = createPrekeyBundle(crypto, alice, { spkId: 1, exp: EXP, withPq: true });
    const resign = (b: Omit<PrekeyBundle, 'sig'>) => signPrekeyBundle(crypto, alice, b);
    t.equal(code(() => verifyPrekeyBundle(crypto, bundle, EXP - 1)), undefined, 'valid until exp');
    t.equal(code(() => verifyPrekeyBundle(crypto, bundle, EXP)), 'bundle_expired', 'now == exp is expired');
    t.equal(code(() => verifyPrekeyBundle(crypto, bundle, EXP + 1)), 'bundle_expired');
    t.equal(code(() => verifyPrekeyBundle(crypto, { ...bundle, extra: 1 }, NOW)), 'bundle_malformed');
    t.equal(code(() => verifyPrekeyBundle(crypto, { ...bundle, v: 2 }, NOW)), 'bundle_malformed');
    t.equal(code(() => verifyPrekeyBundle(crypto, null, NOW)), 'bundle_malformed');
    t.equal(code(() => verifyPrekeyBundle(crypto, { ...bundle, exp: EXP + 1 }, NOW)), 'bundle_bad_signature', 'changed exp');
    t.equal(code(() => verifyPrekeyBundle(crypto, { ...bundle, spk: { ...bundle.spk, id: 2 } }, NOW)), 'bundle_bad_signature', 'changed spk id');
    t.equal(code(() => verifyPrekeyBundle(crypto, { ...bundle, did: bob.did }, NOW)), 'bundle_bad_signature', "another agent's DID");
    const { pqspk: _pq, ...stripped } = bundle;
    t.equal(code(() => verifyPrekeyBundle(crypto, stripped, NOW)), 'bundle_bad_signature', 'pq key stripped (downgrade)');
    // Signed under another domain: same key, same body.
    const { sig: _sig, ...body } = bundle;
    const wrongDomain = signObject(crypto, alice.sig.secretKey, DOMAINS.didDocument, body);
    t.equal(code(() => verifyPrekeyBundle(crypto, wrongDomain, NOW)), 'bundle_bad_signature', 'wrong domain');
    // Properly signed by the owner, but with non-canonical keys.
    t.equal(code(() => verifyPrekeyBundle(crypto, resign({ ...body, ik_dh: toB64u(TOP_BIT) }), NOW)), 'bundle_bad_key', 'ik_dh top bit');
    t.equal(code(() => verifyPrekeyBundle(crypto, resign({ ...body, spk: { id: 1, pub: toB64u(u(0xed)) } }), NOW)), 'bundle_bad_key', 'spk = p');
    const badPq = fromB64u(body.pqspk!.pub);
    badPq[0] = 0xff;
    badPq[1] = badPq[1]! | 0x0f;
    t.equal(code(() => verifyPrekeyBundle(crypto, resign({ ...body, pqspk: { id: 1, pub: toB64u(badPq) } }), NOW)), 'bundle_bad_key', 'pq modulus');
    // A small-order Ed25519 key cannot be written as a DID at all; a did:key form is refused by the schema.
    t.equal(code(() => verifyPrekeyBundle(crypto, { ...bundle, did: bundle.did.replace('did:talos:', 'did:key:') }, NOW)), 'bundle_malformed');
    t.equal(code(() => verifyPrekeyBundle(crypto, bundle, 1.5)), 'prekey_bad_time');
    t.equal(code(() => signPrekeyBundle(crypto, bob, body)), 'bundle_bad_did', 'only the owner signs');
  });

  t.test(`${crypto.name}: one-time prekeys`, async (t) => {
    const { prekeys, secrets } = createOneTimePrekeys(crypto, { startId: 100, count: 5 });
    t.same(prekeys.map((p) => p.id), [100, 101, 102, 103, 104]);
    for (const [i, p] of prekeys.entries()) {
      const parsed = parseOneTimePrekey(p);
      t.same(parsed.pub, secrets[i]!.publicKey);
      t.same(crypto.x25519PublicKey(secrets[i]!.secretKey), parsed.pub);
    }
    t.equal(code(() => parseOneTimePrekey({ id: 1, pub: toB64u(TOP_BIT) })), 'prekey_bad_key');
    t.equal(code(() => parseOneTimePrekey({ id: 1, pub: prekeys[0]!.pub, sig: 'x' })), 'prekey_malformed');
    t.equal(code(() => createOneTimePrekeys(crypto, { startId: 0xffffffff, count: 2 })), 'prekey_bad_id');
    t.equal(code(() => createOneTimePrekeys(crypto, { startId: 0, count: 1001 })), 'prekey_bad_count');
    t.equal(createOneTimePrekeys(crypto, { startId: 0xffffffff, count: 1 }).prekeys[0]!.id, 0xffffffff);
  });

  t.test(`${crypto.name}: one-time ML-KEM prekeys are signed over {did, id, pub}`, async (t) => {
    const { prekeys, secrets } = createPqOneTimePrekeys(crypto, alice, { startId: 1, count: 2 });
    for (const [i, p] of prekeys.entries()) {
      for (const verifier of providers()) {
        t.same(verifyPqOneTimePrekey(verifier, alice.did, p), { id: p.id, pub: secrets[i]!.publicKey });
        t.same(verifyPqOneTimePrekey(verifier, alice.did.replace('did:talos:', 'did:key:'), p).id, p.id, 'did:key form of the owner');
      }
    }
    const p = prekeys[0]!;
    t.equal(code(() => verifyPqOneTimePrekey(crypto, bob.did, p)), 'pq_prekey_bad_signature', 'claimed by another DID');
    t.equal(code(() => verifyPqOneTimePrekey(crypto, alice.did, { ...p, id: 2 })), 'pq_prekey_bad_signature', 'changed id');
    t.equal(code(() => verifyPqOneTimePrekey(crypto, alice.did, { ...p, pub: prekeys[1]!.pub })), 'pq_prekey_bad_signature', 'swapped pub');
    t.equal(code(() => verifyPqOneTimePrekey(crypto, alice.did, { id: p.id, pub: p.pub })), 'pq_prekey_malformed');
    const { sig } = signObject(crypto, alice.sig.secretKey, DOMAINS.prekeyBundle, { did: alice.did, id: p.id, pub: p.pub });
    t.equal(code(() => verifyPqOneTimePrekey(crypto, alice.did, { ...p, sig })), 'pq_prekey_bad_signature', 'wrong domain');
    const bad = fromB64u(p.pub);
    bad[0] = 0xff;
    bad[1] = bad[1]! | 0x0f;
    const badPub = toB64u(bad);
    const signedBad = signObject(crypto, alice.sig.secretKey, DOMAINS.pqPrekey, { did: alice.did, id: 9, pub: badPub });
    t.equal(code(() => verifyPqOneTimePrekey(crypto, alice.did, { id: 9, pub: badPub, sig: signedBad.sig })), 'pq_prekey_bad_key');
  });

  t.test(`${crypto.name}: the prekey store hands each one-time key out once`, async (t) => {
    const store = createMemoryPrekeyStore();
    const { secrets } = createPrekeyBundle(crypto, alice, { spkId: 3, exp: EXP, withPq: true });
    store.putSignedPrekey(secrets);
    t.equal(store.getSignedPrekey(3), secrets);
    t.equal(code(() => store.putSignedPrekey(secrets)), 'prekey_duplicate_id');
    const otk = createOneTimePrekeys(crypto, { startId: 1, count: 3 });
    store.putOneTimePrekeys(otk.secrets);
    const dup = createOneTimePrekeys(crypto, { startId: 3, count: 2 });
    t.equal(code(() => store.putOneTimePrekeys(dup.secrets)), 'prekey_duplicate_id');
    t.same(store.counts(), { signed: 1, oneTime: 3, pqOneTime: 0 }, 'a refused batch stores nothing');
    t.equal(store.takeOneTimePrekey(2), otk.secrets[1]);
    t.equal(store.takeOneTimePrekey(2), undefined, 'second take finds nothing');
    const pq = createPqOneTimePrekeys(crypto, alice, { startId: 1, count: 1 });
    store.putPqOneTimePrekeys(pq.secrets);
    t.equal(store.takePqOneTimePrekey(1), pq.secrets[0]);
    t.equal(store.takePqOneTimePrekey(1), undefined);
    t.ok(store.deleteSignedPrekey(3));
    t.same(store.counts(), { signed: 0, oneTime: 2, pqOneTime: 0 });
  });
}
