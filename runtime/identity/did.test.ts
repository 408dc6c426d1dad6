import t, { type Test } from 'tap';
import { base58 } from '@scure/base';
import fc from 'fast-check';
import { providers } from '../crypto/index.ts';
import { fromHex } from '../encoding/bytes.ts';
import { IdentityError } from '../errors.ts';
import { didFromPublicKey, didOfDerivedKey, isDid, normalizeDid, publicKeyFromDid } from './did.ts';
import { decodeMultikey, encodeMultikey } from './multikey.ts';

/**
 * Ed25519 test vectors of the did:key method, copied value for value from
 * w3c-ccg/did-method-key, test-vectors/ed25519-x25519.json (commit e7839a8e1ce1e17ff18bc0c95600753604efb1fe,
 * https://github.com/w3c-ccg/did-method-key/blob/main/test-vectors/ed25519-x25519.json).
 * `seed` is the Ed25519 seed, `ed` the verification key (publicKeyBase58), `x`/`xId` the
 * X25519 key-agreement key (publicKeyBase58) and its multibase id, which exercise our 0xec01
 * multikey encoding.
 */
const DID_KEY_VECTORS = [
  {
    did: 'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp',
    seed: '0000000000000000000000000000000000000000000000000000000000000000',
    ed: '4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS',
    x: '7By6kV2t2d188odEM4ExAve1UithKT6dLva4dwsDT3ak',
    xId: 'z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW',
  },
  {
    did: 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG',
    seed: '0000000000000000000000000000000000000000000000000000000000000001',
    ed: '6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt',
    x: 'FcoNC5NqP9CePWbhfz95iHaEsCjGkZUioK9Ck7Qiw286',
    xId: 'z6LSrHyXiPBhUbvPUtyUCdf32sniiMGPTAesgHrtEa4FePtr',
  },
  {
    did: 'did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf',
    seed: '0000000000000000000000000000000000000000000000000000000000000002',
    ed: '8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH',
    x: 'A5fe37PAxhX5WNKngBpGHhC1KpNE7nwbK9oX2tqwxYxU',
    xId: 'z6LSkkqoZRC34AEpbkhZCqLDcHQVAxuLpQ7kC8XCXMVUfvjE',
  },
  {
    did: 'did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ',
    seed: '0000000000000000000000000000000000000000000000000000000000000003',
    ed: 'HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2',
    x: '7ocvdvQinfqtyQ3Dh9aA7ggoVCQkmfaoueZazHETDv3B',
    xId: 'z6LSiUo6AEDat8Ze4nQzDo67SGuHLLwsUGkxndHGUjsywHow',
  },
  {
    did: 'did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL',
    seed: '0000000000000000000000000000000000000000000000000000000000000004',
    ed: 'J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x',
    x: 'FbQtKTG6FjWSeYZyowWYv2KBcCbwmHqH6HUuxdJ4xkwP',
    xId: 'z6LSrGb3qm4xMCEBjvwkLb2WEcXfTM94Tu1RyGCbT5wbg8i9',
  },
];

t.test('did:key Ed25519 vectors parse to the same key under did:talos', async (t) => {
  for (const v of DID_KEY_VECTORS) {
    const key = base58.decode(v.ed);
    const talos = v.did.replace('did:key:', 'did:talos:');
    t.same(publicKeyFromDid(v.did), key, `${v.did} (did:key form)`);
    t.same(publicKeyFromDid(talos), key, `${talos} (did:talos form)`);
    t.equal(didFromPublicKey(key), talos, 'encoding the key gives the did:talos form');
    t.equal(normalizeDid(v.did), talos, 'did:key normalizes to did:talos');
    t.ok(isDid(talos));
    t.notOk(isDid(v.did), 'isDid accepts only the normalized form');
    for (const crypto of providers()) {
      t.same(crypto.ed25519PublicKey(fromHex(v.seed)), key, `${crypto.name}: seed gives the vector's key`);
    }
    t.equal(encodeMultikey('x25519', base58.decode(v.x)), v.xId, 'X25519 multikey (0xec01) matches did:key');
    t.same(decodeMultikey('x25519', v.xId), base58.decode(v.x));
    t.equal(encodeMultikey('ed25519', key), v.did.slice('did:key:'.length));
  }
});

