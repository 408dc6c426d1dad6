import t from 'tap';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNobleProvider } from '../crypto/noble.ts';
import { toB64u } from '../encoding/base64url.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { SecretsError } from './errors.ts';
import { Keyring, MAX_LIVE_KEKS, deriveKekId, formatKekList, generateKek, parseKekList } from './keyring.ts';
import { formatKeyringFile, loadKeyring, parseKeyringFile, saveKeyringFile } from './keyring-source.ts';

const crypto = createNobleProvider();
const key = (byte: number) => new Uint8Array(32).fill(byte);

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SecretsError ? err.code : `not a SecretsError: ${String(err)}`;
  }
  return undefined;
}

t.test('keyring: one primary, several live keys, retire wipes', async (t) => {
  const a = key(1);
  const ring = new Keyring([{ id: 'a', key: a }, { id: 'b', key: key(2) }], 'b');
  t.equal(ring.primaryId, 'b');
  t.same(ring.ids().sort(), ['a', 'b']);
  a.fill(9);
  t.ok(bytesEqual(ring.key('a'), key(1)), 'the ring holds its own copy');
  t.equal(code(() => ring.retire('b')), 'kek_is_primary');
  const held = ring.key('a');
  ring.retire('a');
  t.notOk(ring.has('a'));
  t.ok(held.every((x) => x === 0), 'retired key bytes are wiped');
  t.equal(code(() => ring.key('a')), 'kek_unknown');
  ring.add({ id: 'c', key: key(3) });
  t.equal(ring.primaryId, 'b', 'add without primary keeps the primary');
  ring.add({ id: 'c', key: key(3) }, { primary: true });
  t.equal(ring.primaryId, 'c', 'adding the same key again is idempotent and can promote it');
  t.equal(code(() => ring.add({ id: 'c', key: key(4) })), 'kek_duplicate');
  t.equal(code(() => ring.setPrimary('zz')), 'kek_unknown');
  t.equal(ring.primaryId, 'c', 'a refused change changes nothing');
});

t.test('keyring: refuses malformed keys, ids and rings', async (t) => {
  t.equal(code(() => new Keyring([])), 'kek_malformed');
  t.equal(code(() => new Keyring([{ id: 'a', key: new Uint8Array(31) }])), 'kek_malformed');
  t.equal(code(() => new Keyring([{ id: 'a b', key: key(1) }])), 'kek_malformed');
  t.equal(code(() => new Keyring([{ id: 'a', key: key(1) }], 'b')), 'kek_unknown');
  t.equal(code(() => new Keyring([{ id: 'a', key: key(1) }, { id: 'a', key: key(2) }])), 'kek_duplicate');
  const many = Array.from({ length: MAX_LIVE_KEKS + 1 }, (_, i) => ({ id: `k${i}`, key: key(i) }));
  t.equal(code(() => new Keyring(many)), 'kek_malformed');
  const full = new Keyring(many.slice(0, MAX_LIVE_KEKS));
  t.equal(code(() => full.add({ id: 'one-more', key: key(99) })), 'kek_malformed');
});

t.test('TALOS_KEK list: first entry is primary, ids optional and derived from the key', async (t) => {
  const ring = parseKekList(crypto, ` new:${toB64u(key(2))} , ${toB64u(key(1))}`);
  t.equal(ring.primaryId, 'new');
  const derived = deriveKekId(crypto, key(1));
  t.match(derived, /^k[0-9a-f]{16}$/);
  t.equal(deriveKekId(crypto, key(1)), derived, 'same key, same id');
  t.not(deriveKekId(crypto, key(2)), derived);
  t.ok(bytesEqual(ring.key(derived), key(1)));
  const again = parseKekList(crypto, formatKekList(ring));
  t.equal(again.primaryId, 'new');
  t.same(again.ids().sort(), ring.ids().sort());
  t.equal(code(() => parseKekList(crypto, '')), 'kek_malformed');
  t.equal(code(() => parseKekList(crypto, 'a:short')), 'kek_malformed');
  t.equal(code(() => parseKekList(crypto, `a:${toB64u(key(1))}=`)), 'kek_malformed', 'padding refused');
});

t.test('key-ring file: schema-checked, written 0600, loaded from env or file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-kek-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keks.json');
  const ring = new Keyring([generateKek(crypto, 'one'), generateKek(crypto, 'two')], 'two');
  saveKeyringFile(path, ring);
  t.equal(statSync(path).mode & 0o777, 0o600);
  const loaded = parseKeyringFile(readFileSync(path, 'utf8'));
  t.equal(loaded.primaryId, 'two');
  t.ok(bytesEqual(loaded.key('one'), ring.key('one')));
  t.equal(loadKeyring(crypto, { env: { TALOS_KEK_FILE: path } }).primaryId, 'two');
  t.equal(loadKeyring(crypto, { env: {}, file: path }).primaryId, 'two');
  t.equal(loadKeyring(crypto, { env: { TALOS_KEK: `env:${toB64u(key(5))}`, TALOS_KEK_FILE: path } }).primaryId, 'env', 'env wins');
  t.equal(code(() => loadKeyring(crypto, { env: {} })), 'kek_unknown');
  t.equal(code(() => loadKeyring(crypto, { env: { TALOS_KEK_FILE: join(dir, 'missing') } })), 'kek_unknown');

  const doc = JSON.parse(formatKeyringFile(ring)) as Record<string, unknown>;
  const bad = [
    'not json',
    JSON.stringify({ ...doc, extra: true }),
    JSON.stringify({ ...doc, kind: 'other' }),
    JSON.stringify({ ...doc, keys: [] }),
    JSON.stringify({ ...doc, primary: 'three' }),
    JSON.stringify({ ...doc, keys: [{ id: 'one', key: 'AAAA' }] }),
    '{"v":1,"v":1,"kind":"talos-kek-ring","primary":"a","keys":[]}',
  ];
  for (const text of bad) {
    const c = code(() => parseKeyringFile(text));
    t.ok(c === 'kek_malformed' || c === 'kek_unknown', `refused: ${text.slice(0, 30)} (${c})`);
  }
  writeFileSync(path, 'x'.repeat(20_000));
  t.equal(code(() => loadKeyring(crypto, { file: path, env: {} })), 'kek_malformed', 'oversize file');
});
