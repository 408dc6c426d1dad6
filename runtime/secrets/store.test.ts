import t from 'tap';
import { createNodeProvider } from '../crypto/node.ts';
import { utf8 } from '../encoding/bytes.ts';
import { Keyring, generateKek } from './keyring.ts';
import { SecretBox } from './secret-box.ts';
import { SqliteSecretStore } from './sqlite-store.ts';
import { MemorySecretStore, type SecretStore } from './store.ts';

/** One contract, every SecretStore implementation. */
const crypto = createNodeProvider();
const stores: [string, () => SecretStore][] = [
  ['memory', () => new MemorySecretStore()],
  ['sqlite', () => new SqliteSecretStore(':memory:')],
];

for (const [name, make] of stores) {
  t.test(`${name}: put, get, delete, count, list by KEK with a cursor, compare-and-swap`, async (t) => {
    const store = make();
    t.teardown(() => store.close?.());
    const ring = new Keyring([generateKek(crypto, 'a'), generateKek(crypto, 'b')], 'a');
    const box = new SecretBox(crypto, ring);
    const refs = Array.from({ length: 7 }, (_, i) => ({ purpose: i % 2 ? 'session' : 'identity', id: `r${i}` }));
    for (const ref of refs.slice(0, 4)) await store.put(ref, box.seal(ref, utf8(ref.id)));
    ring.setPrimary('b');
    for (const ref of refs.slice(4)) await store.put(ref, box.seal(ref, utf8(ref.id)));

    t.same(Object.fromEntries(await store.countByKek()), { a: 4, b: 3 });
    const w0 = await store.get(refs[0]!);
    t.ok(w0);
    t.same(box.open(refs[0]!, w0!), utf8('r0'));
    t.equal(await store.get({ purpose: 'identity', id: 'missing' }), undefined);

    // Paging with a cursor returns every record not under 'b', once each, in (purpose, id) order.
    const seen: string[] = [];
    let after;
    for (;;) {
      const page = await store.listNotWrappedBy('b', 3, after);
      if (page.length === 0) break;
      t.ok(page.length <= 3);
      for (const r of page) {
        t.equal(r.wrapped.kek, 'a');
        seen.push(`${r.purpose}/${r.id}`);
      }
      after = page[page.length - 1];
    }
    t.same(seen, ['identity/r0', 'identity/r2', 'session/r1', 'session/r3']);

    // Compare-and-swap: only when the stored value is exactly the expected one.
    const next = box.rewrap(refs[0]!, w0!);
    t.ok(await store.compareAndSwap(refs[0]!, w0!, next));
    t.notOk(await store.compareAndSwap(refs[0]!, w0!, next), 'second swap from the old value is refused');
    t.same(await store.get(refs[0]!), next);
    t.notOk(await store.compareAndSwap({ purpose: 'identity', id: 'missing' }, w0!, next), 'missing record');
    t.same(Object.fromEntries(await store.countByKek()), { a: 3, b: 4 });

    // put overwrites.
    const fresh = box.seal(refs[1]!, utf8('new'));
    await store.put(refs[1]!, fresh);
    t.same(box.open(refs[1]!, (await store.get(refs[1]!))!), utf8('new'));
    t.ok(await store.delete(refs[1]!));
    t.notOk(await store.delete(refs[1]!));
    t.equal(await store.get(refs[1]!), undefined);
  });
}

t.test('sqlite: refuses absurd page sizes', async (t) => {
  const store = new SqliteSecretStore();
  t.teardown(() => store.close());
  await t.rejects(store.listNotWrappedBy('a', 0), { code: 'secret_bad_record' });
  await t.rejects(store.listNotWrappedBy('a', 1_000_000), { code: 'secret_bad_record' });
});
