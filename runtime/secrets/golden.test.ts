import t from 'tap';
import { readFileSync } from 'node:fs';
import { providers } from '../crypto/index.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { fromHex, toHex } from '../encoding/bytes.ts';
import { SecretsError } from './errors.ts';
import { dataAadOf, dekAadOf } from './golden.ts';
import { Keyring, parseKekList } from './keyring.ts';
import { SecretBox, wrappedFromBytes, wrappedToBytes, type WrappedSecret } from './secret-box.ts';

/** Re-verifies the committed vectors' content (not just their bytes) with both providers. */
const vectors = JSON.parse(readFileSync(new URL('../../contracts/vectors/secrets.json', import.meta.url), 'utf8')) as {
  keks: { id: string; key: string }[];
  kek_list: { text: string; primary: string; ids: string[] };
  cases: { purpose: string; id: string; plaintext_hex: string; data_aad_hex: string; dek_aad_hex: string; dek_hex: string; wrapped: WrappedSecret; bytes_b64u: string }[];
  rewrap: { purpose: string; id: string; from: WrappedSecret; to: WrappedSecret };
  refusals: { what: string; purpose: string; id: string; wrapped: WrappedSecret; code: string }[];
};

for (const crypto of providers()) {
  t.test(`${crypto.name}: secrets.json`, async (t) => {
    const ring = new Keyring(vectors.keks.map((k) => ({ id: k.id, key: fromB64u(k.key, 32) })));
    const box = new SecretBox(crypto, ring);
    for (const c of vectors.cases) {
      const ref = { purpose: c.purpose, id: c.id };
      t.equal(toHex(box.open(ref, c.wrapped)), c.plaintext_hex, `${c.purpose}/${c.id} opens`);
      t.equal(toHex(dataAadOf(ref)), c.data_aad_hex);
      t.equal(toHex(dekAadOf(ref, c.wrapped.kek)), c.dek_aad_hex);
      // The DEK by hand, then the data by hand: the format is exactly what the spec says.
      const wdek = fromB64u(c.wrapped.dek);
      const dek = crypto.xchachaOpen(ring.key(c.wrapped.kek), wdek.subarray(0, 24), wdek.subarray(24), fromHex(c.dek_aad_hex));
      t.equal(toHex(dek), c.dek_hex);
      const ct = fromB64u(c.wrapped.ct);
      t.equal(toHex(crypto.xchachaOpen(dek, ct.subarray(0, 24), ct.subarray(24), fromHex(c.data_aad_hex))), c.plaintext_hex);
      t.equal(toB64u(wrappedToBytes(c.wrapped)), c.bytes_b64u);
      t.same(wrappedFromBytes(fromB64u(c.bytes_b64u)), c.wrapped);
    }
    const { rewrap } = vectors;
    t.equal(rewrap.to.ct, rewrap.from.ct, 're-wrap keeps the data ciphertext');
    t.equal(toHex(box.open(rewrap, rewrap.to)), vectors.cases[0]!.plaintext_hex);
    for (const r of vectors.refusals) {
      let code: string | undefined;
      try {
        box.open({ purpose: r.purpose, id: r.id }, r.wrapped);
      } catch (err) {
        code = err instanceof SecretsError ? err.code : String(err);
      }
      t.equal(code, r.code, r.what);
    }
    const parsed = parseKekList(crypto, vectors.kek_list.text);
    t.equal(parsed.primaryId, vectors.kek_list.primary);
    t.same(parsed.ids(), vectors.kek_list.ids, 'derived KEK id');
  });
}
