import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '../crypto/index.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { Keyring, generateKek, type Kek } from '../secrets/keyring.ts';
import { SecretBox } from '../secrets/secret-box.ts';
import { atRestCipher } from '../secrets/seams.ts';
import { publishPrekeys } from '../session/fixtures.ts';
import { openMessage, sealMessage } from '../session/session.ts';
import { establishedPair } from '../session/test-helpers.ts';
import { RewrapIncompleteError, REWRAP_BATCH, SqliteSessionStore } from './session-sqlite.ts';

// KEK rotation over a real SQLite session store: more rows than one re-wrap batch, every read
// works before, during and after, and nothing opens with the retired KEK alone.
const crypto = createCryptoProvider({ name: 'node' });
const copyOf = (k: Kek): Kek => ({ id: k.id, key: Uint8Array.from(k.key) });

t.test('rewrapAll moves every sealed session state and prekey secret to the new primary KEK', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-rewrap-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'sessions.db');
  const oldKek = generateKek(crypto, 'old');
  const box = new SecretBox(crypto, new Keyring([copyOf(oldKek)]));
  const cipher = atRestCipher(box);
  const store = new SqliteSessionStore({ path, cipher });

  const pairs = Array.from({ length: REWRAP_BATCH + 20 }, (_, i) => establishedPair(crypto, 1_000_000 + i));
  for (const p of pairs) await store.save(p.alice);
  const published = publishPrekeys(crypto, pairs[0]!.bobId, { opks: 3, pq: true, pqOpks: 2 });
  await store.putSignedPrekey(published.secrets);
  await store.putOneTimePrekeys(published.opks.map((o) => o.secret));
  await store.putPqOneTimePrekeys(published.pqOpks.map((o) => o.secret));
  const sealedValues = () =>
    [
      ...store.db.prepare('SELECT state AS v FROM session').all(),
      ...store.db.prepare('SELECT secret AS v FROM prekey_signed').all(),
      ...store.db.prepare('SELECT secret AS v FROM prekey_one_time').all(),
      ...store.db.prepare('SELECT seed AS v FROM prekey_pq').all(),
    ].map((r) => new Uint8Array((r as { v: Buffer }).v));
  const total = sealedValues().length;
  t.equal(total, pairs.length + 1 + 3 + 3, 'sessions, spk, opks, pqspk and pq opks are all sealed rows');

  box.keyring.add(generateKek(crypto, 'new'), { primary: true });
  // A session keeps working between the new primary and the re-wrap (written under 'new').
  const live = pairs[5]!;
  const sent = sealMessage(crypto, (await store.load(live.alice.sid))!, utf8('during rotation'));
  await store.save(sent.session);
  t.same(openMessage(crypto, live.bob, sent.envelope, 1_000_010).plaintext, utf8('during rotation'));

  const rewritten = store.rewrapAll(cipher.rewrap);
  t.equal(rewritten, total - 1, 'every sealed value was rewritten once, except the one already under the new primary');
  t.ok(sealedValues().every((v) => cipher.kekOf(v) === 'new'), 'all under the new primary');
  t.equal(store.rewrapAll(cipher.rewrap), 0, 'a second run rewrites nothing');

  box.keyring.retire('old');
  for (const p of pairs.slice(0, 10)) {
    const loaded = await store.load(p.alice.sid);
    t.ok(loaded && bytesEqual(loaded.sid, p.alice.sid), 'a session loads after the old KEK is retired');
  }
  const lookup = await store.lookup({ ik: new Uint8Array(32), ikSig: new Uint8Array(64), ek: new Uint8Array(32), spkId: 1, opkId: published.opks[0]!.id });
  t.ok(lookup.spk && lookup.opk, 'prekey secrets open after the retirement');
  await store.close();

  const oldOnly = new SqliteSessionStore({ path, cipher: atRestCipher(new SecretBox(crypto, new Keyring([copyOf(oldKek)]))) });
  t.teardown(() => oldOnly.close());
  await t.rejects(oldOnly.load(pairs[0]!.alice.sid), { code: 'kek_unknown' }, 'the retired KEK alone opens nothing');
});

t.test('a record that does not open is reported; every other record is still re-wrapped', async (t) => {
  const box = new SecretBox(crypto, new Keyring([generateKek(crypto, 'old')]));
  const cipher = atRestCipher(box);
  const store = new SqliteSessionStore({ path: ':memory:', cipher });
  t.teardown(() => store.close());
  for (let i = 0; i < REWRAP_BATCH + 10; i++) await store.save(establishedPair(crypto, 1_000_000 + i).alice);
  const published = publishPrekeys(crypto, establishedPair(crypto).bobId, { opks: 3, pq: true, pqOpks: 2 });
  await store.putSignedPrekey(published.secrets);
  await store.putOneTimePrekeys(published.opks.map((o) => o.secret));
  await store.putPqOneTimePrekeys(published.pqOpks.map((o) => o.secret));
  // Damage the first session row (in sid order) and one prekey: a flipped bit in the wrapped data key.
  const damage = (table: string, key: string, column: string) => {
    const row = store.db.prepare(`SELECT ${key} AS k, ${column} AS v FROM ${table} ORDER BY ${key} LIMIT 1`).get() as { k: string | number; v: Buffer };
    const bad = Buffer.from(row.v);
    bad[10]! ^= 1;
    store.db.prepare(`UPDATE ${table} SET ${column} = ? WHERE ${key} = ?`).run(bad, row.k);
    return row.k;
  };
  const badSid = damage('session', 'sid', 'state');
  const badOpk = damage('prekey_one_time', 'id', 'secret');

  box.keyring.add(generateKek(crypto, 'new'), { primary: true });
  const err = t.throws(() => store.rewrapAll(cipher.rewrap)) as RewrapIncompleteError;
  t.ok(err instanceof RewrapIncompleteError);
  t.match(err, { code: 'rewrap_incomplete', message: `session:${badSid}` });
  const sealedTotal = REWRAP_BATCH + 10 + 1 + 3 + 3;
  t.same(err.failed, [
    { context: `session:${badSid}`, code: 'secret_auth_failed' },
    { context: `opk:${badOpk}`, code: 'secret_auth_failed' },
  ]);
  t.equal(err.rewritten, sealedTotal - 2, 'every other record was rewritten');
  const keks = ['state FROM session', 'secret FROM prekey_signed', 'secret FROM prekey_one_time', 'seed FROM prekey_pq'].flatMap((from) =>
    (store.db.prepare(`SELECT ${from}`).pluck().all() as Buffer[]).map((v) => cipher.kekOf(new Uint8Array(v))),
  );
  t.equal(keks.length, sealedTotal);
  t.same(keks.filter((k) => k !== 'new'), ['old', 'old'], 'only the two damaged records still name the old KEK');
  t.throws(() => store.rewrapAll(cipher.rewrap), { code: 'rewrap_incomplete', rewritten: 0 }, 'a second run still reports them');
});
