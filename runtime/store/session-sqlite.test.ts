import t from 'tap';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { providers, createCryptoProvider } from '../crypto/index.ts';
import { createOneTimePrekeys, type MlKemPrekeySecret, type X25519PrekeySecret } from '../identity/prekeys.ts';
import { MAX_STORED_ONE_TIME_PREKEYS, MAX_STORED_SIGNED_PREKEYS } from '../identity/prekey-store.ts';
import { fromUtf8, toHex, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { decodeEnvelope, encodeEnvelope } from '../session/envelope.ts';
import { makeIdentity, publishPrekeys } from '../session/fixtures.ts';
import { acceptFirstMessage } from '../session/responder.ts';
import { initiateSession, openMessage, sealMessage, type Session } from '../session/session.ts';
import { decodeSession, encodeSession } from '../session/state-codec.ts';
import { SessionError } from '../session/errors.ts';
import { IdentityError, TalosError } from '../errors.ts';
import { establishedPair } from '../session/test-helpers.ts';
import { SessionStoreError, SqliteSessionStore } from './session-sqlite.ts';
import type { AtRestCipher } from '../session/ports.ts';

const NOW = 1_700_000_000_000;
const here = dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'talos-session-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

for (const crypto of providers()) {
  t.test(`${crypto.name}: the state codec is lossless`, async (t) => {
    let { alice, bob } = establishedPair(crypto, NOW, { pq: true });
    // Give Bob skipped keys and Alice a pending handshake, then round-trip both.
    const a1 = sealMessage(crypto, alice, utf8('1'));
    const a2 = sealMessage(crypto, a1.session, utf8('2'));
    alice = a2.session;
    bob = openMessage(crypto, bob, a2.envelope, NOW).session;
    for (const s of [alice, bob]) {
      const back = decodeSession(encodeSession(s));
      t.same(back, s);
      t.equal(encodeSession(back), encodeSession(s));
    }
    t.equal(bob.ratchet.skipped.length, 1);
    t.throws(() => decodeSession(encodeSession(bob).replace('"nr":', '"nr":-')), { code: 'state_corrupt' });
    t.throws(() => decodeSession('{}'), { constructor: SessionError, code: 'state_corrupt' });
  });
}

t.test('a committed handshake is one transaction; a racing duplicate commits nothing', async (t) => {
  const crypto = createCryptoProvider();
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { opks: 1 });
  const store = new SqliteSessionStore({ path: join(dir, 'race.db') });
  await store.putSignedPrekey(pub.secrets);
  await store.putOneTimePrekeys(pub.opks.map((k) => k.secret));
  const a = initiateSession(crypto, alice, { bundle: pub.bundle, opk: pub.opks[0]!.json }, NOW);
  const env = sealMessage(crypto, a, utf8('x')).envelope;
  // Two deliveries looked up before either commits (a race): the second commit must fail whole.
  const l1 = await store.lookup(env.handshake!);
  const l2 = await store.lookup(env.handshake!);
  const { acceptSession } = await import('../session/session.ts');
  const s1 = acceptSession(crypto, bob, env, l1, NOW);
  const s2 = acceptSession(crypto, bob, env, l2, NOW);
  await store.commitHandshake(s1.consumed, s1.session);
  const advanced = sealMessage(crypto, s1.session, utf8('r')).session;
  await store.save(advanced);
  await t.rejects(store.commitHandshake(s2.consumed, s2.session), { code: 'handshake_replay' });
  t.equal(encodeSession((await store.load(a.sid))!), encodeSession(advanced), 'the losing commit left the saved session alone');
  await store.close();
});

t.test('the at-rest cipher seam sees every secret blob', async (t) => {
  const crypto = createCryptoProvider();
  const contexts: string[] = [];
  const xor: AtRestCipher = {
    seal: (p, c) => (contexts.push(c), p.map((b) => b ^ 0x5a)),
    open: (s) => s.map((b) => b ^ 0x5a),
  };
  const { alice } = establishedPair(crypto, NOW);
  const store = new SqliteSessionStore({ path: ':memory:', cipher: xor });
  await store.save(alice);
  const raw = store.db.prepare('SELECT state FROM session').get() as { state: Buffer };
  t.notOk(raw.state.toString('latin1').includes('"ratchet"'), 'stored bytes went through the cipher');
  t.equal(encodeSession((await store.load(alice.sid))!), encodeSession(alice));
  t.ok(contexts.some((c) => c.startsWith('session:')));
  await store.close();
});

t.test('without a cipher the state is stored as the UTF-8 bytes of its JSON, a blob, through save and the journal batch', async (t) => {
  const crypto = createCryptoProvider();
  const { alice } = establishedPair(crypto, NOW);
  const { bob } = establishedPair(crypto, NOW); // another session (a pair's two ends share the sid)
  const store = new SqliteSessionStore({ path: ':memory:' });
  await store.save(alice);
  store.commitSessions(new Map([[toB64u(bob.sid), bob]]));
  for (const s of [alice, bob]) {
    const raw = store.db.prepare('SELECT typeof(state) AS type, state FROM session WHERE sid = ?').get(toB64u(s.sid)) as { type: string; state: Buffer };
    t.equal(raw.type, 'blob');
    t.equal(toHex(new Uint8Array(raw.state)), toHex(utf8(encodeSession(s))));
    t.equal(encodeSession((await store.load(s.sid))!), encodeSession(s));
  }
  await store.close();
});

