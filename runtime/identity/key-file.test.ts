import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { providers } from '../crypto/index.ts';
import type { CryptoProvider } from '../crypto/provider.ts';
import { toB64u } from '../encoding/base64url.ts';
import { TalosError } from '../errors.ts';
import { generateIdentity, type Identity } from './identity.ts';
import { decodeKeyFile, encodeKeyFile, loadKeyFile, saveKeyFile, type KeyFileCipher } from './key-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'talos-keyfile-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof TalosError ? err.code : `not a TalosError: ${String(err)}`;
  }
  return undefined;
}
const same = (t: Test, a: Identity, b: Identity) => {
  t.equal(a.did, b.did);
  t.same(a.sig, b.sig);
  t.same(a.dh, b.dh);
};

/** A test cipher standing in for the TGA's: XChaCha20-Poly1305 under a fixed key. */
function testCipher(crypto: CryptoProvider, key: Uint8Array): KeyFileCipher {
  return {
    alg: 'test-xchacha20poly1305',
    seal(plaintext, aad) {
      const nonce = crypto.randomBytes(24);
      return { sealed: crypto.xchachaSeal(key, nonce, plaintext, aad), params: { nonce: toB64u(nonce) } };
    },
    open(sealed, aad, params) {
      const nonce = Buffer.from(String(params?.nonce), 'base64url');
      return crypto.xchachaOpen(key, new Uint8Array(nonce), sealed, aad);
    },
  };
}

let n = 0;
for (const crypto of providers()) {
  const alice = generateIdentity(crypto);
  const bob = generateIdentity(crypto);

  t.test(`${crypto.name}: save then load gives the same identity; mode 0600; no temp files`, async (t) => {
    const path = join(dir, `alice-${n++}.json`);
    saveKeyFile(path, alice, { created: 1_700_000_000_000 });
    t.equal(statSync(path).mode & 0o777, 0o600);
    same(t, loadKeyFile(crypto, path), alice);
    saveKeyFile(path, bob, { created: 1_700_000_000_001 }); // atomic replace of an existing file
    same(t, loadKeyFile(crypto, path), bob);
    t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left behind');
    const json = JSON.parse(readFileSync(path, 'utf8'));
    t.same(Object.keys(json).sort(), ['created', 'did', 'ik_dh', 'kind', 'protection', 'secrets', 'v']);
    t.same(json.protection, { alg: 'none' });
  });

  t.test(`${crypto.name}: refusals`, async (t) => {
    const file = encodeKeyFile(alice, { created: 5 });
    const clear = file.secrets as { ik_sig: string; ik_dh: string };
    const bobs = encodeKeyFile(bob, { created: 5 }).secrets as { ik_sig: string; ik_dh: string };
    t.equal(code(() => decodeKeyFile(crypto, { ...file, secrets: { ...clear, ik_sig: bobs.ik_sig } })), 'identity_key_mismatch', 'Ed25519 secret of another identity');
    t.equal(code(() => decodeKeyFile(crypto, { ...file, secrets: { ...clear, ik_dh: bobs.ik_dh } })), 'identity_key_mismatch', 'X25519 secret of another identity');
    t.equal(code(() => decodeKeyFile(crypto, { ...file, did: bob.did })), 'identity_key_mismatch', 'did of another identity');
    t.equal(code(() => decodeKeyFile(crypto, { ...file, extra: 1 })), 'key_file_malformed');
    t.equal(code(() => decodeKeyFile(crypto, { ...file, secrets: 'c2VhbGVk' })), 'key_file_malformed', 'sealed secrets with alg none');
    t.equal(code(() => decodeKeyFile(crypto, { ...file, protection: { alg: 'other' } })), 'key_file_protection');

    const path = join(dir, `bad-${n++}.json`);
    writeFileSync(path, JSON.stringify(file).replace('{', '{"v":1,'), { mode: 0o600 });
    t.equal(code(() => loadKeyFile(crypto, path)), 'key_file_malformed', 'duplicate key');
    writeFileSync(path, JSON.stringify(file) + 'x', { mode: 0o600 });
    t.equal(code(() => loadKeyFile(crypto, path)), 'key_file_malformed', 'trailing garbage');
    writeFileSync(path, JSON.stringify(file), { mode: 0o600 });
    chmodSync(path, 0o644);
    t.equal(code(() => loadKeyFile(crypto, path)), 'key_file_permissions');
    chmodSync(path, 0o600);
    same(t, loadKeyFile(crypto, path), alice);
    t.equal(code(() => loadKeyFile(crypto, join(dir, 'missing.json'))), 'key_file_io');
    t.equal(code(() => loadKeyFile(crypto, dir)), 'key_file_io', 'a directory');
    t.equal(code(() => saveKeyFile(join(dir, 'no-such-dir', 'k.json'), alice, { created: 1 })), 'key_file_io');
    t.equal(code(() => saveKeyFile(join(dir, 'k.json'), alice, { created: 1.5 })), 'schema_invalid');
    t.same(readdirSync(dir).filter((f) => f.endsWith('.tmp') || f === 'k.json'), [], 'a refused save writes nothing');
  });

  t.test(`${crypto.name}: the cipher seam seals and binds the secrets to the file`, async (t) => {
    const cipher = testCipher(crypto, new Uint8Array(32).fill(1));
    const path = join(dir, `sealed-${n++}.json`);
    saveKeyFile(path, alice, { created: 9, cipher });
    const text = readFileSync(path, 'utf8');
    t.notMatch(text, toB64u(alice.sig.secretKey), 'the Ed25519 secret is not in clear');
    t.notMatch(text, toB64u(alice.dh.secretKey), 'the X25519 secret is not in clear');
    same(t, loadKeyFile(crypto, path, { cipher }), alice);
    t.equal(code(() => loadKeyFile(crypto, path)), 'key_file_protection', 'plaintext loader refuses a sealed file');
    t.equal(code(() => loadKeyFile(crypto, path, { cipher: testCipher(crypto, new Uint8Array(32).fill(2)) })), 'key_file_protection', 'wrong key');
    const json = JSON.parse(text);
    t.equal(code(() => decodeKeyFile(crypto, { ...json, created: 10 }, { cipher })), 'key_file_protection', 'header is bound as AAD');
    t.equal(code(() => decodeKeyFile(crypto, { ...json, secrets: encodeKeyFile(alice, { created: 9 }).secrets }, { cipher })), 'key_file_malformed', 'clear secrets under a sealing alg');
  });
}

t.test('a FIFO in place of the key file is refused at once, never waited on', async (t) => {
  const fifo = join(dir, 'fifo.json');
  execFileSync('mkfifo', ['-m', '600', fifo]);
  // In a child with a deadline: a blocking open would wait for a writer forever.
  const script = `import { loadKeyFile } from ${JSON.stringify(new URL('./key-file.ts', import.meta.url).href)};
    import { createCryptoProvider } from ${JSON.stringify(new URL('../crypto/index.ts', import.meta.url).href)};
    try { loadKeyFile(createCryptoProvider(), ${JSON.stringify(fifo)}); console.log('loaded'); } catch (err) { console.log(err.code); }`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  t.equal(out.trim(), 'key_file_io');
});
