import t from 'tap';
import { providers } from '../crypto/index.ts';
import { bytesEqual, fromUtf8, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { decodeEnvelope, encodeEnvelope } from './envelope.ts';
import { makeIdentity, publishPrekeys, type PublishedPrekeys } from './fixtures.ts';
import { acceptFirstMessage } from './responder.ts';
import { initiateSession, openMessage, sealMessage, type Offer } from './session.ts';
import { SessionError } from './errors.ts';

const NOW = 1_700_000_000_000;

async function storeFor(pub: PublishedPrekeys): Promise<SqliteSessionStore> {
  const store = new SqliteSessionStore({ path: ':memory:' });
  await store.putSignedPrekey(pub.secrets);
  await store.putOneTimePrekeys(pub.opks.map((k) => k.secret));
  await store.putPqOneTimePrekeys(pub.pqOpks.map((k) => k.secret));
  return store;
}

const code = (code: string) => ({ constructor: SessionError, code });

for (const crypto of providers()) {
  t.test(`${crypto.name}: handshakes`, async (t) => {
    const cases: { name: string; pq: boolean; opk: boolean; pqOpk: boolean; mode: string }[] = [
      { name: 'X3DH without one-time prekey', pq: false, opk: false, pqOpk: false, mode: 'x3dh' },
      { name: 'X3DH with one-time prekey', pq: false, opk: true, pqOpk: false, mode: 'x3dh' },
      { name: 'PQXDH to the last-resort ML-KEM key', pq: true, opk: true, pqOpk: false, mode: 'pqxdh' },
      { name: 'PQXDH to a one-time ML-KEM key', pq: true, opk: true, pqOpk: true, mode: 'pqxdh' },
      { name: 'PQXDH without X25519 one-time prekey', pq: true, opk: false, pqOpk: false, mode: 'pqxdh' },
    ];
    for (const c of cases) {
      const alice = makeIdentity(crypto);
      const bob = makeIdentity(crypto);
      const pub = publishPrekeys(crypto, bob, { pq: c.pq, opks: 2, pqOpks: 2 });
      const store = await storeFor(pub);
      const offer: Offer = { bundle: pub.bundle };
      if (c.opk) offer.opk = pub.opks[0]!.json;
      if (c.pqOpk) offer.pqOpk = pub.pqOpks[0]!.json;
      let a = initiateSession(crypto, alice, offer, NOW);
      t.equal(a.mode, c.mode, `${c.name}: mode`);
      // Two first messages before any reply: both carry the handshake.
      const m1 = sealMessage(crypto, a, utf8('one'));
      const m2 = sealMessage(crypto, m1.session, utf8('two'));
      a = m2.session;
      const wire1 = decodeEnvelope(encodeEnvelope(m1.envelope));
      t.equal(wire1.type, 'prekey');
      t.equal(wire1.handshake?.opkId, c.opk ? pub.opks[0]!.id : undefined, `${c.name}: opk id on the wire`);
      t.equal(wire1.handshake?.pqCt !== undefined, c.pq, `${c.name}: pq ciphertext on the wire`);
      const acc = await acceptFirstMessage(crypto, bob, wire1, store, NOW);
      t.equal(fromUtf8(acc.plaintext), 'one');
      t.ok(bytesEqual(acc.session.sid, a.sid), `${c.name}: same sid`);
      t.equal(acc.session.mode, c.mode);
      // The one-time prekeys are gone before Bob says anything.
      const after = await store.lookup(wire1.handshake!);
      t.equal(after.opk, undefined, `${c.name}: one-time prekey deleted`);
      if (c.pqOpk) t.equal(after.pq, undefined, `${c.name}: one-time ML-KEM prekey deleted`);
      t.equal(after.ekSeen, true, `${c.name}: EK recorded`);
      // The session was committed with the handshake; the second first message is a normal one.
      let b = (await store.load(a.sid))!;
      const o2 = openMessage(crypto, b, decodeEnvelope(encodeEnvelope(m2.envelope)), NOW);
      t.equal(fromUtf8(o2.plaintext), 'two');
      b = o2.session;
      // Replaying the first message: refused as a duplicate by the live session…
      t.throws(() => openMessage(crypto, b, wire1, NOW), code('duplicate_message'));
      // …and as a handshake replay when it arrives as a new session (even with the session gone).
      await store.delete(a.sid);
      await t.rejects(acceptFirstMessage(crypto, bob, wire1, store, NOW), code(c.opk ? 'unknown_prekey' : 'handshake_replay'));
      // Bob replies; Alice drops the handshake fields.
      const r = sealMessage(crypto, b, utf8('reply'));
      t.equal(r.envelope.type, 'msg');
      const ao = openMessage(crypto, a, decodeEnvelope(encodeEnvelope(r.envelope)), NOW);
      t.equal(fromUtf8(ao.plaintext), 'reply');
      t.equal(ao.session.handshake, null);
      t.equal(sealMessage(crypto, ao.session, utf8('x')).envelope.type, 'msg');
      await store.close();
    }
  });

  t.test(`${crypto.name}: handshake refusals`, async (t) => {
    const alice = makeIdentity(crypto);
    const bob = makeIdentity(crypto);
    const pub = publishPrekeys(crypto, bob, { pq: true, opks: 1, exp: NOW + 1000 });
    t.throws(() => initiateSession(crypto, alice, { bundle: pub.bundle }, NOW + 1000), code('bundle_expired'));
    const forged = { ...pub.bundle, spk: { ...pub.bundle.spk, id: 7 } };
    t.throws(() => initiateSession(crypto, alice, { bundle: forged }, NOW), code('bad_bundle'));
    const stranger = makeIdentity(crypto);
    const resigned = { ...pub.bundle, did: stranger.did };
    t.throws(() => initiateSession(crypto, alice, { bundle: resigned }, NOW), code('bad_bundle'));

    // Downgrade: Bob publishes an ML-KEM key; an X3DH first message (from a bundle without it) is refused.
    const store = await storeFor(pub);
    const { pqspk: _drop, sig: _sig, ...unsignedNoPq } = pub.bundle;
    void _drop;
    void _sig;
    const { signObject, DOMAINS } = await import('../identity/signing.ts');
    const noPqBundle = signObject(crypto, bob.sig.secretKey, DOMAINS.prekeyBundle, unsignedNoPq as Record<string, unknown>);
    const downgraded = initiateSession(crypto, alice, { bundle: noPqBundle as never }, NOW);
    t.equal(downgraded.mode, 'x3dh');
    const env = sealMessage(crypto, downgraded, utf8('hi')).envelope;
    await t.rejects(acceptFirstMessage(crypto, bob, env, store, NOW), code('pq_downgrade'));
    t.equal((await store.lookup(env.handshake!)).ekSeen, false, 'a refused first message records nothing');

    // Unknown signed prekey, wrong recipient, tampered sid, tampered first ciphertext.
    const good = sealMessage(crypto, initiateSession(crypto, alice, { bundle: pub.bundle, opk: pub.opks[0]!.json }, NOW), utf8('hi')).envelope;
    await t.rejects(acceptFirstMessage(crypto, bob, { ...good, handshake: { ...good.handshake!, spkId: 99 } }, store, NOW), code('unknown_prekey'));
    await t.rejects(acceptFirstMessage(crypto, stranger, good, store, NOW), code('wrong_recipient'));
    const sid = good.sid.slice();
    sid[0]! ^= 1;
    await t.rejects(acceptFirstMessage(crypto, bob, { ...good, sid }, store, NOW), code('sid_mismatch'));
    const ct = good.ct.slice();
    ct[3]! ^= 0x10;
    await t.rejects(acceptFirstMessage(crypto, bob, { ...good, ct }, store, NOW), code('decrypt_failed'));
    // Impersonation: Mallory claims Alice's DID with her own X25519 identity key.
    const mallory = makeIdentity(crypto);
    const posing = { did: alice.did, sig: mallory.sig, dh: mallory.dh };
    const impostor = sealMessage(crypto, initiateSession(crypto, posing, { bundle: pub.bundle, opk: pub.opks[0]!.json }, NOW), utf8('hi')).envelope;
    await t.rejects(acceptFirstMessage(crypto, bob, impostor, store, NOW), code('bad_identity'));
    // Alice's genuine certificate does not cover Mallory's key either.
    const swapped = { ...impostor, handshake: { ...impostor.handshake!, ikSig: good.handshake!.ikSig } };
    await t.rejects(acceptFirstMessage(crypto, bob, swapped, store, NOW), code('bad_identity'));
    const lk = await store.lookup(good.handshake!);
    t.ok(lk.opk && !lk.ekSeen, 'refused first messages consumed no one-time prekey and recorded no EK');
    const ok = await acceptFirstMessage(crypto, bob, good, store, NOW);
    t.equal(fromUtf8(ok.plaintext), 'hi');
    t.equal(toB64u(ok.session.sid), toB64u(good.sid));
    await store.close();
  });
}
