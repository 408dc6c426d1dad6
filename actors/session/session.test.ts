import t from 'tap';
import { SimulatedClock } from 'xstate';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import { fromUtf8, utf8 } from '../../runtime/encoding/bytes.ts';
import { decodeEnvelope } from '../../runtime/session/envelope.ts';
import { makeIdentity, publishPrekeys } from '../../runtime/session/fixtures.ts';
import { SqliteSessionStore } from '../../runtime/store/session-sqlite.ts';
import { createSessionActor, type SessionStart } from './index.ts';
import { outbox } from './outbox.ts';

const crypto = createCryptoProvider();


async function setup() {
  const aliceId = makeIdentity(crypto);
  const bobId = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bobId, { pq: true, opks: 1 });
  const aliceStore = new SqliteSessionStore({ path: ':memory:' });
  const bobStore = new SqliteSessionStore({ path: ':memory:' });
  await bobStore.putSignedPrekey(pub.secrets);
  await bobStore.putOneTimePrekeys(pub.opks.map((k) => k.secret));
  return { aliceId, bobId, pub, aliceStore, bobStore };
}

t.test('two session actors: handshake, traffic both ways, refusal, close', async (t) => {
  const { aliceId, bobId, pub, aliceStore, bobStore } = await setup();
  const aOut = outbox();
  const bOut = outbox();
  const alice = createSessionActor({
    crypto,
    identity: aliceId,
    store: aliceStore,
    start: { kind: 'initiate', offer: { bundle: pub.bundle, opk: pub.opks[0]!.json } },
    onOutput: aOut.push,
  });
  alice.start();
  alice.send({ type: 'SEND', plaintext: utf8('hello') });
  const first = await aOut.next('OUTBOUND');
  t.equal(decodeEnvelope(first.frame).type, 'prekey');
  const bob = createSessionActor({ crypto, identity: bobId, store: bobStore, start: { kind: 'accept', frame: first.frame }, onOutput: bOut.push });
  bob.start();
  t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), 'hello');
  t.equal(bob.getSnapshot().value && JSON.stringify(bob.getSnapshot().value), JSON.stringify({ established: 'ready' }));

  for (let i = 0; i < 5; i++) {
    bob.send({ type: 'SEND', plaintext: utf8(`b${i}`) });
    alice.send({ type: 'DELIVER', frame: (await bOut.next('OUTBOUND')).frame });
    t.equal(fromUtf8((await aOut.next('RECEIVED')).plaintext), `b${i}`);
    alice.send({ type: 'SEND', plaintext: utf8(`a${i}`) });
    const f = (await aOut.next('OUTBOUND')).frame;
    t.equal(decodeEnvelope(f).type, 'msg', 'after a reply the initiator stops sending the handshake');
    bob.send({ type: 'DELIVER', frame: f });
    t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), `a${i}`);
  }
  // A garbage frame and a replayed frame are refused; the session goes on.
  bob.send({ type: 'DELIVER', frame: '{"v":1}' });
  t.equal((await bOut.next('REFUSED')).code, 'frame_malformed');
  bob.send({ type: 'DELIVER', frame: first.frame });
  // (From a chain that has since ratcheted: its keys are gone, so it fails to authenticate.)
  t.equal((await bOut.next('REFUSED')).code, 'decrypt_failed');
  alice.send({ type: 'SEND', plaintext: utf8('still here') });
  bob.send({ type: 'DELIVER', frame: (await aOut.next('OUTBOUND')).frame });
  t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), 'still here');

  // Queued operations run in order, one at a time.
  for (let i = 0; i < 20; i++) alice.send({ type: 'SEND', plaintext: utf8(`q${i}`) });
  for (let i = 0; i < 20; i++) bob.send({ type: 'DELIVER', frame: (await aOut.next('OUTBOUND')).frame });
  for (let i = 0; i < 20; i++) t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), `q${i}`);

  // Alice closes; her close frame closes Bob; both stores forget the session.
  const sid = decodeEnvelope(first.frame).sid;
  alice.send({ type: 'CLOSE', reason: 'done' });
  const closed = await aOut.next('CLOSED');
  t.same({ reason: closed.reason, by: closed.by }, { reason: 'done', by: 'self' });
  t.equal(decodeEnvelope(closed.frame!).type, 'close');
  bob.send({ type: 'DELIVER', frame: closed.frame! });
  const peerClosed = await bOut.next('CLOSED');
  t.same({ reason: peerClosed.reason, by: peerClosed.by }, { reason: 'done', by: 'peer' });
  t.equal(alice.getSnapshot().status, 'done');
  t.equal(bob.getSnapshot().status, 'done');
  t.equal(await aliceStore.load(sid), undefined);
  t.equal(await bobStore.load(sid), undefined);
  await aliceStore.close();
  await bobStore.close();
});

