import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSessionActor } from '../actors/session/index.ts';
import { createCryptoProvider } from './crypto/index.ts';
import { bytesEqual, fromUtf8, utf8 } from './encoding/bytes.ts';
import { TalosError } from './errors.ts';
import { generateIdentity } from './identity/index.ts';
import { makeIdentity, publishPrekeys } from './session/fixtures.ts';
import type { Session } from './session/session.ts';
import { SqliteSessionStore } from './store/session-sqlite.ts';
import { createRuntime } from './index.ts';
import { connectAgent, eventually, getJson, metric, text, tunnelConfig } from './system-test-kit.ts';
import { outbox } from '../actors/session/outbox.ts';

// Supervision through the whole runtime: a session actor whose store fails is restarted by the
// TGA and its session continues from the SQLite store; past the restart budget the TGA
// escalates: /readyz fails and the gateway refuses new sessions (open ones go on), until resumed.
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-supervision-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const issuer = generateIdentity(crypto);
const runtime = await createRuntime({
  talos: tunnelConfig(issuer, {}),
  crypto,
  health: { port: 0 },
  supervision: { maxRestarts: 2, windowMs: 60_000 },
  jobs: false,
});
t.teardown(() => runtime.stop());
const readyz = () => getJson(`${runtime.healthUrl}/readyz`);

/** A real SQLite session store whose writes fail while `failing` is set (a disk fault). */
class FaultyStore extends SqliteSessionStore {
  failing = false;
  override async save(session: Session): Promise<void> {
    if (this.failing) throw new TalosError('store_unavailable', 'the session store cannot write');
    return super.save(session);
  }
}


const aliceId = makeIdentity(crypto);
const bobId = makeIdentity(crypto);
const pub = publishPrekeys(crypto, bobId, { pq: true, opks: 1 });
const aliceStore = new FaultyStore({ path: join(dir, 'alice.sqlite') });
const bobStore = new SqliteSessionStore({ path: ':memory:' });
t.teardown(() => Promise.all([aliceStore.close(), bobStore.close()]));
await bobStore.putSignedPrekey(pub.secrets);
await bobStore.putOneTimePrekeys(pub.opks.map((k) => k.secret));
const aOut = outbox();
const bOut = outbox();
const alice = runtime.superviseSession({
  id: 'session:alice',
  crypto,
  identity: aliceId,
  store: aliceStore,
  start: { kind: 'initiate', offer: { bundle: pub.bundle, opk: pub.opks[0]!.json } },
  onOutput: aOut.push,
});
const child = () => runtime.tga.getSnapshot().context.children['session:alice'];
const upAgain = (restarts: number) => eventually(() => (child()?.status === 'up' && child()!.restarts === restarts ? true : undefined));

let bob: ReturnType<typeof createSessionActor> | undefined;
t.teardown(() => bob?.stop());

t.test('a supervised session actor whose store fails is restarted and its session continues', async (t) => {
  await upAgain(0);
  alice.send(utf8('hello'));
  const first = await aOut.next('OUTBOUND');
  bob = createSessionActor({ crypto, identity: bobId, store: bobStore, start: { kind: 'accept', frame: first.frame }, onOutput: bOut.push });
  bob.start();
  t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), 'hello');
  const sid = alice.sid!;
  const actorBefore = alice.current;

  aliceStore.failing = true;
  alice.send(utf8('lost in the crash'));
  t.ok(await upAgain(1), 'the TGA restarted the session actor (one restart)');
  aliceStore.failing = false;
  t.not(alice.current, actorBefore, 'a new actor');
  t.equal(child()!.lastFault, 'store_unavailable');
  t.ok(bytesEqual(alice.current!.getSnapshot().context.session!.sid, sid), 'resumed the same session from the SQLite store');

  alice.send(utf8('after the restart'));
  bob.send({ type: 'DELIVER', frame: (await aOut.next('OUTBOUND')).frame });
  t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), 'after the restart', 'the peer reads what the restarted actor sends');
  bob.send({ type: 'SEND', plaintext: utf8('and back') });
  alice.deliver((await bOut.next('OUTBOUND')).frame);
  t.equal(fromUtf8((await aOut.next('RECEIVED')).plaintext), 'and back', 'and the restarted actor reads the peer');
  t.ok(runtime.ready());
  t.equal(await metric(runtime.healthUrl!, 'talos_supervisor_restarts_total', 'child="session"'), 1);
});

t.test('past the restart budget: escalation, /readyz fails, new sessions refused, open ones go on', async (t) => {
  const { client: before } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.teardown(() => before.close());
  aliceStore.failing = true;
  alice.send(utf8('crash two'));
  t.ok(await upAgain(2), 'second restart, still within the budget of 2');
  t.equal(runtime.tga.getSnapshot().value, 'running');
  alice.send(utf8('crash three'));
  const escalated = await eventually(() => (runtime.tga.getSnapshot().value === 'escalated' ? true : undefined));
  t.ok(escalated, 'the third crash within the window escalates');
  t.same(runtime.tga.getSnapshot().context.escalation, { child: 'session:alice', code: 'store_unavailable' });
  t.notOk(runtime.ready());

  const rz = await readyz();
  t.equal(rz.status, 503);
  t.same(rz.body.checks.restart_budget, { ok: false, detail: 'restart budget spent (session:alice: store_unavailable)' });
  t.equal(await metric(runtime.healthUrl!, 'talos_ready', ''), 0);

  const offer = await fetch(new URL('/.well-known/talos/offer', runtime.gatewayUrl!.replace('ws:', 'http:')));
  t.equal(offer.status, 503, 'the gateway hands out no offers');
  const refused = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]).then(() => undefined, (err: Error) => err);
  t.match(refused, { code: 'gateway_unreachable', message: /HTTP 503/ }, 'a new agent cannot open a session');
  t.throws(() => runtime.superviseSession({ ...alice.options, id: 'session:other' }), { code: 'not_ready' });
  t.equal(text(await before.callTool({ name: 'echo', arguments: { message: 'still here' } })), 'Echo: still here', 'an open session goes on');

  // An operator fixes the disk and resumes the TGA: the session comes back from its store.
  aliceStore.failing = false;
  runtime.tga.send({ type: 'tga.resume' });
  t.ok(await eventually(() => (runtime.ready() ? true : undefined)), 'ready again');
  t.equal((await readyz()).status, 200);
  const { client: after } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.equal(text(await after.callTool({ name: 'echo', arguments: { message: 'new session' } })), 'Echo: new session');
  await after.close();
  alice.send(utf8('after resume'));
  bob!.send({ type: 'DELIVER', frame: (await aOut.next('OUTBOUND')).frame });
  t.equal(fromUtf8((await bOut.next('RECEIVED')).plaintext), 'after resume');
});
