import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { providers } from '../crypto/index.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { SecretsError } from './errors.ts';
import { Keyring, generateKek, type Kek } from './keyring.ts';
import { SecretBox, type SecretRef } from './secret-box.ts';
import { SqliteSecretStore } from './sqlite-store.ts';
import { MemorySecretStore, type SecretStore } from './store.ts';
import { SecretVault } from './vault.ts';

const RECORDS = 600;
const refOf = (i: number): SecretRef => ({ purpose: i % 3 === 0 ? 'identity' : 'session', id: `rec-${i}` });
const copyOf = (k: Kek): Kek => ({ id: k.id, key: Uint8Array.from(k.key) });

for (const crypto of providers()) {
  t.test(`${crypto.name}: KEK rotation under continuous traffic from two processes`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'talos-vault-'));
    const file = join(dir, 'secrets.db');
    // Two "processes": two connections to one SQLite file, each with its own keyring.
    const storeA = new SqliteSecretStore(file);
    const storeB = new SqliteSecretStore(file);
    t.teardown(() => {
      storeA.close();
      storeB.close();
      rmSync(dir, { recursive: true, force: true });
    });
    const k1 = generateKek(crypto, 'k1');
    const k2 = generateKek(crypto, 'k2');
    const a = new SecretVault(crypto, new Keyring([copyOf(k1)]), storeA);
    const b = new SecretVault(crypto, new Keyring([copyOf(k1)]), storeB);

    const expected = new Map<number, Uint8Array>();
    for (let i = 0; i < RECORDS; i++) {
      const value = crypto.randomBytes(64 + (i % 7) * 300); // identity keys to session states
      await a.put(refOf(i), value);
      expected.set(i, value);
    }

    let stop = false;
    let ops = 0;
    let opsDuringRewrap = 0;
    let rewrapping = false;
    const failures: string[] = [];
    const traffic = async (vault: SecretVault, seed: number) => {
      let n = seed;
      while (!stop) {
        n = (n * 1103515245 + 12345) % 2147483648;
        const i = n % RECORDS;
        try {
          if (n % 5 === 0) {
            const value = utf8(`write ${seed} ${ops}`);
            expected.set(i, value);
            await vault.put(refOf(i), value);
          } else {
            const got = await vault.get(refOf(i));
            if (!got || !bytesEqual(got, expected.get(i)!)) failures.push(`wrong value for ${i}`);
          }
        } catch (err) {
          failures.push(`${(err as SecretsError).code ?? err} on ${i}`);
        }
        ops++;
        if (rewrapping) opsDuringRewrap++;
        if (ops % 8 === 0) await new Promise((r) => setImmediate(r));
      }
    };
    const running = [traffic(a, 1), traffic(b, 2)];

    // The documented procedure: every process learns the new KEK, then switches its primary,
    // then one process re-wraps, then every process retires what no record needs.
    b.keyring.add(copyOf(k2));
    a.keyring.add(copyOf(k2));
    a.keyring.setPrimary('k2');
    b.keyring.setPrimary('k2');
    rewrapping = true;
    const stats = await a.rewrapAll({ batchSize: 25 });
    rewrapping = false;
    t.same(stats.failed, [], 'no record failed to re-wrap');
    t.ok(stats.rewrapped > 0 && stats.rewrapped + stats.raced <= RECORDS);
    t.same(Object.fromEntries(await storeA.countByKek()), { k2: RECORDS }, 'every record is under the new KEK');
    t.same((await a.retireUnused()).retired, ['k1']);
    await b.retire('k1');
    const before = ops;
    while (ops < before + 500) await new Promise((r) => setImmediate(r));
    stop = true;
    await Promise.all(running);

    t.ok(opsDuringRewrap > 100, `traffic ran during the re-wrap (${opsDuringRewrap} ops)`);
    t.same(failures, [], `zero failed reads or decryptions in ${ops} operations`);
    t.same(a.keyring.ids(), ['k2']);

    // Afterwards nothing opens with the retired KEK alone, not even relabelled.
    const oldOnly = new SecretBox(crypto, new Keyring([copyOf(k1)]));
    let unreadable = 0;
    for (let i = 0; i < RECORDS; i++) {
      const w = (await storeA.get(refOf(i)))!;
      t.equal(w.kek, 'k2');
      try {
        oldOnly.open(refOf(i), w);
      } catch (err) {
        if ((err as SecretsError).code !== 'kek_unknown') continue;
        try {
          oldOnly.open(refOf(i), { ...w, kek: 'k1' });
        } catch (err2) {
          if ((err2 as SecretsError).code === 'secret_auth_failed') unreadable++;
        }
      }
      t.ok(bytesEqual((await a.get(refOf(i)))!, expected.get(i)!));
    }
    t.equal(unreadable, RECORDS, 'every record refuses the retired KEK');
  });
}

/** A store whose compare-and-swap fails after `budget` calls: a crash in the middle of a rotation. */
class CrashingStore extends MemorySecretStore {
  constructor(public budget: number) {
    super();
  }
  override async compareAndSwap(...args: Parameters<SecretStore['compareAndSwap']>) {
    if (this.budget-- <= 0) throw new Error('simulated crash');
    return super.compareAndSwap(...args);
  }
}

