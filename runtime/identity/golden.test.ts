import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { providers } from '../crypto/index.ts';
import { fromB64u } from '../encoding/base64url.ts';
import { concatBytes, fromHex, utf8 } from '../encoding/bytes.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { verifyDidDocument } from './did-document.ts';
import { didFromPublicKey, normalizeDid, publicKeyFromDid } from './did.ts';
import { parseOneTimePrekey, verifyPqOneTimePrekey, verifyPrekeyBundle } from './prekeys.ts';
import { DOMAINS, verifyObject, type Domain } from './signing.ts';
import { identityVectors } from './golden.ts';
import { serializeVectors } from '../../contracts/vectors/registry.ts';

// Re-derives the committed contracts/vectors/identity.json with BOTH providers (independently
// of the generator, which uses noble), and checks the generator still reproduces the file.
const FILE = join(dirname(fileURLToPath(import.meta.url)), '../../contracts/vectors/identity.json');
const text = readFileSync(FILE, 'utf8');
const V = JSON.parse(text);

t.test('the generator reproduces the committed file', async (t) => {
  t.equal(serializeVectors(identityVectors()), text);
});

for (const crypto of providers()) {
  t.test(`${crypto.name}: identities, DIDs and DID documents`, async (t) => {
    t.equal(V.identities.length, 3);
    for (const v of V.identities) {
      const pub = crypto.ed25519PublicKey(fromB64u(v.ed25519_seed, 32));
      t.same(pub, fromB64u(v.ed25519_pub, 32), `${v.name}: Ed25519 key from seed`);
      t.same(crypto.x25519PublicKey(fromB64u(v.x25519_secret, 32)), fromB64u(v.x25519_pub, 32), `${v.name}: X25519 key from secret`);
      t.equal(didFromPublicKey(pub), v.did);
      t.equal(v.did_key, v.did.replace('did:talos:', 'did:key:'));
      t.same(publicKeyFromDid(v.did_key), pub, 'did:key form names the same key');
      t.equal(normalizeDid(v.did_key), v.did);
      const doc = verifyDidDocument(crypto, v.did_document);
      t.same(doc.x25519, fromB64u(v.x25519_pub, 32));
    }
  });

  t.test(`${crypto.name}: the sample object under every domain`, async (t) => {
    const domains = Object.values(DOMAINS) as Domain[];
    t.same(V.signatures.map((s: { domain: string }) => s.domain), domains, 'one vector per domain, in DOMAINS order');
    for (const s of V.signatures) {
      const key = publicKeyFromDid(s.signer);
      const { sig: _sig, ...unsigned } = s.object;
      t.same(fromHex(s.signing_input_hex), concatBytes(utf8(s.domain), new Uint8Array([0]), jcsBytes(unsigned)), `${s.domain}: signing input`);
      for (const other of domains) {
        t.equal(verifyObject(crypto, key, other, { ...s.object, sig: s.sig }), other === s.domain, `${s.domain} verified as ${other}`);
      }
    }
  });

  t.test(`${crypto.name}: prekey bundles and one-time prekeys`, async (t) => {
    t.same(V.prekey_bundles.map((b: { name: string }) => b.name), ['x3dh', 'pqxdh']);
    for (const b of V.prekey_bundles) {
      const v = verifyPrekeyBundle(crypto, b.bundle, b.now);
      t.same(crypto.x25519PublicKey(fromB64u(b.spk_secret, 32)), v.spk.pub, `${b.name}: spk secret`);
      if (b.pqspk_seed) t.same(crypto.mlkemKeyPair(fromB64u(b.pqspk_seed, 64)).publicKey, v.pqspk!.pub, `${b.name}: ML-KEM seed`);
      else t.equal(v.pqspk, undefined);
      t.throws(() => verifyPrekeyBundle(crypto, b.bundle, b.bundle.exp), { code: 'bundle_expired' });
    }
    for (const o of V.one_time_prekeys) {
      t.same(crypto.x25519PublicKey(fromB64u(o.secret, 32)), parseOneTimePrekey(o.prekey).pub);
    }
    for (const o of V.pq_one_time_prekeys) {
      const v = verifyPqOneTimePrekey(crypto, o.owner, o.prekey);
      t.same(crypto.mlkemKeyPair(fromB64u(o.seed, 64)).publicKey, v.pub);
    }
  });
}
