import { createNobleProvider } from '../crypto/noble.ts';
import { seededRandom } from '../crypto/seeded-random.ts';
import { toB64u } from '../encoding/base64url.ts';
import { toHex } from '../encoding/bytes.ts';
import { signDidDocument } from './did-document.ts';
import { generateIdentity } from './identity.ts';
import { createOneTimePrekeys, createPqOneTimePrekeys, createPrekeyBundle } from './prekeys.ts';
import { DOMAINS, signingInput, signObject } from './signing.ts';

/**
 * Golden vectors for identity (contracts/vectors/identity.json), derived from fixed seeds with
 * the reference provider: DIDs and their did:key forms, signed DID documents, a sample object
 * signed under EVERY domain, prekey bundles with and without an ML-KEM key, one-time prekeys.
 * runtime/identity/golden.test.ts re-verifies every entry with both providers.
 */
export const IDENTITY_VECTOR_NOW = 1_767_225_600_000; // 2026-01-01T00:00:00Z, in ms
export const IDENTITY_VECTOR_EXP = IDENTITY_VECTOR_NOW + 30 * 24 * 3600 * 1000;

/** A sample object with nested values, non-ASCII text and key order that JCS must fix. */
export const SAMPLE_OBJECT = {
  v: 1,
  z: 'last',
  a: { b: [1, -2, 9007199254740991], c: null, d: true },
  text: 'héllo 🌍',
  sig: 'this field is removed before signing',
};

export function identityVectors(): unknown {
  const crypto = createNobleProvider({ random: seededRandom('talos/v1/golden/identity') });
  const identities = ['alice', 'bob', 'carol'].map((name) => {
    const sigSeed = crypto.randomBytes(32);
    const dhSecret = crypto.randomBytes(32);
    const id = generateIdentity(crypto, { sigSeed, dhSecret });
    return { name, id, sigSeed, dhSecret };
  });
  const alice = identities[0]!.id;

  const signatures = Object.values(DOMAINS).map((domain) => ({
    domain,
    signer: alice.did,
    object: SAMPLE_OBJECT,
    signing_input_hex: toHex(signingInput(domain, SAMPLE_OBJECT)),
    sig: signObject(crypto, alice.sig.secretKey, domain, SAMPLE_OBJECT).sig,
  }));

  const bundles = [false, true].map((withPq) => {
    const { bundle, secrets } = createPrekeyBundle(crypto, alice, { spkId: withPq ? 2 : 1, exp: IDENTITY_VECTOR_EXP, withPq });
    return {
      name: withPq ? 'pqxdh' : 'x3dh',
      now: IDENTITY_VECTOR_NOW,
      bundle,
      spk_secret: toB64u(secrets.spk.secretKey),
      ...(secrets.pqspk ? { pqspk_seed: toB64u(secrets.pqspk.seed) } : {}),
    };
  });

  const otk = createOneTimePrekeys(crypto, { startId: 10, count: 2 });
  const pqOtk = createPqOneTimePrekeys(crypto, alice, { startId: 20, count: 1 });

  return {
    description:
      'Talos identity golden vectors (contracts/SPEC.md sections 3 and 4). Secrets are base64url; seeds are fixed, never use them.',
    identities: identities.map(({ name, id, sigSeed, dhSecret }) => ({
      name,
      ed25519_seed: toB64u(sigSeed),
      x25519_secret: toB64u(dhSecret),
      ed25519_pub: toB64u(id.sig.publicKey),
      x25519_pub: toB64u(id.dh.publicKey),
      did: id.did,
      did_key: id.did.replace('did:talos:', 'did:key:'),
      did_document: signDidDocument(crypto, id),
    })),
    signatures,
    prekey_bundles: bundles,
    one_time_prekeys: otk.prekeys.map((prekey, i) => ({ owner: alice.did, prekey, secret: toB64u(otk.secrets[i]!.secretKey) })),
    pq_one_time_prekeys: pqOtk.prekeys.map((prekey, i) => ({ owner: alice.did, prekey, seed: toB64u(pqOtk.secrets[i]!.seed) })),
  };
}
