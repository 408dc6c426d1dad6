import t from 'tap';
import { providers } from '../crypto/index.ts';
import { concatBytes, fromHex, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { DOMAINS, signingInput, signObject, verifyObject, type Domain } from './signing.ts';

const all = providers();
const domains = Object.values(DOMAINS) as Domain[];
const sample = { v: 1, b: 'two', a: [1, { z: null, y: true }], sig: 'ignored' };
const seed = fromHex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');

t.test('the signing input is utf8(domain) || 0x00 || JCS(obj without sig)', async (t) => {
  for (const domain of domains) {
    const expected = concatBytes(utf8(domain), new Uint8Array([0]), utf8('{"a":[1,{"y":true,"z":null}],"b":"two","v":1}'));
    t.same(signingInput(domain, sample), expected, domain);
  }
  t.same(Object.keys(DOMAINS).length, 6, 'the five domains of PROTOCOL.md section 1 and session-identity (SPEC)');
  t.same(new Set(domains).size, domains.length, 'domains are distinct');
});

t.test('a signature made under one domain never verifies under another', async (t) => {
  for (const signer of all) {
    const { publicKey, secretKey } = signer.ed25519KeyPair(seed);
    for (const domain of domains) {
      const signed = signObject(signer, secretKey, domain, sample);
      for (const verifier of all) {
        for (const other of domains) {
          t.equal(
            verifyObject(verifier, publicKey, other, signed),
            other === domain,
            `${signer.name}→${verifier.name}: signed ${domain}, verified as ${other}`,
          );
        }
      }
    }
  }
});

t.test('the signature covers every field and only this key', async (t) => {
  for (const crypto of all) {
    const alice = crypto.ed25519KeyPair(seed);
    const bob = crypto.ed25519KeyPair(new Uint8Array(32).fill(2));
    const signed = signObject(crypto, alice.secretKey, DOMAINS.capability, { v: 1, n: 5, s: 'x' });
    t.ok(verifyObject(crypto, alice.publicKey, DOMAINS.capability, signed));
    t.ok(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { s: 'x', sig: signed.sig, n: 5, v: 1 }), 'key order is irrelevant (JCS)');
    t.notOk(verifyObject(crypto, bob.publicKey, DOMAINS.capability, signed), 'another key');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, n: 6 }), 'changed field');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, extra: 1 }), 'added field');
    const { s: _s, ...dropped } = signed;
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, dropped), 'removed field');
    const { sig: _sig, ...unsigned } = signed;
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, unsigned), 'no sig');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, sig: signed.sig + '=' }), 'padded sig');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, sig: signed.sig.slice(0, 43) }), 'short sig');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, sig: 5 }), 'sig not a string');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, f: 1.5 }), 'unsignable content is false, not a throw');
    t.notOk(verifyObject(crypto, alice.publicKey, DOMAINS.capability, { ...signed, sig: toB64u(new Uint8Array(64)) }), 'zero sig');
  }
});

t.test('signatures are deterministic and identical across providers', async (t) => {
  const sigs = all.map((c) => signObject(c, seed, DOMAINS.revocation, sample).sig);
  t.equal(new Set(sigs).size, 1);
});
