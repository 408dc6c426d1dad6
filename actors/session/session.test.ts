import t, { type Test } from 'tap';
import { SimulatedClock, waitFor } from 'xstate';
import { createCryptoProvider, providers } from '../../runtime/crypto/index.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { fromB64u, toB64u } from '../../runtime/encoding/base64url.ts';
import { fromUtf8, utf8 } from '../../runtime/encoding/bytes.ts';
import { decodeEnvelope, encodeEnvelope } from '../../runtime/session/envelope.ts';
import { makeIdentity, publishPrekeys } from '../../runtime/session/fixtures.ts';
import { encodeHeader } from '../../runtime/session/ratchet.ts';
import { sealClose } from '../../runtime/session/session.ts';
import { encodeSession } from '../../runtime/session/state-codec.ts';
import { establishedPair } from '../../runtime/session/test-helpers.ts';
import { SqliteSessionStore } from '../../runtime/store/session-sqlite.ts';
import { createSessionActor, type SessionActor, type SessionActorOptions, type SessionOutbound, type SessionStart } from './index.ts';
import { outbox } from './outbox.ts';

const crypto = createCryptoProvider();


async function setup(provider: CryptoProvider = crypto) {
  const aliceId = makeIdentity(provider);
  const bobId = makeIdentity(provider);
  const pub = publishPrekeys(provider, bobId, { pq: true, opks: 1 });
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

/** A started actor, stopped when the test ends even if an assertion threw (its idle timer would keep the run alive). */
function started(t: Test, options: SessionActorOptions): SessionActor {
  const actor = createSessionActor(options);
  actor.start();
  t.teardown(() => actor.stop());
  return actor;
}

/** Resolves once the actor has nothing in flight: idle in `ready`, or ended (a failed fix then fails, never hangs). */
const settled = (actor: SessionActor) =>
  waitFor(actor, (s) => s.status === 'done' || (s.matches({ established: 'ready' }) && s.context.queue.length === 0), { timeout: 10_000 });

/** The store's own row for a session (sid is kept as base64url text), not what load() decodes. */
const storedSession = (store: SqliteSessionStore, sid: Uint8Array) =>
  store.db.prepare('SELECT count(*) AS n FROM session WHERE sid = ?').get(toB64u(sid)) as { n: number };

for (const provider of providers()) {
  t.test(`${provider.name}: a forged frame naming the responder's signed prekey is refused before the first reply`, async (t) => {
    const { aliceId, bobId, pub, aliceStore, bobStore } = await setup(provider);
    const aOut = outbox();
    const bOut = outbox();
    const alice = started(t, { crypto: provider, identity: aliceId, store: aliceStore, start: { kind: 'initiate', offer: { bundle: pub.bundle, opk: pub.opks[0]!.json } }, onOutput: aOut.push });
    alice.send({ type: 'SEND', plaintext: utf8('hello') });
    const first = await aOut.next('OUTBOUND');
    const sid = decodeEnvelope(first.frame).sid;
    const stored = encodeSession((await aliceStore.load(sid))!);
    // Anyone who saw the sid (sent in clear) and Bob's bundle can build these.
    const spk = fromB64u((pub.bundle as unknown as { spk: { pub: string } }).spk.pub, 32);
    for (const type of ['msg', 'close'] as const) {
      const forged = encodeEnvelope({ type, from: bobId.did, to: aliceId.did, sid, header: encodeHeader(spk, 0, 0), ct: new Uint8Array(32) });
      alice.send({ type: 'DELIVER', frame: forged });
      await settled(alice);
      t.same(aOut.items.splice(0), [{ type: 'REFUSED', code: 'decrypt_failed' }], `forged ${type} refused`);
      t.same(alice.getSnapshot().value, { established: 'ready' }, 'the session goes on');
    }
    t.equal(encodeSession((await aliceStore.load(sid))!), stored, 'the stored session is unchanged');
    // The genuine reply still opens.
    const bob = started(t, { crypto: provider, identity: bobId, store: bobStore, start: { kind: 'accept', frame: first.frame }, onOutput: bOut.push });
    await bOut.next('RECEIVED');
    bob.send({ type: 'SEND', plaintext: utf8('reply') });
    alice.send({ type: 'DELIVER', frame: (await bOut.next('OUTBOUND')).frame });
    await settled(alice);
    t.same(aOut.items, [{ type: 'RECEIVED', plaintext: utf8('reply') }], 'the genuine reply opens');
    await aliceStore.close();
    await bobStore.close();
  });
}

t.test('CLOSE during the handshake: CLOSED, and the session the start stored is deleted', async (t) => {
  const { aliceId, bobId, pub, aliceStore, bobStore } = await setup();
  // Initiator: initiate stores the session synchronously; CLOSE arrives at once.
  const aOut = outbox();
  const alice = started(t, { crypto, identity: aliceId, store: aliceStore, start: { kind: 'initiate', offer: { bundle: pub.bundle } }, onOutput: aOut.push });
  alice.send({ type: 'CLOSE', reason: 'bye' });
  await settled(alice);
  t.same(aOut.items.map((m) => m.type), ['CLOSED']);
  const closed = aOut.items[0] as Extract<SessionOutbound, { type: 'CLOSED' }>;
  t.same({ reason: closed.reason, by: closed.by }, { reason: 'bye', by: 'self' });
  t.equal(alice.getSnapshot().value, 'closed');
  t.same(aliceStore.db.prepare('SELECT count(*) AS n FROM session').get(), { n: 0 }, 'no session row left');
  const sid = decodeEnvelope(closed.frame!).sid;
  const rOut = outbox();
  const resumed = started(t, { crypto, identity: aliceId, store: aliceStore, start: { kind: 'resume', sid }, onOutput: rOut.push });
  await settled(resumed);
  t.same(rOut.items, [{ type: 'FAILED', code: 'unknown_session' }], 'a closed session cannot be resumed');

  // Responder: accept commits the session with the one-time prekey; its first plaintext is
  // still reported, then the session closes and its row is gone.
  const a2Out = outbox();
  const alice2 = started(t, { crypto, identity: aliceId, store: aliceStore, start: { kind: 'initiate', offer: { bundle: pub.bundle, opk: pub.opks[0]!.json } }, onOutput: a2Out.push });
  alice2.send({ type: 'SEND', plaintext: utf8('hello') });
  const first = await a2Out.next('OUTBOUND');
  const bOut = outbox();
  const bob = started(t, { crypto, identity: bobId, store: bobStore, start: { kind: 'accept', frame: first.frame }, onOutput: bOut.push });
  bob.send({ type: 'CLOSE', reason: 'no' });
  t.equal(bob.getSnapshot().value, 'handshaking', 'the CLOSE arrives while accept is committing');
  await settled(bob);
  t.same(bOut.items.map((m) => m.type), ['RECEIVED', 'CLOSED'], 'the first plaintext, then the close');
  const [received, bClosed] = bOut.items as [Extract<SessionOutbound, { type: 'RECEIVED' }>, Extract<SessionOutbound, { type: 'CLOSED' }>];
  t.equal(fromUtf8(received.plaintext), 'hello');
  t.same({ reason: bClosed.reason, by: bClosed.by }, { reason: 'no', by: 'self' });
  t.equal(storedSession(bobStore, decodeEnvelope(first.frame).sid).n, 0);
  // Bob's close frame closes Alice too.
  alice2.send({ type: 'DELIVER', frame: bClosed.frame! });
  t.same((await a2Out.next('CLOSED')).by, 'peer');
  await aliceStore.close();
  await bobStore.close();
});

t.test("accept from the peer's close frame of a stored session: closed by the peer, row deleted, nothing received", async (t) => {
  const { alice, bob, bobId } = establishedPair(crypto, Date.now());
  const bobStore = new SqliteSessionStore({ path: ':memory:' });
  await bobStore.save(bob);
  t.equal(storedSession(bobStore, bob.sid).n, 1);
  const closeFrame = encodeEnvelope(sealClose(crypto, alice, 'bye').envelope);
  const out = outbox();
  const actor = started(t, { crypto, identity: bobId, store: bobStore, start: { kind: 'accept', frame: closeFrame }, onOutput: out.push });
  await settled(actor);
  t.same(out.items, [{ type: 'CLOSED', reason: 'bye', by: 'peer' }], 'closed by the peer, nothing received');
  t.equal(actor.getSnapshot().value, 'closed');
  t.equal(storedSession(bobStore, bob.sid).n, 0, 'the closed session is deleted from the store');
  await bobStore.close();
});
