import t from 'tap';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { generateIdentity } from '../runtime/identity/identity.ts';
import type { PeerPrekeys } from '../runtime/session/bundle.ts';
import { SessionError } from '../runtime/session/errors.ts';
import { initiateHandshake, respondHandshake, type ResponderPrekeys } from '../runtime/session/handshake.ts';
import { respondHandshakeOnPool } from './handshake.ts';
import { CryptoPool } from './pool.ts';

const crypto = createCryptoProvider({ name: 'node' });
const alice = generateIdentity(crypto);
const bob = generateIdentity(crypto);
const spk = crypto.x25519KeyPair();
const opk = crypto.x25519KeyPair();
const kem = crypto.mlkemKeyPair();

/** A first message from alice to bob, with or without a one-time prekey and ML-KEM. */
function firstMessage(o: { opk: boolean; pq: boolean }) {
  const peer: PeerPrekeys = { did: bob.did, signingKey: bob.sig.publicKey, ikDh: bob.dh.publicKey, spk: { id: 1, pub: spk.publicKey } };
  const prekeys: ResponderPrekeys = { spk };
  if (o.opk) {
    peer.opk = { id: 2, pub: opk.publicKey };
    prekeys.opk = opk;
  }
  if (o.pq) {
    peer.pq = { id: 3, pub: kem.publicKey };
    prekeys.pqSeed = kem.seed;
  }
  return { sent: initiateHandshake(crypto, alice, peer), prekeys };
}

// Every handshake to the threads (no inline threshold), to compare the worker's result with inline.
const pool = new CryptoPool({ threads: 1, provider: 'node', inlineMaxItems: { 'respond-handshakes': 0 } });
t.teardown(() => pool.close());

t.test('on a worker the responder derives what the initiator did, exactly as inline', async (t) => {
  const before = { ...pool.stats };
  const modes = [
    { opk: false, pq: false, mode: 'x3dh' },
    { opk: true, pq: false, mode: 'x3dh' },
    { opk: true, pq: true, mode: 'pqxdh' },
    { opk: false, pq: true, mode: 'pqxdh' },
  ];
  for (const m of modes) {
    const { sent, prekeys } = firstMessage(m);
    const got = await respondHandshakeOnPool(pool, bob, alice.did, alice.sig.publicKey, sent.fields, prekeys);
    t.same(got, respondHandshake(crypto, bob, alice.did, alice.sig.publicKey, sent.fields, prekeys), `${m.mode} opk=${m.opk}: same as inline`);
    t.equal(got.mode, m.mode);
    t.same([got.sk, got.sid, got.ad], [sent.sk, sent.sid, sent.ad], 'the initiator derived the same secrets');
  }
  t.equal(pool.stats.poolBatches - before.poolBatches, modes.length, 'each ran on the worker');
  t.equal(pool.stats.inlineBatches, before.inlineBatches);
});

t.test('refusals come back as the same SessionError', async (t) => {
  const { sent, prekeys } = firstMessage({ opk: true, pq: true });
  const mallory = generateIdentity(crypto);
  // alice's X25519 key presented under mallory's DID: its certificate does not verify.
  await t.rejects(respondHandshakeOnPool(pool, bob, mallory.did, mallory.sig.publicKey, sent.fields, prekeys), { code: 'bad_identity', constructor: SessionError });
  t.throws(() => respondHandshake(crypto, bob, mallory.did, mallory.sig.publicKey, sent.fields, prekeys), { code: 'bad_identity' });
  const { pqSeed: _seed, ...noKem } = prekeys;
  await t.rejects(respondHandshakeOnPool(pool, bob, alice.did, alice.sig.publicKey, sent.fields, noKem), { code: 'unknown_prekey', constructor: SessionError });
});

t.test('default thresholds: a lone handshake inline, a burst on the threads; a closed pool falls back inline', async (t) => {
  const gathered = new CryptoPool({ threads: 1, provider: 'node' });
  const { sent, prekeys } = firstMessage({ opk: true, pq: true });
  const expected = respondHandshake(crypto, bob, alice.did, alice.sig.publicKey, sent.fields, prekeys);
  t.same(await respondHandshakeOnPool(gathered, bob, alice.did, alice.sig.publicKey, sent.fields, prekeys), expected);
  t.same(gathered.stats, { inlineBatches: 1, poolBatches: 0 }, 'lone: inline');
  const burst = await Promise.all([1, 2, 3].map(() => respondHandshakeOnPool(gathered, bob, alice.did, alice.sig.publicKey, sent.fields, prekeys)));
  t.same(burst, [expected, expected, expected]);
  t.same(gathered.stats, { inlineBatches: 1, poolBatches: 1 }, 'burst: one batch on the threads');
  await gathered.close();
  t.same(await respondHandshakeOnPool(gathered, bob, alice.did, alice.sig.publicKey, sent.fields, prekeys), expected, 'closed: inline');
});