function refusedWith(t: Test, did: unknown, code: string, why: string) {
  let caught: unknown;
  try {
    publicKeyFromDid(did as string);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof IdentityError, `${why}: IdentityError`);
  t.equal((caught as IdentityError).code, code, `${why}: ${code}`);
}

t.test('malformed DIDs are refused with a typed error', async (t) => {
  const good = DID_KEY_VECTORS[0]!.did.replace('did:key:', 'did:talos:');
  const id = good.slice('did:talos:'.length);
  // wrong prefix
  refusedWith(t, `did:web:${id}`, 'did_bad_method', 'another method');
  refusedWith(t, `did:TALOS:${id}`, 'did_bad_method', 'method is case-sensitive');
  refusedWith(t, `DID:talos:${id}`, 'did_bad_method', 'scheme is case-sensitive');
  refusedWith(t, id, 'did_bad_method', 'bare multibase');
  refusedWith(t, `did:talos:${id.slice(1)}`, 'did_bad_multibase', 'missing multibase z');
  refusedWith(t, `did:talos:m${id.slice(1)}`, 'did_bad_multibase', 'another multibase');
  refusedWith(t, 42, 'did_malformed', 'not a string');
  // wrong length
  refusedWith(t, 'did:talos:z', 'did_bad_encoding', 'empty id');
  refusedWith(t, `did:talos:z${base58.encode(new Uint8Array([0xed, 0x01, ...new Uint8Array(31).fill(1)]))}`, 'did_bad_length', '33 bytes');
  refusedWith(t, `did:talos:z1${id.slice(1)}`, 'did_bad_length', 'a leading zero byte');
  // Dropping a character still decodes to 34 bytes, but with another multicodec prefix.
  refusedWith(t, good.slice(0, -1), 'did_bad_multicodec', 'one character short');
  refusedWith(t, `did:talos:z${base58.encode(new Uint8Array([0xed, 0x01, ...new Uint8Array(33).fill(1)]))}`, 'did_bad_length', '35 bytes');
  refusedWith(t, `did:talos:z${'2'.repeat(60)}`, 'did_bad_encoding', 'far too long');
  // wrong alphabet
  for (const bad of ['0', 'O', 'I', 'l', '+', '/', ' ', '-', '_', 'é']) {
    refusedWith(t, `did:talos:z${id.slice(1, 10)}${bad}${id.slice(11)}`, 'did_bad_encoding', `character ${JSON.stringify(bad)}`);
  }
  refusedWith(t, `${good}\n`, 'did_bad_encoding', 'trailing newline');
  // wrong multicodec: X25519 (0xec01), secp256k1 (0xe701), and a truncated varint
  const key = base58.decode(DID_KEY_VECTORS[0]!.ed);
  for (const prefix of [[0xec, 0x01], [0xe7, 0x01], [0xed, 0x00], [0x00, 0xed]]) {
    refusedWith(t, `did:talos:z${base58.encode(new Uint8Array([...prefix, ...key]))}`, 'did_bad_multicodec', `multicodec ${prefix}`);
  }
  refusedWith(t, `did:key:${DID_KEY_VECTORS[0]!.xId}`, 'did_bad_multicodec', 'did:key of an X25519 key');
  // valid encoding of an invalid key: small order (identity point) and non-canonical y
  const identityPoint = new Uint8Array(32);
  identityPoint[0] = 1;
  refusedWith(t, `did:talos:z${base58.encode(new Uint8Array([0xed, 0x01, ...identityPoint]))}`, 'did_bad_key', 'small-order key');
  const nonCanonical = new Uint8Array(32).fill(0xff);
  nonCanonical[31] = 0x7f;
  nonCanonical[0] = 0xee; // y = p + 1, non-canonical encoding of y = 1
  refusedWith(t, `did:talos:z${base58.encode(new Uint8Array([0xed, 0x01, ...nonCanonical]))}`, 'did_bad_key', 'non-canonical key');
  t.throws(() => didFromPublicKey(identityPoint), { code: 'did_bad_key' });
});