/** Runs the child responder; `send` writes one command and resolves with its answer. */
function startChild(args: string[]) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', join(here, 'session-restart.child.ts'), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const answers = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  return {
    async send(cmd: object): Promise<{ frame: string; pid: number }> {
      child.stdin.write(JSON.stringify(cmd) + '\n');
      const next = await answers.next();
      if (next.done) throw new Error(`child ended: ${stderr}`);
      return JSON.parse(next.value) as { frame: string; pid: number };
    },
    async kill() {
      child.kill('SIGKILL');
      return exited;
    },
  };
}

t.test('a session survives a killed process, in both directions', async (t) => {
  const crypto = createCryptoProvider();
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq: true, opks: 1 });
  const dbPath = join(dir, 'bob.db');
  const setup = new SqliteSessionStore({ path: dbPath });
  await setup.putSignedPrekey(pub.secrets);
  await setup.putOneTimePrekeys(pub.opks.map((k) => k.secret));
  await setup.close();
  const args = [dbPath, bob.did, toHex(bob.sig.secretKey), toHex(bob.dh.secretKey), toHex(bob.dh.publicKey)];

  let a: Session = initiateSession(crypto, alice, { bundle: pub.bundle, opk: pub.opks[0]!.json }, NOW);
  const roundTrip = async (child: ReturnType<typeof startChild>, op: 'accept' | 'open', text: string) => {
    const m = sealMessage(crypto, a, utf8(text));
    a = m.session;
    const answer = await child.send({ op, frame: encodeEnvelope(m.envelope), now: NOW });
    const opened = openMessage(crypto, a, decodeEnvelope(answer.frame), NOW);
    a = opened.session;
    return { reply: fromUtf8(opened.plaintext), pid: answer.pid };
  };

  const first = startChild(args);
  const r1 = await roundTrip(first, 'accept', 'hello');
  t.equal(r1.reply, 'echo:hello');
  const r2 = await roundTrip(first, 'open', 'two');
  t.equal(r2.reply, 'echo:two');
  t.equal(await first.kill(), 'SIGKILL');

  const second = startChild(args);
  const r3 = await roundTrip(second, 'open', 'after restart');
  t.equal(r3.reply, 'echo:after restart', 'the reloaded session decrypts and encrypts');
  t.not(r3.pid, r1.pid, 'a different process');
  t.equal(await second.kill(), 'SIGKILL');

  const third = startChild(args);
  const r4 = await roundTrip(third, 'open', 'and again');
  t.equal(r4.reply, 'echo:and again');
  await third.kill();
});

t.test('prekey secrets: one ML-KEM id space; retiring a signed prekey takes its pqspk and EKs', async (t) => {
  const crypto = createCryptoProvider();
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq: true, pqOpks: 1 });
  const store = new SqliteSessionStore({ path: ':memory:' });
  await store.putSignedPrekey(pub.secrets);
  const clash = { ...pub.pqOpks[0]!.secret, id: pub.secrets.pqspk!.id };
  await t.rejects(store.putPqOneTimePrekeys([clash]), { code: 'prekey_duplicate_id' });
  const fields = { ik: new Uint8Array(32), ikSig: new Uint8Array(64), ek: new Uint8Array(32).fill(9), spkId: pub.secrets.spk.id, pqId: pub.secrets.pqspk!.id };
  let found = await store.lookup(fields);
  t.ok(found.spk && found.pq && found.requiresPq);
  t.equal(found.pq!.oneTime, false);
  store.db.prepare('INSERT INTO seen_ek (spk_id, ek) VALUES (?, ?)').run(fields.spkId, fields.ek);
  t.equal((await store.lookup(fields)).ekSeen, true);
  await store.deleteSignedPrekey(pub.secrets.spk.id);
  found = await store.lookup(fields);
  t.same([found.spk, found.pq, found.requiresPq, found.ekSeen], [undefined, undefined, false, false]);
  await store.close();
});

t.test('several processes commit handshakes to one file at once: every commit succeeds', async (t) => {
  const crypto = createCryptoProvider();
  const bob = makeIdentity(crypto);
  const dbPath = join(dir, 'shared.db');
  await new SqliteSessionStore({ path: dbPath }).close();
  const args = [dbPath, bob.did, toHex(bob.sig.secretKey), toHex(bob.dh.secretKey), toHex(bob.dh.publicKey)];
  const COUNT = 200;
  const children = [startChild(args), startChild(args)];
  t.teardown(() => Promise.all(children.map((c) => c.kill())));
  type Answer = { committed: number; errors: Record<string, number>; pid: number };
  const commits = (count: number) => Promise.all(children.map((c) => c.send({ op: 'commits', count, now: NOW }) as unknown as Promise<Answer>));
  await commits(1); // every child loaded, so the real runs overlap
  for (const answer of await commits(COUNT)) t.same(answer, { committed: COUNT, errors: {}, pid: answer.pid }, 'no commit failed');
  const store = new SqliteSessionStore({ path: dbPath });
  t.equal((store.db.prepare('SELECT count(*) AS n FROM session').get() as { n: number }).n, children.length * (COUNT + 1));
  await store.close();
});

