import t from 'tap';
import fc from 'fast-check';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeToken, encodeToken, mintToken } from '../capability/token.ts';
import { createCryptoProvider } from '../crypto/index.ts';
import { encodeKeyFile, generateIdentity, loadKeyFile } from '../identity/index.ts';
import { fromB64u, toB64u } from './base64url.ts';
import { bytesEqual, concatBytes, fromHex, fromUtf8, readU32, toHex, utf8, writeU32 } from './bytes.ts';
import { parseJson } from './json.ts';

t.test('strict UTF-8', async (t) => {
  t.equal(fromUtf8(utf8('héllo 🌍')), 'héllo 🌍');
  for (const bad of [[0xc3], [0xff], [0xed, 0xa0, 0x80] /* encoded surrogate */, [0xc0, 0x80] /* overlong NUL */]) {
    t.throws(() => fromUtf8(new Uint8Array(bad)), { code: 'bad_utf8' }, String(bad));
  }
});

t.test('a byte-order mark is kept, so the strict JSON rules refuse it (SPEC 1.2)', async (t) => {
  const BOM = new Uint8Array([0xef, 0xbb, 0xbf]);
  t.equal(fromUtf8(concatBytes(BOM, utf8('{}'))), '\ufeff{}', 'not stripped');
  t.throws(() => parseJson(fromUtf8(concatBytes(BOM, utf8('{}')))), { code: 'bad_json' });

  const crypto = createCryptoProvider();
  const id = generateIdentity(crypto);
  const dir = mkdtempSync(join(tmpdir(), 'talos-bom-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'k.key.json');
  writeFileSync(path, concatBytes(BOM, utf8(JSON.stringify(encodeKeyFile(id, { created: 1 })))));
  chmodSync(path, 0o600);
  t.throws(() => loadKeyFile(crypto, path), { code: 'key_file_malformed' }, 'a key file with a BOM does not load');

  const token = mintToken(crypto, { issuerKey: id.sig.secretKey, sub: id.did, aud: id.did, grants: [{ method: 'tools/list' }], nbf: 0, exp: 2e9 });
  const withBom = toB64u(concatBytes(BOM, fromB64u(encodeToken(token))));
  t.throws(() => decodeToken(withBom), { code: 'malformed' }, 'one compact form per token');
});

t.test('hex: lower case, even length', async (t) => {
  t.equal(toHex(new Uint8Array([0, 0xab, 0xff])), '00abff');
  t.same(fromHex('00abff'), new Uint8Array([0, 0xab, 0xff]));
  for (const bad of ['0', 'AB', '0g', ' 00', '00 ']) t.throws(() => fromHex(bad), { code: 'bad_hex' }, bad);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => bytesEqual(fromHex(toHex(b)), b)));
});

t.test('u32 big-endian', async (t) => {
  const out = new Uint8Array(6);
  writeU32(out, 1, 0x01020304);
  t.same(out, new Uint8Array([0, 1, 2, 3, 4, 0]));
  t.equal(readU32(out, 1), 0x01020304);
  writeU32(out, 0, 0xffffffff);
  t.equal(readU32(out, 0), 0xffffffff);
  for (const bad of [-1, 2 ** 32, 1.5, NaN]) t.throws(() => writeU32(out, 0, bad), { code: 'bad_u32' }, String(bad));
  // A subarray view writes at its own offset.
  const big = new Uint8Array(8);
  writeU32(big.subarray(4), 0, 7);
  t.same(big, new Uint8Array([0, 0, 0, 0, 0, 0, 0, 7]));
});

t.test('concat and compare', async (t) => {
  t.same(concatBytes(new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3])), new Uint8Array([1, 2, 3]));
  t.ok(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])));
  t.notOk(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])));
  t.notOk(bytesEqual(new Uint8Array([1]), new Uint8Array([1, 0])));
});
