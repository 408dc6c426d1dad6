import t from 'tap';
import { createCryptoProvider } from '../crypto/index.ts';
import { utf8 } from '../encoding/bytes.ts';
import { createOneTimePrekeys, generateIdentity } from '../identity/index.ts';
import { MAX_STORED_ONE_TIME_PREKEYS, MAX_STORED_SIGNED_PREKEYS } from '../identity/prekey-store.ts';
import type { HandshakeFields } from '../session/handshake.ts';
import { initiateSession, sealMessage, type Offer } from '../session/session.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { GatewayResponder, ONE_TIME_PREKEY_BATCH } from './responder.ts';

// The responder's hooks for the TGA's scheduled jobs: signed-prekey rotation (handshakes begun
// on the previous prekey still complete) and one-time prekey replenishment; and continuing the
// id sequences over a persisted store after a restart.
const crypto = createCryptoProvider();
const gateway = generateIdentity(crypto);

function firstFrame(offer: unknown) {
  const agent = generateIdentity(crypto);
  const session = initiateSession(crypto, agent, offer as Offer, Date.now());
  return sealMessage(crypto, session, utf8('{"jsonrpc":"2.0","id":1,"method":"ping"}')).envelope;
}

t.test('rotating the signed prekey: new offers carry it, handshakes begun before still complete', async (t) => {
  const store = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => store.close());
  const responder = new GatewayResponder(crypto, gateway, store);
  const before = await responder.offer();
  const id = await responder.rotateSignedPrekey();
  t.equal(id, before.bundle.spk.id + 1);
  const after = await responder.offer();
  t.equal(after.bundle.spk.id, id, 'offers carry the new signed prekey');
  t.equal((await responder.accept(firstFrame(before))).text.includes('ping'), true, 'a handshake on the previous prekey completes');
  t.equal((await responder.accept(firstFrame(after))).text.includes('ping'), true);
});

t.test('replenishing one-time prekeys tops the pool up only when it runs low', async (t) => {
  const store = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => store.close());
  const responder = new GatewayResponder(crypto, gateway, store);
  t.equal(await responder.replenishOneTimePrekeys(), ONE_TIME_PREKEY_BATCH, 'an empty pool gets a batch');
  t.equal(await responder.replenishOneTimePrekeys(), 0, 'a full pool is left alone');
  const ids = new Set<number>();
  for (let i = 0; i < ONE_TIME_PREKEY_BATCH / 2 + 1; i++) ids.add((await responder.offer()).opk!.id);
  t.equal(ids.size, ONE_TIME_PREKEY_BATCH / 2 + 1, 'each offer hands out a different one-time prekey');
  t.equal(await responder.replenishOneTimePrekeys(), ONE_TIME_PREKEY_BATCH, 'below half a batch: one more batch');
  for (let i = 0; i < ONE_TIME_PREKEY_BATCH; i++) {
    const id = (await responder.offer()).opk!.id;
    t.notOk(ids.has(id), 'no one-time prekey id handed out twice');
    ids.add(id);
  }
});

t.test('a responder over a persisted store continues its id sequences', async (t) => {
  const store = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => store.close());
  const first = new GatewayResponder(crypto, gateway, store);
  const o1 = await first.offer();
  const second = new GatewayResponder(crypto, gateway, store, { lastIds: { spk: o1.bundle.spk.id, opk: ONE_TIME_PREKEY_BATCH } });
  const o2 = await second.offer();
  t.equal(o2.bundle.spk.id, o1.bundle.spk.id + 1);
  t.ok(o2.opk!.id > ONE_TIME_PREKEY_BATCH, 'one-time prekey ids continue after the stored ones');
  t.equal((await second.accept(firstFrame(o2))).text.includes('ping'), true);
});

t.test('rotation retires the signed prekey MAX_STORED_SIGNED_PREKEYS rotations old, so the store never fills', async (t) => {
  const store = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => store.close());
  const responder = new GatewayResponder(crypto, gateway, store);
  const first = await responder.offer();
  const offers = [first];
  for (let i = 0; i < MAX_STORED_SIGNED_PREKEYS + 4; i++) {
    await responder.rotateSignedPrekey(); // the 17th would fail with prekey_store_full if none were retired
    offers.push(await responder.offer());
  }
  const newest = offers[offers.length - 1]!.bundle.spk.id;
  const oldestKept = newest - MAX_STORED_SIGNED_PREKEYS + 1;
  t.equal((await responder.accept(firstFrame(offers.find((o) => o.bundle.spk.id === oldestKept)))).text.includes('ping'), true, 'a bundle 15 rotations old still opens');
  t.notOk((await store.lookup({ spkId: oldestKept - 1 } as HandshakeFields)).spk, 'the one before it is retired');
  t.equal((await responder.accept(firstFrame(offers[offers.length - 1]))).text.includes('ping'), true);
});

t.test('a store full of one-time prekeys left from earlier runs retires its oldest batch for a new one', async (t) => {
  const store = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => store.close());
  // Earlier runs' keys, never handed out: a restarted responder cannot know which are still held.
  for (let start = 1; start <= MAX_STORED_ONE_TIME_PREKEYS; start += 1000) {
    await store.putOneTimePrekeys(createOneTimePrekeys(crypto, { startId: start, count: 1000 }).secrets);
  }
  const responder = new GatewayResponder(crypto, gateway, store, { lastIds: store.lastPrekeyIds() });
  const offer = await responder.offer();
  t.ok(offer.opk && offer.opk.id > MAX_STORED_ONE_TIME_PREKEYS, 'a new one-time prekey is offered');
  t.equal((await responder.accept(firstFrame(offer))).text.includes('ping'), true, 'and the handshake with it completes');
  const held = async (opkId: number) => (await store.lookup({ spkId: offer.bundle.spk.id, opkId } as HandshakeFields)).opk !== undefined;
  t.notOk(await held(ONE_TIME_PREKEY_BATCH), 'the oldest batch was retired');
  t.ok(await held(ONE_TIME_PREKEY_BATCH + 1), 'the next ones are kept');
});