t.test('a stopped actor resumes from the store; an unknown session fails', async (t) => {
  const { aliceId, bobId, pub, aliceStore, bobStore } = await setup();
  const aOut = outbox();
  let bOut = outbox();
  const alice = createSessionActor({ crypto, identity: aliceId, store: aliceStore, start: { kind: 'initiate', offer: { bundle: pub.bundle } }, onOutput: aOut.push });
  alice.start();
  alice.send({ type: 'SEND', plaintext: utf8('hi') });
  const first = await aOut.next('OUTBOUND');
  const sid = decodeEnvelope(first.frame).sid;
  let bob = createSessionActor({ crypto, identity: bobId, store: bobStore, start: { kind: 'accept', frame: first.frame }, onOutput: bOut.push });
  bob.start();
  await bOut.next('RECEIVED');
  bob.stop();
  // Alice had not heard back: her second frame is still a prekey frame. A new responder actor
  // started from it finds the stored session instead of refusing a replayed handshake.
  alice.send({ type: 'SEND', plaintext: utf8('again') });
  const second = await aOut.next('OUTBOUND');
  t.equal(decodeEnvelope(second.frame).type, 'prekey');
  const bOutRe = outbox();
  const bobRe = createSessionActor({ crypto, identity: bobId, store: bobStore, start: { kind: 'accept', frame: second.frame }, onOutput: bOutRe.push });
  bobRe.start();
  t.equal(fromUtf8((await bOutRe.next('RECEIVED')).plaintext), 'again');
  bobRe.stop();
  alice.stop();
  // Both come back from their stores.
  const aOut2 = outbox();
  const alice2 = createSessionActor({ crypto, identity: aliceId, store: aliceStore, start: { kind: 'resume', sid }, onOutput: aOut2.push });
  bOut = outbox();
  bob = createSessionActor({ crypto, identity: bobId, store: bobStore, start: { kind: 'resume', sid }, onOutput: bOut.push });
  alice2.start();
  bob.start();
  bob.send({ type: 'SEND', plaintext: utf8('back') });
  alice2.send({ type: 'DELIVER', frame: (await bOut.next('OUTBOUND')).frame });
  t.equal(fromUtf8((await aOut2.next('RECEIVED')).plaintext), 'back');
  alice2.send({ type: 'SEND', plaintext: utf8('and forth') });
  bob.send({ type: 'DELIVER', frame: (await aOut2.next('OUTBOUND')).frame });
  t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), 'and forth');
  alice2.stop();
  bob.stop();

  const fOut = outbox();
  const ghost = createSessionActor({ crypto, identity: bobId, store: bobStore, start: { kind: 'resume', sid: new Uint8Array(16) }, onOutput: fOut.push });
  ghost.start();
  t.equal((await fOut.next('FAILED')).code, 'unknown_session');
  t.equal(ghost.getSnapshot().value, 'failed');
  await aliceStore.close();
  await bobStore.close();
});

t.test('the idle timer closes a quiet session; traffic re-arms it', async (t) => {
  const { aliceId, pub, aliceStore } = await setup();
  const clock = new SimulatedClock();
  const out = outbox();
  const start: SessionStart = { kind: 'initiate', offer: { bundle: pub.bundle } };
  const alice = createSessionActor({ crypto, identity: aliceId, store: aliceStore, start, onOutput: out.push, idleTimeoutMs: 1000, clock });
  alice.start();
  await new Promise((r) => setImmediate(r));
  clock.increment(900);
  alice.send({ type: 'SEND', plaintext: utf8('x') });
  await out.next('OUTBOUND');
  clock.increment(900); // 1800 since start, 900 since the send: still open
  t.equal(alice.getSnapshot().status, 'active');
  clock.increment(200);
  const closed = await out.next('CLOSED');
  t.equal(closed.reason, 'idle');
  t.ok(closed.frame, 'the peer is told');
  await aliceStore.close();
});