t.test('every valid key round-trips, and every did:talos matches the schema DID pattern', async (t) => {
  const [crypto] = providers();
  const pattern = /^did:talos:z6Mk[1-9A-HJ-NP-Za-km-z]{44}$/;
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
      const key = crypto!.ed25519PublicKey(seed);
      const did = didFromPublicKey(key);
      return pattern.test(did) && Buffer.from(publicKeyFromDid(did)).equals(Buffer.from(key)) &&
        normalizeDid(did.replace('did:talos:', 'did:key:')) === did;
    }),
    { numRuns: 200 },
  );
  t.pass('200 random keys');
});

t.test('multikey decoding refuses the wrong type, length and alphabet', async (t) => {
  const v = DID_KEY_VECTORS[0]!;
  t.throws(() => decodeMultikey('x25519', v.did.slice('did:key:'.length)), { code: 'multikey_bad_multicodec' });
  t.throws(() => decodeMultikey('ed25519', v.xId), { code: 'multikey_bad_multicodec' });
  t.throws(() => decodeMultikey('x25519', `z${base58.encode(new Uint8Array([0xec, 0x01, ...new Uint8Array(33)]))}`), { code: 'multikey_bad_length' });
  t.throws(() => decodeMultikey('x25519', `${v.xId.slice(0, -1)}0`), { code: 'multikey_bad_encoding' });
  t.throws(() => decodeMultikey('x25519', v.xId.slice(1)), { code: 'multikey_bad_encoding' });
  t.throws(() => encodeMultikey('x25519', new Uint8Array(31)), { code: 'multikey_bad_length' });
});

t.test('a remembered DID hands out a fresh key each time: a caller cannot change the next answer', async (t) => {
  const [provider] = providers();
  const key = provider!.ed25519PublicKey(new Uint8Array(32).fill(7));
  const did = didFromPublicKey(key);
  const first = publicKeyFromDid(did);
  first.fill(0);
  t.same(publicKeyFromDid(did), key, 'the second parse is unchanged');
  key.fill(1);
  t.equal(didFromPublicKey(provider!.ed25519PublicKey(new Uint8Array(32).fill(7))), did, 'the memo is not keyed by a mutable array');
});

t.test('a key the provider derived names its DID without the curve check, and the DID parses back to it', async (t) => {
  const [crypto] = providers();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
      const key = crypto!.ed25519PublicKey(seed);
      const did = didOfDerivedKey(key);
      return did === `did:talos:z${base58.encode(new Uint8Array([0xed, 0x01, ...key]))}` && Buffer.from(publicKeyFromDid(did)).equals(Buffer.from(key)) && didFromPublicKey(key) === did;
    }),
    { numRuns: 200 },
  );
  t.throws(() => didOfDerivedKey(new Uint8Array(31)), { code: 'did_bad_key' }, 'not 32 bytes: refused');
  // The checked path still refuses what only the curve check catches (a small-order point).
  t.throws(() => didFromPublicKey(new Uint8Array(32)), { code: 'did_bad_key' });
});

t.test("a DID made from a caller's Buffer keeps its own copy of the key: reusing the Buffer changes nothing", async (t) => {
  const [provider] = providers();
  const key = provider!.ed25519PublicKey(new Uint8Array(32).fill(42));
  for (const make of [didFromPublicKey, didOfDerivedKey]) {
    const buf = Buffer.from(provider!.ed25519PublicKey(new Uint8Array(32).fill(make === didFromPublicKey ? 42 : 44)));
    const expected = new Uint8Array(buf);
    const did = make(buf);
    buf.fill(0); // a small-order point: the memo must never hand it out
    // Compared as hex: tap's t.same passes a Buffer against any Uint8Array of its length.
    t.equal(Buffer.from(publicKeyFromDid(did)).toString('hex'), Buffer.from(expected).toString('hex'), `${make.name}: the DID still parses to its own key`);
  }
  t.same(publicKeyFromDid(didFromPublicKey(key)), key);
  t.throws(() => didOfDerivedKey([...key] as unknown as Uint8Array), { code: 'did_bad_key' }, 'not a Uint8Array: refused, never remembered');
});
