import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { providers } from '../crypto/index.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { generateIdentity } from '../identity/identity.ts';
import { loadKeyFile, saveKeyFile } from '../identity/key-file.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { Keyring, generateKek, type Kek } from './keyring.ts';
import { SecretBox } from './secret-box.ts';
import { KEY_FILE_ALG, atRestCipher, keyFileCipher, rotateKeyFile } from './seams.ts';

const copyOf = (k: Kek): Kek => ({ id: k.id, key: Uint8Array.from(k.key) });

for (const crypto of providers()) {
  t.test(`${crypto.name}: identity key files sealed by envelope encryption, rotated, old KEK retired`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'talos-keyfile-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const k1 = generateKek(crypto, 'k1');
    const box = new SecretBox(crypto, new Keyring([copyOf(k1)]));
    const cipher = keyFileCipher(box);
    const alice = generateIdentity(crypto);
    const bob = generateIdentity(crypto);
    const [pa, pb] = [join(dir, 'alice.json'), join(dir, 'bob.json')];
    saveKeyFile(pa, alice, { created: 1_700_000_000_000, cipher });
    saveKeyFile(pb, bob, { created: 1_700_000_000_000, cipher });
    const json = JSON.parse(readFileSync(pa, 'utf8'));
    t.same(json.protection, { alg: KEY_FILE_ALG });
    t.type(json.secrets, 'string');
    t.notOk(readFileSync(pa, 'utf8').includes(Buffer.from(alice.sig.secretKey).toString('base64url')), 'no clear secret in the file');
    t.ok(bytesEqual(loadKeyFile(crypto, pa, { cipher }).sig.secretKey, alice.sig.secretKey));

    // Sealed secrets moved into another identity's file do not open there.
    const other = JSON.parse(readFileSync(pb, 'utf8'));
    writeFileSync(join(dir, 'swapped.json'), JSON.stringify({ ...other, secrets: json.secrets }), { mode: 0o600 });
    t.throws(() => loadKeyFile(crypto, join(dir, 'swapped.json'), { cipher }), { code: 'key_file_protection' });

    // Rotation: new primary, re-seal each file, retire the old KEK.
    box.keyring.add(generateKek(crypto, 'k2'), { primary: true });
    t.equal(cipher.kekOf(Buffer.from(json.secrets, 'base64url')), 'k1');
    t.ok(bytesEqual(loadKeyFile(crypto, pa, { cipher }).dh.secretKey, alice.dh.secretKey), 'readable during the rotation');
    t.equal(rotateKeyFile(crypto, pa, box), true);
    t.equal(rotateKeyFile(crypto, pa, box), false, 'idempotent');
    t.equal(rotateKeyFile(crypto, pb, box), true);
    box.keyring.retire('k1');
    t.equal(JSON.parse(readFileSync(pa, 'utf8')).created, 1_700_000_000_000, 'creation time kept');
    t.ok(bytesEqual(loadKeyFile(crypto, pa, { cipher }).sig.secretKey, alice.sig.secretKey));
    t.ok(bytesEqual(loadKeyFile(crypto, pb, { cipher }).sig.secretKey, bob.sig.secretKey));
    const oldOnly = keyFileCipher(new SecretBox(crypto, new Keyring([copyOf(k1)])));
    t.throws(() => loadKeyFile(crypto, pa, { cipher: oldOnly }), { code: 'key_file_protection' }, 'the retired KEK alone opens nothing');
  });

  t.test(`${crypto.name}: the session store's at-rest cipher: bound to its context, re-wrappable`, async (t) => {
    const box = new SecretBox(crypto, new Keyring([generateKek(crypto, 'a')]));
    const cipher = atRestCipher(box);
    const sealed = cipher.seal(utf8('{"ratchet":1}'), 'session:abc');
    t.same(cipher.open(sealed, 'session:abc'), utf8('{"ratchet":1}'));
    t.throws(() => cipher.open(sealed, 'session:other'), { code: 'secret_auth_failed' }, 'moved to another session');
    box.keyring.add(generateKek(crypto, 'b'), { primary: true });
    const rewrapped = cipher.rewrap(sealed, 'session:abc');
    t.equal(cipher.kekOf(rewrapped), 'b');
    box.keyring.retire('a');
    t.same(cipher.open(rewrapped, 'session:abc'), utf8('{"ratchet":1}'));
    t.throws(() => cipher.open(sealed, 'session:abc'), { code: 'kek_unknown' });

    // Through the real SQLite session store: prekey secrets are stored sealed and read back.
    const store = new SqliteSessionStore({ path: ':memory:', cipher });
    t.teardown(() => store.db.close());
    const opk = crypto.x25519KeyPair();
    await store.putOneTimePrekeys([{ id: 7, ...opk }]);
    const raw = store.db.prepare('SELECT secret FROM prekey_one_time WHERE id = 7').get() as { secret: Buffer };
    t.notOk(Buffer.from(raw.secret).includes(Buffer.from(opk.secretKey)), 'the stored row does not hold the secret');
    t.equal(cipher.kekOf(new Uint8Array(raw.secret)), 'b');
    const found = await store.lookup({ ik: new Uint8Array(32), ikSig: new Uint8Array(64), ek: new Uint8Array(32), spkId: 1, opkId: 7 });
    t.ok(found.opk && bytesEqual(found.opk.secretKey, opk.secretKey));
  });
}

t.test('rotateKeyFile: a plaintext key file is left alone; one that does not open or parse stops the rotation', async (t) => {
  const [crypto] = providers();
  const dir = mkdtempSync(join(tmpdir(), 'talos-keyfile-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const box = new SecretBox(crypto!, new Keyring([generateKek(crypto!, 'k1')]));
  const plain = join(dir, 'plain.json');
  saveKeyFile(plain, generateIdentity(crypto!), { created: 1_700_000_000_000 });
  const before = readFileSync(plain, 'utf8');
  t.equal(rotateKeyFile(crypto!, plain, box), false, 'nothing to re-seal');
  t.equal(readFileSync(plain, 'utf8'), before, 'unchanged');
  // Sealed under a KEK this ring does not hold: an error, not a silent skip.
  const sealed = join(dir, 'sealed.json');
  const otherBox = new SecretBox(crypto!, new Keyring([generateKek(crypto!, 'elsewhere')]));
  saveKeyFile(sealed, generateIdentity(crypto!), { created: 1_700_000_000_000, cipher: keyFileCipher(otherBox) });
  t.throws(() => rotateKeyFile(crypto!, sealed, box));
  const truncated = join(dir, 'truncated.json');
  writeFileSync(truncated, before.slice(0, 40), { mode: 0o600 });
  t.throws(() => rotateKeyFile(crypto!, truncated, box), { code: 'key_file_malformed' });
  t.throws(() => rotateKeyFile(crypto!, join(dir, 'missing.json'), box), { code: 'key_file_io' });
});