t.test('rotate is idempotent: a rotation interrupted half-way completes when re-run', async (t) => {
  const [crypto] = providers();
  const store = new CrashingStore(40);
  const vault = new SecretVault(crypto!, new Keyring([generateKek(crypto!, 'old')]), store);
  for (let i = 0; i < 100; i++) await vault.put(refOf(i), utf8(`v${i}`));
  const next = generateKek(crypto!, 'next');
  await t.rejects(vault.rotate(next, { batchSize: 16 }), /simulated crash/);
  t.same(Object.fromEntries(await store.countByKek()), { old: 60, next: 40 }, 'half done');
  t.same(vault.keyring.ids().sort(), ['next', 'old'], 'the old KEK is still live: every record reads');
  for (let i = 0; i < 100; i++) t.same(await vault.get(refOf(i)), utf8(`v${i}`));
  store.budget = Infinity;
  const result = await vault.rotate(next, { batchSize: 16 });
  t.equal(result.rewrapped, 60);
  t.same(result.retired, ['old']);
  for (let i = 0; i < 100; i++) t.same(await vault.get(refOf(i)), utf8(`v${i}`));
});

t.test('a KEK that still wraps records is never retired', async (t) => {
  const [crypto] = providers();
  const store = new MemorySecretStore();
  const vault = new SecretVault(crypto!, new Keyring([generateKek(crypto!, 'old')]), store);
  await vault.put(refOf(1), utf8('x'));
  vault.keyring.add(generateKek(crypto!, 'new'), { primary: true });
  await t.rejects(vault.retire('old'), { code: 'kek_in_use' });
  t.same(await vault.retireUnused(), { retired: [], kept: ['old'] });
  t.same(await vault.get(refOf(1)), utf8('x'));
  // A record that cannot be opened is reported and blocks retirement of its KEK.
  const w = (await store.get(refOf(1)))!;
  await store.put(refOf(2), { ...w }); // moved to another record: fails to open there
  const result = await vault.rotate(generateKek(crypto!, 'newer'));
  t.same(result.failed, [refOf(2)]);
  t.same(result.retired, [], 'nothing retired while a record is unreadable');
  t.same(await vault.get(refOf(1)), utf8('x'));
  t.equal(await vault.get({ purpose: 'identity', id: 'nothing' }), undefined);
  t.ok(await vault.delete(refOf(2)));
  t.same((await vault.retireUnused()).retired.sort(), ['new', 'old']);
});

t.test('a secret read again is served from memory only while its stored record is unchanged', async (t) => {
  const [crypto] = providers();
  const store = new MemorySecretStore();
  const vault = new SecretVault(crypto!, new Keyring([generateKek(crypto!, 'old')]), store);
  const ref = refOf(1);
  await vault.put(ref, utf8('token-1'));
  const first = (await vault.get(ref))!;
  first.fill(0);
  t.same(await vault.get(ref), utf8('token-1'), 'a caller wiping its copy does not wipe the remembered one');
  await store.put(ref, vault.box.seal(ref, utf8('token-2'))); // another process writes the record
  t.same(await vault.get(ref), utf8('token-2'), 'a record rewritten behind the vault is read afresh');
  await store.delete(ref);
  t.equal(await vault.get(ref), undefined, 'a record deleted behind the vault is gone');
  // Tampering with a stored record after a read: refused, not answered from memory.
  await vault.put(ref, utf8('token-3'));
  t.same(await vault.get(ref), utf8('token-3'));
  const w = (await store.get(ref))!;
  await store.put(ref, { ...w, ct: w.ct.slice(0, -2) + (w.ct.endsWith('A') ? 'BA' : 'AA') });
  await t.rejects(vault.get(ref), { code: /secret_/ }, 'a tampered record is refused');
  // A retired KEK: a record still naming it is unreadable, even though it was read before.
  const vault2 = new SecretVault(crypto!, new Keyring([generateKek(crypto!, 'a')]), new MemorySecretStore());
  await vault2.put(ref, utf8('token-4'));
  t.same(await vault2.get(ref), utf8('token-4'));
  vault2.keyring.add(generateKek(crypto!, 'b'), { primary: true });
  vault2.keyring.retire('a');
  await t.rejects(vault2.get(ref), { code: 'kek_unknown' }, 'the KEK is gone: no answer from memory');
});

t.test('a KEK staged for a coming rotation is not retired before it has been the primary', async (t) => {
  const [crypto] = providers();
  const store = new MemorySecretStore();
  const vault = new SecretVault(crypto!, new Keyring([generateKek(crypto!, 'old')]), store);
  await vault.put(refOf(1), utf8('x'));
  vault.keyring.add(generateKek(crypto!, 'next')); // step 1: learned as non-primary
  await vault.rewrapAll();
  t.same(await vault.retireUnused(), { retired: [], kept: [] }, 'the hourly job leaves the staged KEK alone');
  t.same(vault.keyring.ids().sort(), ['next', 'old']);
  vault.keyring.setPrimary('next'); // step 2
  await vault.rewrapAll(); // step 3
  t.same(await vault.retireUnused(), { retired: ['old'], kept: [] }, 'step 4 retires the former primary');
  t.same(await vault.get(refOf(1)), utf8('x'));
});
