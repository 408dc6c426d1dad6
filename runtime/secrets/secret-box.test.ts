import t from 'tap';
import { providers } from '../crypto/index.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { SecretsError } from './errors.ts';
import { Keyring, generateKek } from './keyring.ts';
import { MAX_SECRET_BYTES, SecretBox, wrappedFromBytes, wrappedToBytes, type WrappedSecret } from './secret-box.ts';

const ref = { purpose: 'identity', id: 'did:talos:z6MkExample' };
const other = { purpose: 'identity', id: 'did:talos:z6MkOther' };

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof SecretsError ? err.code : `not a SecretsError: ${String(err)}`;
  }
  return undefined;
}

for (const crypto of providers()) {
  t.test(`${crypto.name}: seal and open`, async (t) => {
    const kek = generateKek(crypto, 'a');
    const box = new SecretBox(crypto, new Keyring([kek]));
    const secret = utf8('the identity seed');
    const w = box.seal(ref, secret);
    t.equal(w.kek, 'a');
    t.ok(bytesEqual(box.open(ref, w), secret));
    t.not(w.ct, toB64u(secret), 'ciphertext is not the plaintext');
    const again = box.seal(ref, secret);
    t.not(again.dek, w.dek, 'a fresh DEK and nonce per seal');
    t.not(again.ct, w.ct);
    t.ok(bytesEqual(box.open(ref, box.seal(ref, new Uint8Array(0))), new Uint8Array(0)), 'empty secret');
  });

  t.test(`${crypto.name}: a ciphertext is bound to its record and its KEK id`, async (t) => {
    const ring = new Keyring([generateKek(crypto, 'a'), generateKek(crypto, 'b')], 'a');
    const box = new SecretBox(crypto, ring);
    const w = box.seal(ref, utf8('x'));
    t.equal(code(() => box.open(other, w)), 'secret_auth_failed', 'moved to another id');
    t.equal(code(() => box.open({ purpose: 'session', id: ref.id }, w)), 'secret_auth_failed', 'moved to another purpose');
    t.equal(code(() => box.open(ref, { ...w, kek: 'b' })), 'secret_auth_failed', 'relabelled KEK id');
    // Swap the DEK of one record into another: both halves are record-bound.
    const w2 = box.seal(other, utf8('y'));
    t.equal(code(() => box.open(ref, { ...w, dek: w2.dek })), 'secret_auth_failed', 'foreign wrapped DEK');
    const ct = fromB64u(w.ct);
    ct[ct.length - 1]! ^= 1;
    t.equal(code(() => box.open(ref, { ...w, ct: toB64u(ct) })), 'secret_auth_failed', 'tampered ciphertext');
  });

  t.test(`${crypto.name}: rewrap moves the DEK to the new primary without touching the data`, async (t) => {
    const ring = new Keyring([generateKek(crypto, 'old')]);
    const box = new SecretBox(crypto, ring);
    const w = box.seal(ref, utf8('payload'));
    t.notOk(box.needsRewrap(w));
    t.same(box.rewrap(ref, w), w, 'already under the primary: unchanged');
    ring.add(generateKek(crypto, 'new'), { primary: true });
    t.ok(box.needsRewrap(w));
    const r = box.rewrap(ref, w);
    t.equal(r.kek, 'new');
    t.equal(r.ct, w.ct, 'data ciphertext is byte for byte the same');
    t.not(r.dek, w.dek);
    t.equal(fromB64u(r.dek).length, 72);
    t.same(box.open(ref, w), utf8('payload'), 'the old form still opens while its KEK is live');
    t.same(box.open(ref, r), utf8('payload'));
    t.equal(code(() => box.rewrap(other, w)), 'secret_auth_failed', 'rewrap checks the record binding');
    ring.retire('old');
    t.equal(code(() => box.open(ref, w)), 'kek_unknown', 'after retirement the old form is unreadable');
    t.same(box.open(ref, r), utf8('payload'));
  });

  t.test(`${crypto.name}: byte form round-trips`, async (t) => {
    const box = new SecretBox(crypto, new Keyring([generateKek(crypto, 'kek-1')]));
    const w = box.seal(ref, utf8('bytes'));
    const bytes = wrappedToBytes(w);
    t.equal(bytes[0], 1, 'version byte');
    t.same(wrappedFromBytes(bytes), w);
    t.same(box.open(ref, wrappedFromBytes(bytes)), utf8('bytes'));
    t.equal(code(() => wrappedFromBytes(bytes.subarray(0, 50))), 'secret_malformed', 'truncated');
    const v2 = Uint8Array.from(bytes);
    v2[0] = 2;
    t.equal(code(() => wrappedFromBytes(v2)), 'secret_malformed', 'unknown version');
    const badId = Uint8Array.from(bytes);
    badId[2] = 0xff; // not UTF-8
    t.equal(code(() => wrappedFromBytes(badId)), 'secret_malformed', 'a KEK id that is not UTF-8');
  });
}

t.test('a record sealed by one provider opens with the other', async (t) => {
  const [noble, node] = providers();
  const kek = generateKek(noble!, 'shared');
  const a = new SecretBox(noble!, new Keyring([kek]));
  const b = new SecretBox(node!, new Keyring([kek]));
  t.same(b.open(ref, a.seal(ref, utf8('n→o'))), utf8('n→o'));
  t.same(a.open(ref, b.seal(ref, utf8('o→n'))), utf8('o→n'));
});

t.test('refusals: malformed records, bad refs, oversize secrets; nothing is returned', async (t) => {
  const [crypto] = providers();
  const box = new SecretBox(crypto!, new Keyring([generateKek(crypto!, 'a')]));
  const w = box.seal(ref, utf8('x'));
  const bad: unknown[] = [
    null,
    'text',
    { ...w, v: 2 },
    { ...w, extra: 1 },
    { v: 1, kek: 'a', dek: w.dek },
    { ...w, kek: 'bad id!' },
    { ...w, dek: w.dek.slice(1) },
    { ...w, ct: 'AAAA' },
    { ...w, ct: w.ct + '=' },
  ];
  for (const value of bad) t.equal(code(() => box.open(ref, value as WrappedSecret)), 'secret_malformed', JSON.stringify(value)?.slice(0, 40));
  t.equal(code(() => box.seal({ purpose: 'Bad Purpose', id: 'x' }, utf8('x'))), 'secret_bad_record');
  t.equal(code(() => box.seal({ purpose: 'ok', id: '' }, utf8('x'))), 'secret_bad_record');
  t.equal(code(() => box.seal({ purpose: 'ok', id: 'x'.repeat(513) }, utf8('x'))), 'secret_bad_record');
  t.equal(code(() => box.seal(ref, new Uint8Array(MAX_SECRET_BYTES + 1))), 'secret_too_large');
  t.equal(code(() => box.open(ref, { ...w, kek: 'zz' })), 'kek_unknown');
});
