import t from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createCryptoProvider } from './crypto/index.ts';
import { generateIdentity, loadKeyFile, saveKeyFile } from './identity/index.ts';
import { atRestCipher, generateKek, keyFileCipher, Keyring, SecretBox, wrappedFromBytes } from './secrets/index.ts';
import { SqliteSessionStore } from './store/session-sqlite.ts';
import { createRuntime } from './index.ts';
import { connectAgent, eventually, text, tunnelConfig } from './system-test-kit.ts';

// Secrets at rest wired into the runtime: the gateway's key file and its session store are
// sealed under the KEK ring (envelope encryption, runtime/secrets); the TGA's KEK rotation job
// re-seals the key file and re-wraps the session store under the new primary while the runtime serves.
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-secrets-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const issuer = generateIdentity(crypto);
const gatewayIdentity = generateIdentity(crypto);
const oldKek = generateKek(crypto, 'kek-old');
const newKek = generateKek(crypto, 'kek-new');
const keyFile = join(dir, 'gateway.key.json');
saveKeyFile(keyFile, gatewayIdentity, { created: 1_700_000_000_000, cipher: keyFileCipher(new SecretBox(crypto, new Keyring([oldKek]))) });
const sealedUnder = () => {
  const file = JSON.parse(readFileSync(keyFile, 'utf8')) as { secrets: string };
  return wrappedFromBytes(Buffer.from(file.secrets, 'base64url')).kek;
};

t.test('a sealed key file and session store; KEK rotation re-seals the key file while serving', async (t) => {
  t.equal(sealedUnder(), 'kek-old');
  const sessionsPath = join(dir, 'sessions.sqlite');
  // A session store written before the rotation: its rows are sealed under the old KEK.
  const before = new SqliteSessionStore({ path: sessionsPath, cipher: atRestCipher(new SecretBox(crypto, new Keyring([oldKek]))) });
  await before.putOneTimePrekeys([{ id: 900_000, ...crypto.x25519KeyPair() }]);
  await before.close();
  const runtime = await createRuntime({
    talos: tunnelConfig(issuer, { gateway: { listen: { port: 0 }, name: 'talos.test/secrets', keyFile } }),
    crypto,
    // The operator made a new KEK primary; the old one stays on the ring until nothing needs it.
    keyring: new Keyring([newKek, oldKek]),
    env: {},
    sessionStorePath: sessionsPath,
    jobs: { everyMs: { kekRotation: 200 } },
  });
  t.teardown(() => runtime.stop());
  t.equal(runtime.did, gatewayIdentity.did, 'the sealed key file opened');
  const { client } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.teardown(() => client.close());
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'sealed' } })), 'Echo: sealed');

  const db = new Database(sessionsPath, { readonly: true });
  t.teardown(() => db.close());
  const spk = db.prepare('SELECT secret FROM prekey_signed').all() as { secret: Buffer }[];
  t.ok(spk.length > 0);
  t.same([...new Set(spk.map((r) => wrappedFromBytes(new Uint8Array(r.secret)).kek))], ['kek-new'], 'prekey secrets are sealed under the primary KEK');
  const oldRow = () => wrappedFromBytes(new Uint8Array((db.prepare('SELECT secret FROM prekey_one_time WHERE id = 900000').get() as { secret: Buffer }).secret)).kek;
  t.ok(await eventually(() => (oldRow() === 'kek-new' ? true : undefined)), 'the rotation job re-wrapped the session store row sealed under the old KEK');

  t.ok(await eventually(() => (sealedUnder() === 'kek-new' ? true : undefined)), 'the rotation job re-sealed the key file under the new primary');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'during rotation' } })), 'Echo: during rotation');
  t.equal(loadKeyFile(crypto, keyFile, { cipher: keyFileCipher(new SecretBox(crypto, new Keyring([newKek]))) }).did, gatewayIdentity.did);
  t.throws(() => loadKeyFile(crypto, keyFile, { cipher: keyFileCipher(new SecretBox(crypto, new Keyring([oldKek]))) }), 'the retired KEK alone no longer opens it');
});

t.test('a sealed key file without a KEK is refused with a clear error', async (t) => {
  await t.rejects(
    createRuntime({ talos: tunnelConfig(issuer, { gateway: { listen: { port: 0 }, keyFile } }), crypto, env: {}, jobs: false }),
    { code: 'kek_unknown', message: /TALOS_KEK/ },
  );
});
