import t from 'tap';
import { base58 } from '@scure/base';
import { providers } from '../crypto/index.ts';
import { IdentityError } from '../errors.ts';
import { isValid } from '../../contracts/validate.ts';
import { generateIdentity } from './identity.ts';
import { resolveDid, signDidDocument, verifyDidDocument } from './did-document.ts';
import { DOMAINS, signObject } from './signing.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof IdentityError ? err.code : `not IdentityError: ${String(err)}`;
  }
  return undefined;
}

// did:key test vector (w3c-ccg/did-method-key test-vectors/ed25519-x25519.json, seed 0): its
// X25519 key, written as a Multikey, is z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW.
const VECTOR_DID = 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp';
const VECTOR_X25519 = base58.decode('7By6kV2t2d188odEM4ExAve1UithKT6dLva4dwsDT3ak');

t.test('resolve: deterministic W3C document from the DID (and the X25519 key when known)', async (t) => {
  const did = VECTOR_DID.replace('did:key:', 'did:talos:');
  const ed = `${did}#z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp`;
  const x = `${did}#z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW`;
  t.same(resolveDid(VECTOR_DID), {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
    id: did,
    verificationMethod: [{ id: ed, type: 'Multikey', controller: did, publicKeyMultibase: 'z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp' }],
    authentication: [ed],
    assertionMethod: [ed],
    capabilityInvocation: [ed],
    capabilityDelegation: [ed],
  });
  const full = resolveDid(did, { x25519: VECTOR_X25519 });
  t.same(full.verificationMethod[1], { id: x, type: 'Multikey', controller: did, publicKeyMultibase: 'z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW' });
  t.same(full.keyAgreement, [x]);
  t.ok(isValid('did-document', full));
  t.equal(code(() => resolveDid('did:web:example.com')), 'did_bad_method');
  const topBit = VECTOR_X25519.slice();
  topBit[31] = topBit[31]! | 0x80;
  t.equal(code(() => resolveDid(did, { x25519: topBit })), 'did_document_bad_key');
});

for (const crypto of providers()) {
  const alice = generateIdentity(crypto);
  const bob = generateIdentity(crypto);

  t.test(`${crypto.name}: signed DID documents`, async (t) => {
    const doc = signDidDocument(crypto, alice);
    for (const verifier of providers()) {
      const v = verifyDidDocument(verifier, doc);
      t.equal(v.did, alice.did);
      t.same(v.ed25519, alice.sig.publicKey);
      t.same(v.x25519, alice.dh.publicKey);
    }
    const { sig: _sig, ...unsigned } = doc;
    t.equal(code(() => verifyDidDocument(crypto, unsigned)), 'did_document_unsigned');
    t.equal(verifyDidDocument(crypto, unsigned, { requireSignature: false }).did, alice.did);
    t.equal(code(() => verifyDidDocument(crypto, { ...doc, sig: signDidDocument(crypto, bob).sig })), 'did_document_bad_signature');
    const otherDomain = signObject(crypto, alice.sig.secretKey, DOMAINS.prekeyBundle, unsigned);
    t.equal(code(() => verifyDidDocument(crypto, otherDomain)), 'did_document_bad_signature', 'wrong domain');
    // Swapping in Bob's X25519 key (re-signed by Alice is fine; unsigned swap is not).
    const swapped = resolveDid(alice.did, { x25519: bob.dh.publicKey });
    t.equal(code(() => verifyDidDocument(crypto, { ...swapped, sig: doc.sig })), 'did_document_bad_signature');
    // Structurally valid but not what the DID resolves to: a second authentication key.
    const mixed = { ...unsigned, authentication: [doc.verificationMethod[1]!.id] };
    t.equal(code(() => verifyDidDocument(crypto, signObject(crypto, alice.sig.secretKey, DOMAINS.didDocument, mixed))), 'did_document_mismatch');
    const bobsMethod = resolveDid(bob.did).verificationMethod[0];
    const foreign = { ...unsigned, verificationMethod: [bobsMethod, unsigned.verificationMethod[1]] };
    t.equal(code(() => verifyDidDocument(crypto, foreign, { requireSignature: false })), 'did_document_mismatch');
    t.equal(code(() => verifyDidDocument(crypto, { ...doc, service: [] })), 'did_document_malformed');
    t.equal(code(() => signDidDocument(crypto, bob, doc)), 'did_document_mismatch', 'only the subject signs');
  });
}