t.test('prekeys: a stored id is refused, a refused batch stores nothing, the limits hold (SPEC 4.6)', async (t) => {
  const crypto = createCryptoProvider();
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq: true, opks: 3, pqOpks: 2 });
  const store = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => store.close());
  await store.putSignedPrekey(pub.secrets);
  await store.putOneTimePrekeys(pub.opks.map((k) => k.secret));
  await store.putPqOneTimePrekeys(pub.pqOpks.map((k) => k.secret));
  const fields = (opkId: number) => ({ ik: new Uint8Array(32), ikSig: new Uint8Array(64), ek: new Uint8Array(32), spkId: pub.secrets.spk.id, opkId });
  const opk = pub.opks[0]!.secret;
  const spk = pub.secrets.spk;

  // Same ids, other keys: refused, and the published secrets stay.
  const again = createOneTimePrekeys(crypto, { startId: opk.id, count: 1 }).secrets;
  await t.rejects(store.putOneTimePrekeys(again), { constructor: IdentityError, code: 'prekey_duplicate_id' });
  await t.rejects(store.putSignedPrekey({ spk: { ...spk, secretKey: new Uint8Array(32).fill(7) } }), { code: 'prekey_duplicate_id' });
  await t.rejects(store.putPqOneTimePrekeys([{ ...pub.pqOpks[0]!.secret, seed: new Uint8Array(64) }]), { code: 'prekey_duplicate_id' });
  const found = await store.lookup(fields(opk.id));
  t.same([found.opk!.secretKey, found.spk!.secretKey], [opk.secretKey, spk.secretKey], 'the stored secrets were not replaced');
  // A batch with one clash (or a repeated id) stores nothing.
  const fresh = createOneTimePrekeys(crypto, { startId: 500, count: 3 }).secrets;
  await t.rejects(store.putOneTimePrekeys([...fresh, opk]), { code: 'prekey_duplicate_id' });
  await t.rejects(store.putOneTimePrekeys([fresh[0]!, fresh[0]!]), { code: 'prekey_duplicate_id' });
  t.equal((await store.lookup(fields(500))).opk, undefined, 'nothing of the refused batches was stored');

  // Limits (fake key bytes: the store does not look at them).
  const x = (id: number): X25519PrekeySecret => ({ id, publicKey: new Uint8Array(32), secretKey: new Uint8Array(32) });
  const pq = (id: number): MlKemPrekeySecret => ({ id, publicKey: new Uint8Array(0), seed: new Uint8Array(64) });
  const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
  await store.putOneTimePrekeys(range(1000, MAX_STORED_ONE_TIME_PREKEYS - 3).map(x));
  await t.rejects(store.putOneTimePrekeys([x(50_000)]), { constructor: IdentityError, code: 'prekey_store_full' });
  await store.putPqOneTimePrekeys(range(100_000, MAX_STORED_ONE_TIME_PREKEYS - 2).map(pq));
  await t.rejects(store.putPqOneTimePrekeys([pq(200_000)]), { code: 'prekey_store_full' });
  for (const id of range(2, MAX_STORED_SIGNED_PREKEYS - 1)) await store.putSignedPrekey({ spk: x(id) });
  await t.rejects(store.putSignedPrekey({ spk: x(99) }), { code: 'prekey_store_full' });
  const count = (table: string) => (store.db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
  t.same(
    [count('prekey_one_time'), count('prekey_pq WHERE one_time = 1'), count('prekey_signed')],
    [MAX_STORED_ONE_TIME_PREKEYS, MAX_STORED_ONE_TIME_PREKEYS, MAX_STORED_SIGNED_PREKEYS],
  );
  await store.deleteSignedPrekey(2);
  await store.putSignedPrekey({ spk: x(99) }); // room again once one is retired
});

t.test('a store that cannot be opened, and a state that is not UTF-8, are typed errors', async (t) => {
  const junk = join(dir, 'junk.db');
  writeFileSync(junk, 'this is not a database, just some text'.repeat(200));
  for (const path of [junk, join(dir, 'no', 'such', 'folder', 's.db')]) {
    const err = t.throws(() => new SqliteSessionStore({ path })) as unknown;
    t.ok(err instanceof SessionStoreError && err instanceof TalosError, 'a TalosError');
    t.match(err, { code: 'session_store_unavailable', message: path });
  }
  const store = new SqliteSessionStore({ path: ':memory:' });
  store.db.prepare("INSERT INTO session (sid, self, peer, state, updated_at) VALUES ('AAAAAAAAAAAAAAAAAAAAAA', 'a', 'b', x'ff00ff', 0)").run();
  await t.rejects(store.load(new Uint8Array(16)), { constructor: SessionError, code: 'state_corrupt' });
  await store.close();
});
